"""Parsing and validating predict requests, with errors that name the field.

Body: ``{"instances": [instance, ...], "request_id"?: str}`` or one instance on its own,
where an instance is ``{"user_id": str, "features": {name: null|bool|int|float|str},
"context"?: {name: str}, "request_id"?: str}``. Unknown fields are refused, so a typo
(``"feature"``) is an error and not a silently featureless prediction.

Numbers must be strictly within ±2^63 (``NUMBER_LIMIT``: what a 64-bit integer holds, and
what models can learn from); integers stay integers (Avro longs). Strictly: orjson reads an
integer below the least long as a double, and -9223372036854775809 became the double
-2^63, which an inclusive range took while the OpenAPI document refused it.

Statuses: 400 for a body that is not JSON (or not UTF-8), 413 for a body over the size
limit (enforced by aiohttp before parsing) or an instance over :data:`MAX_INSTANCE_BYTES`,
422 for JSON that does not fit the request schema, more instances than its ``maxItems``
included, or a string for a feature the model reads as a number (:func:`check_numbers`).
:class:`InvalidRequest` carries the status and the field, e.g.
``instances[3].features.price``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson

from streamlearn import strict_json
from streamlearn.json_kinds import json_kind
from streamlearn.models.inputs import NUMBER_LIMIT, NUMBER_LIMIT_TEXT, FeatureValue
from streamlearn.serving.exceptions import InvalidRequest

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_ID_CHARS = 256
MAX_INSTANCE_BYTES = 600_000
"""An instance's size as JSON at most: its ``PredictionServed`` record (features and
context in Avro, at most ~1.6x their JSON: a double with a one-character name is 11 bytes
against ``"k":1.0,``'s 8; plus the ids and names, a few KB) must fit Kafka's 1,000,000-byte
message limit, or the prediction would be answered and never logged nor learned from."""
_INSTANCE_FIELDS = frozenset({"user_id", "features", "context", "request_id"})
_BATCH_FIELDS = frozenset({"instances", "request_id"})
_SIMPLE = frozenset({bool, type(None)})
"""Feature value classes valid whatever their value."""
MAX_FEATURES = 1024
"""Features and context keys an instance may have together (a context key is the model's
input ``ctx.<key>``). Every name a model is served becomes part of it when it
learns the prediction's example: before this bound, 20 requests of ~28,000 made-up names
(and their clicks) grew ``ctr``'s snapshot from 3 KB to 15 MB, past ``model.state``'s
message limit, and each new version stalled every worker's event loop for seconds."""
MAX_TEXT_CHARS = 2048
"""Characters a string feature or context value may have: a category, not a document (a
440 KB one overflowed the monitor's store record; the monitor keeps its own shorter cut of
the values it samples, ``monitor_streams.MONITORED_CHARS``)."""
_KNOWN_NAMES: set[str] = set()
"""Feature and context names that passed :func:`_check_name` (bounded: client-chosen;
cleared when full)."""
_KNOWN_NAMES_LIMIT = 4096
NO_NUMBERS: Mapping[str, str] = MappingProxyType({})
"""No feature read as a number (a string for any feature is taken)."""


@dataclass(slots=True)
class Instance:
    user_id: str
    features: dict[str, FeatureValue]
    context: dict[str, str]
    request_id: str | None


def _check_text(value: Any) -> None:
    """Refuse lone surrogates (``"\\ud800"``), which no UTF-8 consumer can take."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def parse_json(raw: bytes) -> Any:
    """The JSON document in ``raw``; :class:`InvalidRequest` (400) if it is not one."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as fast_error:
        # orjson refuses integers beyond 64 bits, which are valid JSON: the slow path reads
        # them (validation then names the field) and still refuses NaN and bad UTF-8.
        try:
            document = strict_json.loads(raw.decode("utf-8"))
            _check_text(document)
        except (ValueError, UnicodeError):
            raise InvalidRequest(400, "body", f"not valid JSON: {fast_error}") from None
        except RecursionError:
            raise InvalidRequest(400, "body", "nested deeper than the worker reads") from None
        return document


