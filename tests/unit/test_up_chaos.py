"""The chaos schedule, the crash verdicts and the simulator's ledger (no broker)."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from pathlib import Path

import pytest

from streamlearn import ports
from streamlearn.kafka_local import BrokerStatus, free_port
from streamlearn.kafka_local.config import BrokerConfig
from streamlearn.kafka_local.exceptions import BrokerStartError
from streamlearn.simulate.ledger import Ledger
from streamlearn.up import broker as up_broker
from streamlearn.up import chaos as chaos_module
from streamlearn.up.chaos import (
    KILLABLE,
    Chaos,
    ChaosOptions,
    Fault,
    classify_crashes,
    plan,
    with_chaos,
)
from streamlearn.up.report import Check


def test_the_default_schedule_is_one_of_each_fault_in_a_seeded_order() -> None:
    first = plan(ChaosOptions(seed=3), 600.0, pause_s=34.0, with_broker=True)
    again = plan(ChaosOptions(seed=3), 600.0, pause_s=34.0, with_broker=True)
    other = plan(ChaosOptions(seed=4), 600.0, pause_s=34.0, with_broker=True)
    assert first == again
    assert [f.target for f in first] != [f.target for f in other]
    kills = sorted(f.target for f in first if f.kind == "kill")
    assert kills == sorted(KILLABLE)
    assert [f.kind for f in first].count("broker") == 1
    assert [f.kind for f in first].count("pause") == 1
    # One at a time: each starts an interval after the previous one ended.
    for before, after in itertools.pairwise(first):
        busy = before.lasts_s + (15.0 if before.kind == "broker" else 0.0)
        assert after.at_s == pytest.approx(before.at_s + busy + 15.0)


def test_a_schedule_ends_within_the_duration_and_skips_a_broker_it_does_not_own() -> None:
    options = ChaosOptions(interval_s=3, faults=("kill:serve", "broker", "pause:learner"))
    assert plan(options, 60.0, pause_s=10.0, with_broker=True) == [
        Fault("kill", "serve", 3.0),
        Fault("broker", "kafka", 6.0, 30.0),
    ]
    assert plan(options, 60.0, pause_s=10.0, with_broker=False) == [
        Fault("kill", "serve", 3.0),
        Fault("pause", "learner", 6.0, 10.0),
    ]


@pytest.mark.parametrize("fault", ["kill:kafka", "pause:collector", "restart", "kill:"])
def test_unknown_faults_are_refused_with_the_choices(fault: str) -> None:
    with pytest.raises(ValueError, match="kill:PART"):
        ChaosOptions(faults=(fault,))


@pytest.mark.parametrize(
    "options",
    [
        {"interval_s": math.nan},
        {"interval_s": math.inf},
        {"outage_s": math.nan},
        {"outage_s": math.inf},
    ],
)
def test_seconds_that_are_not_a_number_are_refused(options: dict[str, float]) -> None:
    """`--chaos-interval nan` passed the check (nan <= 0 is false) and `up` started every
    part to run a schedule of faults at second nan; `--chaos-outage inf`, a broker down
    for good."""
    with pytest.raises(ValueError, match="--chaos-interval"):
        ChaosOptions(**options)


def test_crashes_are_the_injected_kills_a_missing_dependency_or_a_failure() -> None:
    faults = [
        {"kind": "kill", "target": "serve", "pid": 10, "ended": 100.0},
        {"kind": "broker", "target": "kafka", "down_s": 30.0, "ended": 200.0},
    ]
    crashes = [
        ("serve", -9, 100.1, False),  # the kill
        ("serve", -9, 150.0, False),  # a second SIGKILL chaos did not send
        ("preprocess", 1, 185.0, False),  # could not start while the broker was down
        ("learner", 1, 280.0, False),  # within the grace after it came back
        ("learner", 1, 400.0, False),  # long after: a failure
        ("sessionise", -9, 500.0, True),  # wedged: killed and restarted by up
    ]
    assert classify_crashes(crashes, faults) == {
        "injected": ["serve"],
        "dependency": ["preprocess (exit 1)", "learner (exit 1)"],
        "stuck": ["sessionise"],
        "other": ["serve (exit -9)", "learner (exit 1)"],
    }


def test_a_chaos_run_replaces_the_no_crash_check_and_judges_the_outage() -> None:
    during = {
        "predictions_200": 500, "degraded": 0, "predict_errors": 0, "events_accepted": 0,
        "collector_503": 40, "collector_503_retry_after": 40, "collector_unanswered": 2,
    }  # fmt: skip
    faults = [
        {"kind": "kill", "target": "serve", "pid": 10, "ended": 100.0, "at_s": 5.0},
        {"kind": "broker", "target": "kafka", "down_s": 30.0, "ended": 200.0, "at_s": 20.0,
         "during": during},
    ]  # fmt: skip
    results = [
        Check("no part crashed", False, "serve"),
        Check("every process exited cleanly", True, "all"),
        Check("ctr reached 10 versions", False, "4 published"),
    ]
    judged = with_chaos(results, [("serve", -9, 100.0, False)], faults)
    assert [c.name for c in judged[:2]] == [
        "no crash but from the injected faults",
        "every process exited cleanly",
    ]
    assert judged[0].passed
    assert judged[2].passed
    assert "503 40 (Retry-After 40)" in judged[2].detail
    silent = {**during, "collector_503_retry_after": 39}
    faults[1]["during"] = silent
    assert not with_chaos(results, [("serve", -9, 100.0, False)], faults)[2].passed


def test_the_ledger_keeps_event_ids_by_answer_and_seen_impressions() -> None:
    ledger = Ledger()
    page = {"event_id": "e1", "event_type": "page_view"}
    impression = {"event_id": "f1", "request_id": "r1", "kind": "impression"}
    click = {"event_id": "f2", "request_id": "r2", "kind": "click"}
    ledger.answered([page, impression, click], 202, None)
    ledger.answered([{"event_id": "e2"}], 503, {"written": "none"})
    ledger.answered([{"event_id": "e3"}], 503, {"written": "partial"})
    ledger.answered([{"event_id": "e4"}], 400, {"error": "bad", "field": "user_id"})
    ledger.unanswered_items([{"event_id": "e5"}, impression])
    assert ledger.accepted == {"e1"}
    assert ledger.impressions == {"r1"}
    assert ledger.refused == {"none": {"e2"}, "partial": {"e3"}}
    assert ledger.unanswered == {"e5"}


class _StoppableBroker:
    """What the broker fault needs of an embedded broker: its address and a clean stop."""

    def __init__(self, port: int) -> None:
        self.config = BrokerConfig(data_dir=Path("/nonexistent"), port=port)

    def stop(self) -> bool:
        return True


def _broker_fault(outage_s: float) -> tuple[Chaos, list[str], int]:
    port = free_port()
    said: list[str] = []
    chaos = Chaos(
        [Fault("broker", "kafka", 0.0, outage_s)],
        list,
        _StoppableBroker(port),  # type: ignore[arg-type]
        5.0,
        said.append,
        None,
    )
    return chaos, said, port


async def test_a_broker_port_is_held_through_its_outage_and_a_failed_start_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the broker is down its clients retry; with the port in the ephemeral range one
    of them could take it as its own port and connect to itself, and the broker could not
    listen there again for two minutes (`up --chaos` then left Kafka down for the rest of the
    run without a word). The port is held through the outage; a start that fails anyway is
    tried again, and said."""
    chaos, said, port = _broker_fault(outage_s=0.3)
    held_at_each_start: list[bool] = []

    async def start(broker: object, timeout_s: float) -> BrokerStatus:
        held_at_each_start.append(not ports.bindable("127.0.0.1", port))
        if len(held_at_each_start) < 3:
            raise BrokerStartError(f"port {port} on 127.0.0.1 is held by …")
        return BrokerStatus(True, 4242, f"127.0.0.1:{port}", True)

    monkeypatch.setattr(up_broker, "start_broker", start)
    monkeypatch.setattr(chaos_module, "RESTART_RETRY_EVERY_S", 0.05)
    running = asyncio.create_task(chaos.run(time.monotonic(), asyncio.Event()))
    await asyncio.sleep(0.15)
    assert not ports.bindable("127.0.0.1", port), "no client may take the port meanwhile"
    await running
    # Held through each start too (Kafka's listener binds beside the hold), let go after.
    assert held_at_each_start == [True, True, True]
    assert ports.bindable("127.0.0.1", port)
    assert chaos.broker_pid == 4242
    assert not chaos.broker_down
    assert [f.get("restart_failed") for f in chaos.faults] == [None]
    assert sum("did not start again" in line and "retrying" in line for line in said) == 2


