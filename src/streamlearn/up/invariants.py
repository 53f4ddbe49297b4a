"""What a chaos run must still get right, checked against the simulator's ground truth.

Every topic is read from the beginning with confluent-kafka in ``read_committed`` mode (what
a transactional consumer downstream would see), after the drain. Each check is a row of
the final table (:class:`~streamlearn.up.report.Check`):

1. every event the collector accepted (202) is in ``events.clean`` once by event id, or
   was filtered as a bot or a duplicate (the preprocess step run again in memory over
   ``telemetry.events`` gives each event's verdict: it is a function of the log);
2. every prediction the simulated person saw, whose impression the collector accepted,
   became exactly one training example (by request id);
3. each model's newest payload is byte-identical to a replay from scratch of
   ``training.examples`` with the learner's code (``replay verify``'s), and it covers them
   all;
4. no prediction worker served an older model version after a newer one (served times of
   ``telemetry.predictions``, per model);
5. nothing of a request the collector answered 503 ``written: none`` is in
   ``telemetry.events`` (``partial`` and unanswered requests: counted, not judged: the
   API says some may be written);
6. the sessions on ``events.sessions`` equal the sessionise agent's rules run again over
   ``events.clean`` (:mod:`streamlearn.up.invariants_sessions` says what "equal" means).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from streamlearn.agents.sessions import SessionRules
from streamlearn.models.keyring import Keyring
from streamlearn.models.specs import SPECS
from streamlearn.replay.diff import _shadow_judged
from streamlearn.replay.examples import ReadCounts, decoded_examples, prepared_records
from streamlearn.replay.history import ModelHistory, model_history
from streamlearn.replay.positions import PartitionRange
from streamlearn.replay.sources import KafkaSource
from streamlearn.replay.verify import verify_version
from streamlearn.serde import DecodeError, RegistryClient, SchemaSource
from streamlearn.settings import Settings
from streamlearn.simulate.ledger import Ledger
from streamlearn.topology.catalogue import TopicCatalogue
from streamlearn.up.invariants_examples import examples_once
from streamlearn.up.invariants_sessions import sessions_equal
from streamlearn.up.report import Check

Located = tuple[int, int, dict[str, Any]]
"""(partition, offset, decoded value)."""


class _Topics:
    """Decoded records of the run's topics, read once each."""

    def __init__(self, settings: Settings, registry: SchemaSource) -> None:
        self.settings, self.registry = settings, registry
        self.catalogue = TopicCatalogue.from_settings(settings)
        self.source = KafkaSource(settings)  # read_committed (topic_reader)
        self._read: dict[tuple[str, bool], list[Located]] = {}

    def name(self, logical: str) -> str:
        return self.catalogue.topic(logical).name

    def located(self, logical: str, *, plain: bool = False) -> list[Located]:
        """``plain``: timestamps as epoch ms, UUIDs as strings (as an agent with
        ``plain_inputs`` reads them)."""
        if (logical, plain) not in self._read:
            name = self.name(logical)
            serde = self.catalogue.topic(logical).serde(self.registry, logical_types=not plain)
            ranges = {p: (low, end) for p, (low, end) in self.source.watermarks(name).items()}
            records = []
            for record in self.source.read(name, ranges):
                try:
                    if record.value is not None:
                        value = serde.decode(record.value)
                        records.append((record.partition, record.offset, value))
                except DecodeError:
                    continue  # malformed: the agents rejected it (counted there)
            self._read[(logical, plain)] = records
        return self._read[(logical, plain)]


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)


def _some(ids: Iterable[str], n: int = 3) -> str:
    chosen = sorted(ids)[:n]
    return f" (e.g. {', '.join(chosen)})" if chosen else ""


def accepted_events_clean(topics: _Topics, ledger: Ledger, figures: dict[str, Any]) -> Check:
    raw: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for partition, offset, value in topics.located("telemetry.events"):
        raw.setdefault(partition, []).append((offset, value))
    judged = _shadow_judged(topics.settings, raw)
    # An event preprocess passed clean must be in events.clean, whatever a later copy of it
    # was judged (a resent event's second copy is a duplicate): only one never passed clean
    # was filtered.
    verdicts = {i: rule for i, rule in judged.verdicts.items() if i not in judged.clean}
    sources: dict[str, set[tuple[int, int]]] = {}
    copies = 0
    for _, _, value in topics.located("events.clean"):
        origin = (int(value["source_partition"]), int(value["source_offset"]))
        held = sources.setdefault(str(value["event_id"]), set())
        copies += origin in held
        held.add(origin)
    twice = {i for i, origins in sources.items() if len(origins) > 1}
    lost = {i for i in ledger.accepted if i not in sources and i not in verdicts}
    filtered = [verdicts[i] for i in ledger.accepted if i not in sources and i in verdicts]
    bots = sum(1 for rule in filtered if rule)
    events = figures["events"]
    detail = (
        f"{len(ledger.accepted):,} accepted: {len(ledger.accepted) - len(filtered) - len(lost):,} "
        f"clean, {bots:,} filtered as bots, {len(filtered) - bots:,} only as duplicates "
        f"(preprocess counted {events['bots']:,} bot and {events['duplicates']:,} duplicate "
        f"records); lost {len(lost)}{_some(lost)}; clean under two source records "
        f"{len(twice)}{_some(twice)}; identical copies re-emitted after a crash {copies}"
    )
    return Check("accepted events in events.clean once (or filtered)", not lost and not twice,
                 detail)  # fmt: skip