def _identifier(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(422, field, f"must be a string, got {json_kind(value)}")
    if not 1 <= len(value) <= MAX_ID_CHARS:
        raise InvalidRequest(422, field, f"must have 1 to {MAX_ID_CHARS} characters")
    if value.isspace():
        # The collector refuses feedback whose ids are only white space (as Python sees
        # it): a prediction answered with one could never be labelled.
        raise InvalidRequest(422, field, "must not be only white space")
    return value


def _check_name(name: Any, field: str) -> None:
    """Refuse a feature or context name models cannot tell apart from another input:
    empty or over ``MAX_ID_CHARS``, or holding ``=`` (a category's one-hot input is
    ``<name>=<value>``: a number named ``category=books`` would overwrite it). Names that
    pass are remembered. (A feature named ``ctx.<key>`` is the model's input of that name,
    as the context key ``<key>`` is, which wins when both are sent: a training example's
    features, context folded in, can be scored as they are.) Callers skip known names."""
    if not 1 <= len(name) <= MAX_ID_CHARS:
        raise InvalidRequest(
            422, f"{field}.{name[:64]}", f"a name has 1 to {MAX_ID_CHARS} characters"
        )
    if "=" in name:
        raise InvalidRequest(
            422, f"{field}.{name}", "a name cannot hold '=' (models read it as name=value)"
        )
    if len(_KNOWN_NAMES) >= _KNOWN_NAMES_LIMIT:
        # Full (made-up names, most likely): start anew rather than keep the first ones
        # for good; the names requests really use are back after their next request.
        _KNOWN_NAMES.clear()
    _KNOWN_NAMES.add(name)


def _string_for_number(field: str, name: str, value: str, spec: str) -> InvalidRequest:
    shown = value if len(value) <= 64 else value[:64] + "..."
    return InvalidRequest(
        422, field, f"{spec} reads {name} as a number: got the string {shown!r} "
        "(send a number, or null when it is missing)",
    )  # fmt: skip


def _long_text(field: str) -> InvalidRequest:
    return InvalidRequest(422, field, f"a string has at most {MAX_TEXT_CHARS} characters")


def _features(
    value: Any, field: str, numeric: Mapping[str, str], strings: list[str]
) -> dict[str, FeatureValue]:
    """The features ``value``, checked; the names of those ``numeric`` lists that hold a
    string are appended to ``strings`` (refused once the whole body is parsed, so that
    other problems keep their precedence)."""
    if not isinstance(value, dict):
        raise InvalidRequest(422, field, f"must be an object, got {json_kind(value)}")
    if len(value) > MAX_FEATURES:
        raise InvalidRequest(422, field, f"{len(value)} features, at most {MAX_FEATURES}")
    known = _KNOWN_NAMES
    for name, item in value.items():
        if name not in known:
            _check_name(name, field)
        # Exact classes first (what the JSON parser returns), one comparison each: a double
        # within ±2^63 (NaN and ±inf are not), a string of at most MAX_TEXT_CHARS, a
        # boolean, null or a 64-bit integer needs nothing more.
        cls = item.__class__
        if cls is float:
            if -NUMBER_LIMIT < item < NUMBER_LIMIT:
                continue
        elif cls is str:
            if len(item) <= MAX_TEXT_CHARS:
                if name in numeric:
                    strings.append(name)
                continue  # a longer one is refused below, with str's subclasses
        elif cls in _SIMPLE or (cls is int and INT64_MIN < item <= INT64_MAX):
            continue
        if isinstance(item, str):
            if len(item) <= MAX_TEXT_CHARS:
                if name in numeric:
                    strings.append(name)
                continue
            raise _long_text(f"{field}.{name}")
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and INT64_MIN < item <= INT64_MAX:
            continue
        if isinstance(item, float) and -NUMBER_LIMIT < item < NUMBER_LIMIT:
            continue
        if isinstance(item, int | float):
            # What a worker serves is learned from: models cannot take such a number
            # (models/inputs.py). Not echoed: an integer may have thousands of digits.
            finite = isinstance(item, int) or math.isfinite(item)
            problem = (
                f"number beyond {NUMBER_LIMIT_TEXT}" if finite else "number out of the double range"
            )
            raise InvalidRequest(422, f"{field}.{name}", problem)
        raise InvalidRequest(
            422,
            f"{field}.{name}",
            f"must be null, boolean, number or string, got {json_kind(item)}",
        )
    return value


def _context(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(422, field, f"must be an object, got {json_kind(value)}")
    if len(value) > MAX_FEATURES:  # each key is an input (ctx.<key>), as a feature is
        raise InvalidRequest(422, field, f"{len(value)} context keys, at most {MAX_FEATURES}")
    known = _KNOWN_NAMES
    for name, item in value.items():
        if name not in known:
            _check_name(name, field)
        if not isinstance(item, str):
            raise InvalidRequest(422, f"{field}.{name}", f"must be a string, got {json_kind(item)}")
        if len(item) > MAX_TEXT_CHARS:
            raise _long_text(f"{field}.{name}")
    return value


def _instance(
    value: Any, index: int | None, numeric: Mapping[str, str], strings: list[str]
) -> Instance:
    """The instance ``value``: the body itself (``index`` None) or ``instances[index]``."""
    if not isinstance(value, dict):
        raise InvalidRequest(
            422, _where(index) or "body", f"must be an object, got {json_kind(value)}"
        )
    # Field names (``instances[3].features``), even the instance's, are formatted only for
    # an error: building them for every instance was a fifth of the validation's time.
    if not _INSTANCE_FIELDS.issuperset(value):
        name = next(n for n in value if n not in _INSTANCE_FIELDS)
        raise InvalidRequest(422, _at(_where(index), name), "unknown field")
    user_id = value.get("user_id")
    if (
        user_id is None
        or user_id.__class__ is not str
        or not 1 <= len(user_id) <= MAX_ID_CHARS
        or user_id.isspace()
    ):
        if "user_id" not in value:
            raise InvalidRequest(422, _at(_where(index), "user_id"), "required")
        _identifier(user_id, _at(_where(index), "user_id"))
    if "features" not in value:
        raise InvalidRequest(422, _at(_where(index), "features"), "required")
    try:
        features = _features(value["features"], "features", numeric, strings)
        context = value.get("context")
        context = {} if context is None else _context(context, "context")
        if context and len(features) + len(context) > MAX_FEATURES:
            # The model's inputs are both (context keys as ctx.<key>): 20 requests of
            # 30,000 made-up context keys grew both models past model.state's record size.
            raise InvalidRequest(
                422, "context", f"{len(features)} features and {len(context)} context keys, "
                f"at most {MAX_FEATURES} together",
            )  # fmt: skip
        request_id = value.get("request_id")
        if request_id is not None:
            request_id = _identifier(request_id, "request_id")
    except InvalidRequest as exc:
        raise InvalidRequest(exc.status, _at(_where(index), exc.field), exc.problem) from None
    # A str subclass passes _identifier: stored as a plain str (exact ones as they are).
    if user_id.__class__ is not str:
        user_id = str(user_id)
    return Instance(user_id, features, context, request_id)


def _where(index: int | None) -> str:
    return "" if index is None else f"instances[{index}]"


def _at(where: str, field: str | None) -> str:
    """``field`` of the instance at ``where`` (``instances[3].features``, or ``features``)."""
    return f"{where}.{field}" if where else str(field)


def parse_predict(
    raw: bytes, max_instances: int, numeric: Mapping[str, str] = NO_NUMBERS
) -> tuple[list[Instance], str | None, bool]:
    """The instances and the request id of a predict body (see module documentation), and
    whether it is a batch (``instances``: its predictions are ``<request_id>-<i>``, even
    for a batch of one). ``numeric``: features the models answering it read as numbers →
    the spec that does (``Predictor.numeric_features``), for which a string is refused."""
    document = parse_json(raw)
    if not isinstance(document, dict):
        raise InvalidRequest(422, "body", f"must be an object, got {json_kind(document)}")
    large = len(raw) > MAX_INSTANCE_BYTES  # only then can an instance be too large
    if "instances" not in document:
        strings: list[str] = []
        instance = _instance(document, None, numeric, strings)
        if large:
            _check_size(document, "body")
        if strings:
            check_numbers([instance], numeric, False)
        return [instance], instance.request_id, False
    for name in document:
        if name not in _BATCH_FIELDS:
            raise InvalidRequest(422, name, "unknown field")
    items = document["instances"]
    if not isinstance(items, list):
        raise InvalidRequest(422, "instances", f"must be an array, got {json_kind(items)}")
    if not items:
        raise InvalidRequest(422, "instances", "must not be empty")
    if len(items) > max_instances:
        raise InvalidRequest(
            422, "instances", f"{len(items)} instances, at most {max_instances} per request"
        )
    request_id = document.get("request_id")
    if request_id is not None:
        request_id = _identifier(request_id, "request_id")
    strings = []
    instances = [_instance(item, i, numeric, strings) for i, item in enumerate(items)]
    if large:
        for index, item in enumerate(items):
            _check_size(item, _where(index))
    if len(instances) > 1 and any(instance.request_id is not None for instance in instances):
        _check_distinct_ids(instances, request_id)
    if strings:  # last, as when the models' check ran after parsing
        check_numbers(instances, numeric, True)
    return instances, request_id, True


def _check_size(instance: dict[str, Any], field: str) -> None:
    size = len(orjson.dumps(instance))
    if size > MAX_INSTANCE_BYTES:
        raise InvalidRequest(
            413, field, f"instance of {size:,} bytes as JSON, at most {MAX_INSTANCE_BYTES:,} bytes "
            "(its PredictionServed record must fit one Kafka message)",
        )  # fmt: skip


def _check_distinct_ids(instances: list[Instance], request_id: str | None) -> None:
    """Each prediction of a batch gets its own request id (its own, or the request's with
    ``-<index>``): feedback joins a prediction by it, and label-join drops the second
    prediction of an id as a duplicate."""
    derived = {} if request_id is None else {f"{request_id}-{i}": i for i in range(len(instances))}
    first: dict[str, int] = {}
    for index, instance in enumerate(instances):
        own = instance.request_id
        if own is None:
            continue
        if own in first:
            raise InvalidRequest(
                422, f"instances[{index}].request_id",
                f"{own!r} is also instances[{first[own]}]'s: each prediction needs its own id",
            )  # fmt: skip
        first[own] = index
    for index, instance in enumerate(instances):
        own = instance.request_id
        other = derived.get(own) if own is not None else None
        if other is not None and other != index and instances[other].request_id is None:
            raise InvalidRequest(
                422, f"instances[{index}].request_id",
                f"{own!r} is the id instances[{other}] gets (request_id-index): "
                "each prediction needs its own id",
            )  # fmt: skip


def check_numbers(instances: list[Instance], numeric: Mapping[str, str], batch: bool) -> None:
    """Refuse (422, naming it) a string sent for a feature a model reads as a number:
    ``numeric`` maps each such feature to the spec that reads it
    (:attr:`~streamlearn.models.specs.ModelSpec.numeric_features`)."""
    for index, instance in enumerate(instances):
        get = instance.features.get
        for name in numeric:
            value = get(name)
            if isinstance(value, str):
                where = _at(_where(index if batch else None), f"features.{name}")
                raise _string_for_number(where, name, value, numeric[name])
