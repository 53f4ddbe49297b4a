"""The specialised PredictionServed encoder writes exactly what fastavro writes, with its
compiled loop and with its Python one."""

from __future__ import annotations

import shutil
import sysconfig
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlearn.serde import AvroSerde, InMemoryRegistry
from streamlearn.serving.prediction_codec import COMPILED_RECORD, PredictionEncoder

SERDE = AvroSerde.for_topic(InMemoryRegistry(), "telemetry.predictions", "PredictionServed")
COMPILED = pytest.mark.parametrize(
    "compiled",
    [
        pytest.param(
            True,
            id="compiled",
            marks=pytest.mark.skipif(COMPILED_RECORD is None, reason="the C loop is not built"),
        ),
        pytest.param(False, id="python"),
    ],
)
LONGS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(max_size=20)
OPTIONAL = st.none() | TEXT
FEATURE = (
    st.none() | st.booleans() | LONGS | st.floats(allow_nan=False) | TEXT
)  # NaN != NaN, so compared separately


PLAIN: dict[str, Any] = {
    "request_id": "r", "user_id": "u", "model_name": "m", "model_version": 1,
    "experiment": None, "arm": None, "context": {}, "score": 0.5, "decision": None,
    "degraded": False, "degraded_reason": None, "served_ts": 1, "worker_version": "w",
    "latency_ms": 0.1,
}  # fmt: skip
"""A record without features, for tests that set them."""


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "request_id": draw(TEXT),
        "user_id": draw(TEXT),
        "model_name": draw(TEXT),
        "model_version": draw(LONGS),
        "experiment": draw(OPTIONAL),
        "arm": draw(OPTIONAL),
        "features": draw(st.dictionaries(TEXT, FEATURE, max_size=8)),
        "context": draw(st.dictionaries(TEXT, TEXT, max_size=4)),
        "score": draw(st.floats(allow_nan=False)),
        "decision": draw(OPTIONAL),
        "degraded": draw(st.booleans()),
        "degraded_reason": draw(OPTIONAL),
        "served_ts": draw(st.integers(min_value=0, max_value=2**42)),
        "worker_version": draw(TEXT),
        "latency_ms": draw(st.floats(min_value=0, allow_nan=False)),
    }


@COMPILED
@settings(max_examples=500, database=None)
@given(record=records())
def test_same_bytes_as_fastavro(compiled: bool, record: dict[str, Any]) -> None:
    encoder = PredictionEncoder(SERDE, compiled=compiled)
    assert encoder.compiled is compiled
    assert encoder.encode(record) == SERDE.encode(record)
    assert SERDE.decode(encoder.encode(record))["features"].keys() == record["features"].keys()


@COMPILED
def test_nan_and_the_canary(compiled: bool) -> None:
    encoder = PredictionEncoder(SERDE, compiled=compiled)
    record = {
        "request_id": "r", "user_id": "u", "model_name": "m", "model_version": 0,
        "experiment": None, "arm": None, "features": {"x": float("nan")}, "context": {},
        "score": float("nan"), "decision": None, "degraded": False, "degraded_reason": None,
        "served_ts": 0, "worker_version": "w", "latency_ms": 0.0,
    }  # fmt: skip
    assert encoder.encode(record) == SERDE.encode(record)
    assert encoder.matches(SERDE)


@COMPILED
def test_another_schema_is_detected(compiled: bool) -> None:
    other = AvroSerde(
        InMemoryRegistry(), {**SERDE.schema, "fields": SERDE.schema["fields"][:-1]}, "s"
    )
    assert not PredictionEncoder(other, compiled=compiled).matches(other)


def test_cached_pairs_and_full_caches_write_the_same_bytes(monkeypatch: Any) -> None:
    import streamlearn.serving.prediction_codec as codec

    monkeypatch.setattr(codec, "CACHE_LIMIT", 2)
    encoder = PredictionEncoder(SERDE, compiled=False)
    # The same names with other values and other types, past the (tiny) cache limit.
    for i in range(6):
        features = {"a": float(i), "b": f"cat-{i % 3}", "c": i, "d": i % 2 == 0, "e": None}
        if i % 2:
            features = {"a": f"now-a-string-{i}", "b": float(i)}
        record = {**PLAIN, "features": features, "context": {"placement": f"p{i % 4}"}}
        assert encoder.encode(record) == SERDE.encode(record)
    assert len(encoder._pairs) <= 2
    assert len(encoder._doubles) <= 2
    assert len(encoder._longs) <= 2


@COMPILED
@settings(max_examples=100, database=None)
@given(batch=st.lists(records(), min_size=1, max_size=6))
def test_a_requests_records_encoded_together_are_those_encoded_one_by_one(
    compiled: bool, batch: list[dict[str, Any]]
) -> None:
    from streamlearn.serving.validation import Instance

    # One request: its records share served_ts, worker version and latency.
    shared = {k: batch[0][k] for k in ("served_ts", "worker_version", "latency_ms")}
    batch = [{**record, **shared} for record in batch]
    predictions = [
        {**record, "model_version": record["model_version"] or None, "capped": False}
        for record in batch
    ]
    instances = [Instance(r["user_id"], r["features"], r["context"], None) for r in batch]
    encoder = PredictionEncoder(SERDE, compiled=compiled)
    together = encoder.encode_request(
        predictions, instances, shared["served_ts"], shared["latency_ms"], shared["worker_version"]
    )
    assert together == [SERDE.encode(record) for record in batch]