def refused_not_written(topics: _Topics, ledger: Ledger) -> Check:
    written = {str(value["event_id"]) for _, _, value in topics.located("telemetry.events")}
    also_sent = ledger.accepted | ledger.unanswered | ledger.refused.get("partial", set())
    refused = ledger.refused.get("none", set()) - also_sent
    bad = refused & written
    partial = ledger.refused.get("partial", set()) - ledger.accepted
    unanswered = ledger.unanswered - ledger.accepted
    detail = (
        f"503 written=none: {len(refused):,} events, {len(bad)} written{_some(bad)}; "
        f"503 written=partial: {len(partial & written):,} of {len(partial):,} written; "
        f"unanswered (timeouts): {len(unanswered & written):,} of {len(unanswered):,} written; "
        f"503 with Retry-After: {ledger.retry_after:,}"
    )
    return Check("nothing answered 503 (written: none) was written", not bad, detail)


def payloads_replayed(topics: _Topics) -> list[Check]:
    settings = topics.settings
    key = settings.model_signing_key
    assert key is not None, "up sets a signing key before the parts start"
    keyring = Keyring.from_settings(settings)
    state = topics.catalogue.topic("model.state")
    examples = topics.name("training.examples")
    serde = topics.catalogue.topic("training.examples").serde(topics.registry, logical_types=False)
    watermarks = topics.source.watermarks(examples)

    def read(ranges: list[PartitionRange], counts: ReadCounts) -> Iterable[Any]:
        return prepared_records(decoded_examples(topics.source, serde, examples, ranges, counts))

    results = []
    for name in settings.models:
        history = model_history(settings, state.serde(topics.registry), state.name, name, keyring)
        good = [s for s in history.snapshots if s.rejected is None]
        if not good:
            results.append(Check(f"{name}: payload = replay of training.examples", False,
                                 "no verified snapshot on model.state"))  # fmt: skip
            continue
        newest = good[-1]
        # Alone in its history: recomputed from scratch, not from its parent.
        verdict = verify_version(
            ModelHistory(name, (newest,), 0), newest, topic=examples, watermarks=watermarks,
            specs=SPECS, key=key, read_examples=read, check_ranges=lambda ranges: None,
            keyring=keyring,
        )  # fmt: skip
        covered = all(r.end == watermarks[r.partition][1] for r in verdict.ranges)
        results.append(
            Check(
                f"{name}: payload = replay of training.examples",
                verdict.identical and covered,
                f"v{newest.version}: {verdict.detail}; {verdict.examples:,} learned from scratch"
                + ("" if covered else "; examples after the snapshot were not learned"),
            )
        )
    return results


def versions_monotone(topics: _Topics) -> Check:
    served: dict[str, list[tuple[int, int]]] = {}
    for _, _, value in topics.located("telemetry.predictions"):
        version = int(value["model_version"])
        if version > 0 and not value["degraded"]:
            served.setdefault(str(value["model_name"]), []).append(
                (_ms(value["served_ts"]), version)
            )
    backwards = []
    for name, moments in sorted(served.items()):
        moments.sort()
        newest, newest_at = 0, 0
        for at_ms, version in moments:
            if version < newest and at_ms > newest_at:
                backwards.append(f"{name} v{version} after v{newest}")
            if version > newest:
                newest, newest_at = version, at_ms
    counts = ", ".join(
        f"{n}: {len(m):,} answers, v{min(v for _, v in m)}..v{max(v for _, v in m)}"
        for n, m in sorted(served.items())
    )
    detail = (
        f"{counts or 'no answer by a model (fallbacks only)'}; older after newer: {len(backwards)}"
        + (f" (first: {backwards[0]})" if backwards else "")
    )
    return Check("no worker served an older version after a newer", not backwards, detail)


def examples_inputs(topics: _Topics) -> dict[str, list[Located]]:
    names = ("telemetry.predictions", "telemetry.feedback", "training.examples")
    return {name: topics.located(name) for name in names}


def check_invariants(
    settings: Settings,
    ledger: Ledger,
    figures: dict[str, Any],
    progress: Callable[[str], None] = lambda _: None,
    *,
    worker_kills: Iterable[float] = (),
) -> list[Check]:
    """Every invariant, read from the topics now (blocking: run it in a thread);
    ``worker_kills``: when (epoch s) a prediction worker was SIGKILLed."""
    with RegistryClient.for_settings(settings) as registry:
        topics = _Topics(settings, registry)
        results = []
        steps: list[Callable[[], list[Check]]] = [
            lambda: [accepted_events_clean(topics, ledger, figures)],
            lambda: [
                examples_once(
                    examples_inputs(topics), ledger, figures, settings, worker_kills=worker_kills
                )
            ],
            lambda: payloads_replayed(topics),
            lambda: [versions_monotone(topics)],
            lambda: [refused_not_written(topics, ledger)],
            lambda: [
                sessions_equal(
                    topics.located("events.clean", plain=True),
                    topics.located("events.sessions", plain=True),
                    SessionRules.from_settings(settings),
                )
            ],
        ]
        for step in steps:
            for check in step():
                progress(f"invariant {'holds' if check.passed else 'VIOLATED'}: {check.name}")
                results.append(check)
        return results
