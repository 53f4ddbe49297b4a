"""Invariant 2 of a chaos run: every prediction the simulated person saw, whose impression
the collector accepted (202), became exactly one training example, or one learned once:
a copy label-join re-emitted after a crash (the same example, a few offsets later) is
skipped by the learner, and counted apart here.

Label-join's rules say when such a prediction may make none, and each is decided by the
log alone, so each exception is checked record by record rather than counted:

- its impression was received after the label horizon (``late_feedback``);
- the horizon had already closed when its impression was read: the partition's feedback
  clock (the newest ``received_ts`` at a lower offset of ``telemetry.feedback``) had
  passed the deadline plus the allowed lateness (an impression more than the allowed
  lateness out of order: a starved collector);
- the impression waited for a prediction that came after the partition's predictions
  clock had passed the impression + the longest horizon + lateness (``orphaned``);
- the prediction was never written to ``telemetry.predictions``: the worker dropped its
  telemetry (counted by the worker), or the worker was SIGKILLed before it was delivered
  (uncounted: a record waits in the worker's memory, at most the telemetry producer's
  delivery timeout, after its answer went out; one answered that long before a SIGKILL of
  a worker, or after it, is not the kill's);
- its only impressions came from a crawler that renders pages (``crawler_feedback``);
- its horizon is still open: no feedback in its partition reached the deadline plus the
  allowed lateness (after the traffic stopped, a partition read late is history, not live,
  and its clock waits for the next record instead of the wall clock).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from streamlearn.agents.user_agents import rendering_crawler
from streamlearn.models.configured import configured_specs
from streamlearn.models.recent_examples import WINDOW_OFFSETS
from streamlearn.serving.telemetry import DELIVERY_TIMEOUT_MS
from streamlearn.simulate.ledger import Ledger
from streamlearn.up.report import Check

Located = tuple[int, int, dict[str, Any]]
LOST_WITH_WORKER_MARGIN_S = 5.0
"""Beyond the delivery timeout: the worker's own buffer before librdkafka's queue (drained
every turn of its event loop) and the simulator's clock against the kill's."""


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)


def _some(ids: Iterable[str], n: int = 3) -> str:
    chosen = sorted(ids)[:n]
    return f" (e.g. {', '.join(chosen)})" if chosen else ""


def _clocks(records: list[Located], field: str) -> dict[tuple[int, int], int]:
    """(partition, offset) → the partition's event time before that record: the newest
    ``field`` at a lower offset (what label-join had read when it read the record)."""
    before: dict[tuple[int, int], int] = {}
    newest: dict[int, int] = {}
    for partition, offset, value in sorted(records, key=lambda r: (r[0], r[1])):
        before[(partition, offset)] = newest.get(partition, 0)
        newest[partition] = max(newest.get(partition, 0), _ms(value[field]))
    return before


def _learned_once(examples: list[Located], repeated: set[str]) -> set[str]:
    """The request ids of ``repeated`` whose every copy is the same example (request id and
    label) within the learner's window of the first, in its partition: a label-join crash
    re-emitted them, and the learner learns one (models/recent_examples.py)."""
    found: dict[str, list[Located]] = {}
    for partition, offset, value in examples:
        request_id = str(value["request_id"])
        if request_id in repeated:
            found.setdefault(request_id, []).append((partition, offset, value))
    once = set()
    for request_id, records in found.items():
        first_partition, first_offset, first = min(records, key=lambda r: r[1])
        if all(
            partition == first_partition
            and offset - first_offset <= WINDOW_OFFSETS
            and value["label"] == first["label"]
            for partition, offset, value in records
        ):
            once.add(request_id)
    return once


def _lost_with_worker(answered_at: float | None, worker_kills: Iterable[float]) -> bool:
    """Answered at most a record's longest wait in memory before a SIGKILL of a worker."""
    if answered_at is None:
        return False
    longest_s = DELIVERY_TIMEOUT_MS / 1000 + LOST_WITH_WORKER_MARGIN_S
    return any(0 <= kill - answered_at <= longest_s for kill in worker_kills)


