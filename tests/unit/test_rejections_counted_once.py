"""A record no agent can take is counted once as rejected, by the agent that routes it to
``events.rejected``: the monitor, which reads topics other agents read and publishes no
rejections, counts what it could not read apart. It was counted in
``streamlearn_rejected_records_total`` too, so one bad record fired the chart's
``StreamlearnRecordsRejected`` twice (once for preprocess, once for the monitor) and the
dashboard's rejected records summed it twice, though ``events.rejected`` held it once."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.records import StepOutputs


def _outputs(agent: str, metrics: AgentMetrics, *, publish: bool) -> StepOutputs:
    return StepOutputs({}, lambda *a: None, agent, metrics, lambda: 0, {},  # type: ignore[arg-type]
                       publish_rejections=publish)  # fmt: skip


def _count(metrics: AgentMetrics, name: str, agent: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"agent": agent, "reason": "bad_magic_byte"})


def test_an_agent_that_publishes_no_rejections_counts_what_it_could_not_read_apart() -> None:
    metrics = AgentMetrics(CollectorRegistry())
    monitor = _outputs("monitor", metrics, publish=False)
    monitor.reject_raw("t.events", 0, 7, b"k", b"\x07junk", "bad_magic_byte", "no magic", None)
    assert _count(metrics, "streamlearn_rejected_records_total", "monitor") is None
    assert _count(metrics, "streamlearn_unread_records_total", "monitor") == 1.0