async def test_a_broker_that_never_starts_again_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The failure was raised only when the run ended, which cost the summary and blamed
    "another process" for the port."""
    chaos, said, port = _broker_fault(outage_s=0.0)

    async def start(broker: object, timeout_s: float) -> BrokerStatus:
        raise BrokerStartError("the JVM exited")

    monkeypatch.setattr(up_broker, "start_broker", start)
    monkeypatch.setattr(chaos_module, "RESTART_RETRY_EVERY_S", 0.01)
    monkeypatch.setattr(chaos_module, "RESTART_RETRY_S", 0.05)
    await chaos.run(time.monotonic(), asyncio.Event())
    assert chaos.broker_down
    [fault] = chaos.faults
    assert fault["restart_failed"] == "the JVM exited"
    assert "Kafka did not start again after its outage: the JVM exited" in said[-1]
    assert ports.bindable("127.0.0.1", port), "nothing is held once the fault gave up"
    [check] = with_chaos([], [], chaos.faults)
    assert not check.passed
    assert check.name == "Kafka started again after its outage at 0s"
    assert "the JVM exited" in check.detail


def test_a_part_that_fails_while_the_broker_is_being_stopped_exited_for_the_outage() -> None:
    """Found in CI: label-join, restarted after its SIGKILL, failed to get metadata while
    the broker was shutting down for the next fault (15:42:36-39), a few seconds before
    the outage's recorded start (the time its stop returned), and the run failed 'no crash
    but from the injected faults' with `other: label-join (exit 1)`. The outage begins
    when its stop begins."""
    faults = [
        {"kind": "broker", "target": "kafka", "down_s": 15.0, "began": 180.0, "ended": 200.0},
    ]
    crashes = [("label-join", 1, 182.0, False), ("learner", 1, 170.0, False)]
    assert classify_crashes(crashes, faults) == {
        "injected": [],
        "dependency": ["label-join (exit 1)"],
        "stuck": [],
        "other": ["learner (exit 1)"],
    }