@COMPILED
def test_equal_values_of_other_types_are_not_confused_by_the_caches(compiled: bool) -> None:
    # True == 1 == 1.0 and hash alike: a cache keyed by (name, value) alone would answer
    # the entry of one type for another.
    encoder = PredictionEncoder(SERDE, compiled=compiled)
    for value in (1, True, 1.0, 0, False, 0.0, None, "1", 1, True):
        record = {**PLAIN, "features": {"x": value, "y": value}}
        assert encoder.encode(record) == SERDE.encode(record)
        assert SERDE.decode(encoder.encode(record))["features"]["x"].__class__ is type(value)


def test_served_times_in_the_order_a_worker_sees_them_write_the_same_bytes() -> None:
    # Milliseconds one after another, across the points where the bytes after a varint's
    # first change (every 64 ms, every 8,192, ...), back in time (another worker's clock),
    # and the small values whose varint is a single byte.
    encoder = PredictionEncoder(SERDE)
    now = 1_796_649_629_795
    times = [
        *range(now - 70, now + 70),
        *range(2**13 - 3, 2**13 + 3),
        now - 64, now, now - 1, 0, 1, 63, 64, 65, 127, 128, 2**42, now,
    ]  # fmt: skip
    for served_ts in times:
        record = {**PLAIN, "features": {"x": 1.5}, "served_ts": served_ts}
        assert encoder.encode(record) == SERDE.encode(record), served_ts


class _Features(Mapping[str, Any]):
    """A mapping that is not a dict (what an app's own instance type could hand over)."""

    def __init__(self, entries: dict[str, Any]) -> None:
        self._entries = entries

    def __getitem__(self, key: str) -> Any:
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class _Reordered(dict[str, Any]):
    """A dict subclass whose items come in another order than its storage's."""

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(super().__iter__(), reverse=True))

    def items(self) -> Any:
        return [(key, self[key]) for key in self]

    def keys(self) -> Any:
        return list(self)


@COMPILED
def test_mappings_that_are_not_plain_dicts_are_encoded_as_they_iterate(compiled: bool) -> None:
    encoder = PredictionEncoder(SERDE, compiled=compiled)
    entries = {"a": 1.5, "b": "x", "c": 3, "d": True, "e": None}
    for features in (
        _Features(entries),
        MappingProxyType(entries),
        _Reordered(entries),
    ):
        context = _Reordered({"placement": "top", "device": "mobile"})
        record = {**PLAIN, "features": features, "context": context}
        expected = {**PLAIN, "features": dict(features.items()), "context": dict(context.items())}
        assert encoder.encode(record) == SERDE.encode(expected)


@COMPILED
def test_a_record_far_larger_than_usual_is_written_whole(compiled: bool) -> None:
    # The compiled loop writes into a fixed buffer first and grows it past that.
    encoder = PredictionEncoder(SERDE, compiled=compiled)
    features: dict[str, Any] = {f"feature-{i:04d}-" + "n" * 40: float(i) for i in range(300)}
    features.update({f"category-{i}": "v\u00e9" * 200 for i in range(50)})
    record = {
        **PLAIN,
        "request_id": "r" * 5000,
        "user_id": "\U0001f600" * 300,
        "features": features,
        "context": {f"c{i}": "w" * 100 for i in range(100)},
    }
    assert encoder.encode(record) == SERDE.encode(record)


@COMPILED
@pytest.mark.parametrize(
    ("features", "error", "message"),
    [
        ({"x": [1.0]}, TypeError, "feature 'x': unsupported list"),
        ({"x": 2**63}, OverflowError, "feature 'x': integer beyond 64 bits"),
        ({"x": -(2**63) - 1}, OverflowError, "feature 'x': integer beyond 64 bits"),
        ({"x": "\ud800"}, UnicodeEncodeError, "surrogates not allowed"),
        ({"\ud800": 1.0}, UnicodeEncodeError, "surrogates not allowed"),
    ],
)
def test_what_cannot_be_encoded_raises_the_same_error_in_both(
    compiled: bool, features: dict[str, Any], error: type[Exception], message: str
) -> None:
    # The telemetry sink counts these as encode errors (serving/telemetry.py ENCODE_ERRORS).
    encoder = PredictionEncoder(SERDE, compiled=compiled)
    with pytest.raises(error, match=message):
        encoder.encode({**PLAIN, "features": features})
    # The encoder keeps working after it.
    assert encoder.encode({**PLAIN, "features": {"x": 1.0}}) == SERDE.encode(
        {**PLAIN, "features": {"x": 1.0}}
    )


def test_the_compiled_loop_is_built_where_a_c_compiler_is() -> None:
    # The extension is optional (an install without a compiler still works); where the
    # suite runs with one, a failed build would otherwise pass unnoticed as a slower worker.
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) on this machine")
    assert COMPILED_RECORD is not None, "rebuild it: .venv/bin/uv pip install -e ."
