"""Experiments: deterministic assignment of users to arms, and the book of live experiments.

A user's arm is a pure function of the experiment's salt and the user id: the 8-byte BLAKE2b
digest (``blake2b(data, digest_size=8)``, not a prefix of the 64-byte one) of
``salt + "\\x00" + user_id`` in UTF-8, read as a big-endian integer and divided by 2**64,
gives a point in [0, 1), and the arms' weights, normalised, cut [0, 1) into consecutive
intervals in the order the arms are listed. No process state takes part (not Python's
randomised ``hash``), so every replica and every restart assigns the same arm; changing the
salt reshuffles everybody, changing a weight moves only users near the moved boundaries.

An experiment *covers* a model name when one of its arms is served by that model, or by a
per-arm model of it (``<name>@<arm>``, what the learner publishes for arms), or by its
newest version (``<name>~newest``: when the model's spec has a promotion gate, workers
serve the promoted version, and such an arm the newest published one). A predict
request for a covered model is routed: the user's arm decides which model answers. When
several enabled experiments cover one model, the one whose name sorts first routes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from hashlib import blake2b
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from streamlearn.models.snapshot import NEWEST as NEWEST
from streamlearn.serving.exceptions import InvalidExperiment

if TYPE_CHECKING:
    from streamlearn.models.specs import ModelSpec

_SCALE = float(2**64)


def bucket(salt: str, user_id: str) -> float:
    """The user's point in [0, 1) for this salt (same on every machine and run)."""
    prefix = salt.encode("utf-8") + b"\x00"
    digest = blake2b(prefix + user_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


# An arm's model name ending in NEWEST (``ctr~newest``) is routed to the newest published
# version of the model, promoted by its gate or not; a plain name gets the promoted one.


def base_model(model_name: str) -> str:
    """``ctr@treatment`` → ``ctr`` (the spec a per-arm snapshot belongs to); ``ctr~newest``
    → ``ctr``."""
    return model_name.split("@", 1)[0].removesuffix(NEWEST)


def served_model(route: str) -> str:
    """The model a route's predictions are recorded under: ``ctr~newest`` → ``ctr`` (its
    examples train ``ctr``; the record's version says which version answered)."""
    return route.removesuffix(NEWEST)


@dataclass(frozen=True)
class Arm:
    name: str
    model_name: str
    weight: float


@dataclass(frozen=True)
class Experiment:
    """One ``Experiment`` record, validated."""

    name: str
    salt: str
    arms: tuple[Arm, ...]
    enabled: bool = True
    description: str | None = None
    updated_ts: datetime | None = None
    bounds: tuple[float, ...] = field(init=False, repr=False, compare=False)
    """Upper end of each arm's interval of [0, 1)."""
    _hasher: Any = field(init=False, repr=False, compare=False)
    """BLAKE2b (8 bytes) fed the salt's part of the hashed bytes: copied per user."""
    _cuts: tuple[tuple[float, Arm], ...] = field(init=False, repr=False, compare=False)
    """(upper end, arm) of the arms with a weight: a zero-weight arm routes nobody."""

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidExperiment("an experiment needs a name")
        if not self.arms:
            raise InvalidExperiment(f"experiment {self.name}: no arms")
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names) or not all(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            said = ", ".join(f"{n!r} twice" for n in twice) or "an empty one"
            raise InvalidExperiment(
                f"experiment {self.name}: arm names must be unique, non-empty: {said}"
            )
        for arm in self.arms:
            if not arm.model_name:
                raise InvalidExperiment(f"experiment {self.name}: arm {arm.name} has no model")
            if not (math.isfinite(arm.weight) and arm.weight >= 0):
                raise InvalidExperiment(
                    f"experiment {self.name}: arm {arm.name} weight must be finite and >= 0"
                )
        total = sum(arm.weight for arm in self.arms)
        if total <= 0:
            raise InvalidExperiment(f"experiment {self.name}: weights sum to 0")
        if not math.isfinite(total):
            # Every weight over the sum would be 0: all users in the last arm.
            raise InvalidExperiment(
                f"experiment {self.name}: weights sum to {total} (give relative weights, "
                "e.g. 0.5 and 0.5)"
            )
        bounds = list(accumulate(arm.weight / total for arm in self.arms))
        bounds[-1] = 1.0
        object.__setattr__(self, "bounds", tuple(bounds))
        prefix = self.salt.encode("utf-8") + b"\x00"
        object.__setattr__(self, "_hasher", blake2b(prefix, digest_size=8))
        cuts = tuple((b, arm) for arm, b in zip(self.arms, bounds, strict=True) if arm.weight > 0)
        object.__setattr__(self, "_cuts", cuts)

    @property
    def models(self) -> frozenset[str]:
        """Model names this experiment covers (see module documentation)."""
        return frozenset(
            name for arm in self.arms for name in {arm.model_name, base_model(arm.model_name)}
        )

    def __reduce__(self) -> tuple[type[Experiment], tuple[Any, ...]]:
        # Built again from its fields (pickle, copy): a BLAKE2b state cannot be pickled.
        return type(self), tuple(getattr(self, f.name) for f in fields(self) if f.init)

    def assign(self, user_id: str) -> Arm:
        # bucket()'s point: the salt's state copied, then the user id hashed after it
        # (the same digest, a third cheaper than hashing the joined bytes anew).
        hasher = self._hasher.copy()
        hasher.update(user_id.encode("utf-8", "surrogatepass"))
        point = int.from_bytes(hasher.digest(), "big") / _SCALE
        for bound, arm in self._cuts:
            if point < bound:
                return arm
        # Rounding can leave a sliver below 1.0 past the last weighted arm's bound.
        return self._cuts[-1][1]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Experiment:
        try:
            arms = tuple(
                Arm(str(a["name"]), str(a["model_name"]), float(a["weight"]))
                for a in record["arms"]
            )
            updated = record.get("updated_ts")
            return cls(
                name=str(record["name"]),
                salt=str(record["salt"]),
                arms=arms,
                enabled=bool(record.get("enabled", True)),
                description=record.get("description"),
                updated_ts=updated if isinstance(updated, datetime) else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidExperiment(f"malformed Experiment record: {exc!r}") from exc

    def same_routing_as(self, other: Experiment | None) -> bool:
        """Whether ``other`` routes every user as this one does (its description and time
        aside)."""
        return other is not None and (self.salt, self.arms, self.enabled) == (
            other.salt,
            other.arms,
            other.enabled,
        )

    def routing_text(self) -> str:
        """``enabled, salt s, arms a=ctr:0.7 b=ctr@b:0.3``: what it routes, for a log line."""
        arms = " ".join(f"{a.name}={a.model_name}:{a.weight:g}" for a in self.arms)
        return f"{'enabled' if self.enabled else 'disabled'}, salt {self.salt}, arms {arms}"

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "salt": self.salt,
            "arms": [
                {"name": a.name, "model_name": a.model_name, "weight": a.weight} for a in self.arms
            ],
            "enabled": self.enabled,
            "description": self.description,
            "updated_ts": self.updated_ts or datetime.now(UTC),
        }


class ExperimentBook:
    """The live experiments of a worker (from the compacted ``experiments`` topic)."""

    def __init__(self) -> None:
        self._experiments: dict[str, Experiment] = {}
        self._routes: dict[str, Experiment | None] = {}

    def put(self, experiment: Experiment) -> None:
        self._experiments[experiment.name] = experiment
        self._routes = {}

    def get(self, name: str) -> Experiment | None:
        return self._experiments.get(name)

    def remove(self, name: str) -> None:
        self._experiments.pop(name, None)
        self._routes = {}

    def all(self) -> list[Experiment]:
        return [self._experiments[name] for name in sorted(self._experiments)]

    def covering(self, model_name: str) -> Experiment | None:
        """The enabled experiment routing requests for ``model_name``, if any (cached)."""
        try:
            return self._routes[model_name]
        except KeyError:
            found = next(
                (e for e in self.all() if e.enabled and model_name in e.models),
                None,
            )
            self._routes[model_name] = found
            return found


def unknown_models(experiment: Experiment, specs: Iterable[str]) -> list[str]:
    """The arms whose model belongs to no spec of ``specs``, described: a typo there would
    send the arm's users the fallback for good (checked by ``experiments set``; a worker
    reading such a record serves it as written)."""
    known = sorted(specs)
    return [
        f"arm {arm.name}: no model spec {base_model(arm.model_name)!r} (known: {', '.join(known)})"
        for arm in experiment.arms
        if base_model(arm.model_name) not in known
    ]


def task_mismatches(experiment: Experiment, specs: Mapping[str, ModelSpec]) -> list[str]:
    """Arms of models of different tasks (a click model beside a regression), described:
    one endpoint's users would get scores that mean different things (refused by
    ``experiments set``)."""
    tasks = [
        (arm.name, spec.name, spec.task)
        for arm in experiment.arms
        if (spec := specs.get(base_model(arm.model_name))) is not None
    ]
    if len({task for _, _, task in tasks}) <= 1:
        return []
    listed = ", ".join(f"{arm}: {spec} ({task})" for arm, spec, task in tasks)
    return [
        f"arms of models of different tasks: {listed}; one endpoint's users would get "
        "scores that mean different things"
    ]


def unserved_models(experiment: Experiment, served: Iterable[str]) -> list[str]:
    """The arms whose model is not among ``served`` (the settings' models where
    ``experiments set`` runs, which may not be the workers': a warning, not a refusal)."""
    names = list(served)
    return [
        f"arm {arm.name}: {base_model(arm.model_name)} is not in STREAMLEARN_MODELS here "
        f"({', '.join(names)}): workers that do not serve it answer the arm's users with "
        "the fallback"
        for arm in experiment.arms
        if base_model(arm.model_name) not in names
    ]


def numeric_differences(experiment: Experiment, specs: Mapping[str, ModelSpec]) -> list[str]:
    """The arms whose spec does not read as numbers features another arm's spec reads so,
    described. A worker refuses a string for any feature one of the routing experiment's
    arms reads as a number (``Predictor.numeric_features``), so such an experiment turns
    away requests its endpoint accepted before (``experiments set`` warns)."""
    if not experiment.enabled:
        return []
    numbers = {
        arm.name: (spec.name, frozenset(spec.numeric_features))
        for arm in experiment.arms
        if (spec := specs.get(base_model(arm.model_name))) is not None
    }
    found = []
    for name, (spec_name, own) in numbers.items():
        others = {other: entry for other, entry in numbers.items() if entry[1] - own}
        if not others:
            continue
        missing = sorted(frozenset().union(*(entry[1] for entry in others.values())) - own)
        readers = ", ".join(f"{other} ({entry[0]})" for other, entry in others.items())
        found.append(
            f"arm {name} ({spec_name}) does not read {', '.join(missing)} as "
            f"{'a number' if len(missing) == 1 else 'numbers'} and "
            f"{'arm' if len(others) == 1 else 'arms'} {readers} "
            f"{'does' if len(others) == 1 else 'do'}: while the experiment is on, a predict "
            "request sending a string there is refused (422) whichever arm it is routed to"
        )
    return found


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100"


def name_problems(experiment: Experiment) -> list[str]:
    """Names ``experiments set`` refuses although a record may hold them, and an empty
    salt: a blank name sorts first and covers its models before any other experiment; a
    name with spaces or without an arm after ``@`` is a typo more often than a choice; an
    empty salt splits users as every other experiment with one does. (Workers serve what a
    record says, so older records keep working.)"""
    problems = []
    if not NAME.fullmatch(experiment.name):
        problems.append(f"experiment name {experiment.name!r}: {NAME_RULE}")
    if not experiment.salt:
        problems.append(
            "salt '': empty (every experiment with it would split users the same way); "
            "leave --salt out for the experiment's name"
        )
    for arm in experiment.arms:
        if not NAME.fullmatch(arm.name):
            problems.append(f"arm name {arm.name!r}: {NAME_RULE}")
        spec_name, at, arm_model = arm.model_name.partition("@")
        if at and spec_name.endswith(NEWEST):
            # base_model() reads "ctr~newest@x" as ctr, so the spec check passed; but no
            # snapshot is ever named so (the newest of ctr@x is ctr@x~newest): the arm's
            # users got the fallback for good.
            problems.append(_misplaced_newest(arm.name, arm.model_name, spec_name, arm_model))
        elif at and not NAME.fullmatch(arm_model.removesuffix(NEWEST)):
            # "ctr@x@y" was said to name no arm after its '@'.
            problems.append(
                f"arm {arm.name}: model {arm.model_name!r}: the arm after '@' is "
                f"{arm_model!r}; {NAME_RULE}"
                if arm_model
                else f"arm {arm.name}: model {arm.model_name!r} names no arm after '@'"
            )
    return problems


def _misplaced_newest(arm: str, model: str, spec_name: str, arm_model: str) -> str:
    per_arm = f"{spec_name.removesuffix(NEWEST)}@{arm_model}"
    return (
        f"arm {arm}: model {model!r}: '{NEWEST}' goes last ({per_arm}{NEWEST}: the newest "
        f"version of {per_arm}); no model is ever named {model!r}, so the arm's users would "
        "get the fallback for good"
    )


def overlaps(experiment: Experiment, current: Iterable[Experiment]) -> list[str]:
    """Other enabled experiments of ``current`` covering a model ``experiment`` covers,
    described with which of the two routes it (:meth:`ExperimentBook.covering`)."""
    if not experiment.enabled:
        return []
    found = []
    for other in current:
        shared = experiment.models & other.models
        if other.name == experiment.name or not other.enabled or not shared:
            continue
        # Which one routes, by the workers' own rule (ExperimentBook.covering).
        pair = ExperimentBook()
        pair.put(experiment)
        pair.put(other)
        routing = pair.covering(min(shared))
        assert routing is not None  # both are enabled and cover it
        found.append(
            f"experiment {other.name!r} also covers {', '.join(sorted(shared))}: "
            f"{routing.name!r} "
            f"routes {'them' if len(shared) > 1 else 'it'} (of several enabled experiments "
            "covering a model, the name that sorts first routes)"
        )
    return found