def examples_once(
    located: dict[str, list[Located]],
    ledger: Ledger,
    figures: dict[str, Any],
    settings: Any,
    *,
    worker_kills: Iterable[float] = (),
) -> Check:
    """``located``: the decoded records of ``telemetry.predictions``, ``telemetry.feedback``
    and ``training.examples``; ``worker_kills``: when (wall clock, epoch s) a prediction
    worker was SIGKILLed."""
    worker_kills = list(worker_kills)
    specs = configured_specs(settings)
    lateness_ms = round(settings.label_allowed_lateness_s * 1000)
    longest_ms = max((spec.label.horizon_ms for spec in specs.values()), default=0)
    predictions_log = located["telemetry.predictions"]
    feedback_log = located["telemetry.feedback"]
    served_clock = _clocks(predictions_log, "served_ts")
    feedback_clock = _clocks(feedback_log, "received_ts")
    feedback_end: dict[int, int] = {}
    for partition, _, value in feedback_log:
        received = _ms(value["received_ts"])
        feedback_end[partition] = max(feedback_end.get(partition, 0), received)
    predictions = {str(v["request_id"]): (p, o, v) for p, o, v in predictions_log}
    impressions: dict[str, tuple[int, int]] = {}
    """request id → (received, the feedback clock when it was read)."""
    by_crawler: set[str] = set()
    for partition, offset, value in feedback_log:
        if value["kind"] == "impression" and rendering_crawler(value.get("user_agent")):
            by_crawler.add(str(value["request_id"]))
        elif value["kind"] == "impression":
            request_id = str(value["request_id"])
            seen = (_ms(value["received_ts"]), feedback_clock[(partition, offset)])
            impressions[request_id] = min(seen, impressions.get(request_id, seen))
    count = Counter(str(v["request_id"]) for _, _, v in located["training.examples"])
    # Seen by a crawler only: label-join leaves its impressions out (agents/labels.py).
    expected = (ledger.seen & ledger.impressions) - (by_crawler - impressions.keys())
    why: dict[str, set[str]] = {
        k: set()
        for k in ("never logged", "late impression", "closed before", "orphaned", "open", "missing")
    }
    killed: set[str] = set()
    """Never logged, answered shortly before a SIGKILL of a worker."""
    for request_id in expected - count.keys():
        found = predictions.get(request_id)
        impression = impressions.get(request_id)
        if found is None:
            why["never logged"].add(request_id)
            if _lost_with_worker(ledger.answered_at.get(request_id), worker_kills):
                killed.add(request_id)
            continue
        partition, offset, prediction = found
        spec = specs.get(str(prediction["model_name"]))
        deadline = _ms(prediction["served_ts"]) + (spec.label.horizon_ms if spec else 0)
        if feedback_end.get(partition, 0) < deadline + lateness_ms:
            why["open"].add(request_id)
        elif impression is None:
            why["missing"].add(request_id)  # accepted, yet not in telemetry.feedback
        elif impression[0] > deadline:
            why["late impression"].add(request_id)
        elif impression[1] >= deadline + lateness_ms:
            why["closed before"].add(request_id)
        elif served_clock[(partition, offset)] >= impression[0] + longest_ms + lateness_ms:
            why["orphaned"].add(request_id)
        else:
            why["missing"].add(request_id)
    repeated = {r for r in expected if count.get(r, 0) > 1}
    copies = _learned_once(located["training.examples"], repeated)
    twice = repeated - copies
    dropped = int(figures["predictions"]["telemetry_dropped"])
    once = len(expected) - sum(len(ids) for ids in why.values()) - len(repeated)
    detail = (
        f"{len(expected):,} seen with an accepted impression: {once:,} once, {len(copies)} "
        f"re-emitted by label-join and learned once{_some(copies)}, {len(twice)} more "
        f"than once{_some(twice)}, {len(why['missing'])} missing{_some(why['missing'])}; "
        f"none by label-join's rules: impression after the horizon {len(why['late impression'])}"
        f", horizon closed before the impression was read {len(why['closed before'])}, "
        f"impression orphaned {len(why['orphaned'])}, horizon still open {len(why['open'])}, "
        f"prediction never logged {len(why['never logged'])} ({len(killed)} answered by a "
        f"worker SIGKILLed before it could deliver their telemetry; the workers counted "
        f"{dropped:,} telemetry records dropped)"
    )
    unexplained = len(why["never logged"]) - len(killed)
    ok = not twice and not why["missing"] and unexplained <= dropped
    return Check("every seen prediction made one training example", ok, detail)
