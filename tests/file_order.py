"""The order `scripts/test` hands test files to its two workers.

The integration and e2e tiers run together on two workers, which take whole files in
collection order (``--dist loadfile --no-loadscope-reorder``). Two things matter:

- A long file taken last keeps one worker busy for minutes while the other idles (xdist's
  default order, by number of tests, left the one-test e2e files for last).
- Two files that run the whole system at once (``up``, its agents, a replay learning a
  model) slow each other down: the longest first, all together, took 1,450 s where xdist's
  order took 1,263 s, and this one 1,228 s (2026-12-05).

So the files that run the whole system come one at a time, each followed by about as many
seconds of the lighter files for the other worker. (Both tiers keep the two cores busy:
76 % on average over a run, near 100 % while whole-system files run.)
"""

from __future__ import annotations

from collections.abc import Iterable

# Seconds each, on 2 cores with both workers busy (2026-12-05: `pytest -n 2 --dist loadfile
# --durations=0 tests/integration tests/e2e`, 2,473 s of tests; the replay file and the e2e
# run with every door shut measured again after their change). Files not listed take less.
SECONDS = {
    "integration/test_replay.py": 260,
    "integration/test_up.py": 191,
    "e2e/test_up_simulate.py": 170,
    "e2e/test_chaos.py": 156,
    "integration/test_serving.py": 144,
    "integration/test_kafka_secure.py": 99,
    "integration/test_embedded_kafka.py": 98,
    "integration/test_archive.py": 92,
    "integration/test_event_time.py": 84,
    "integration/test_feedback_loop.py": 78,
    "integration/test_monitor.py": 76,
    "integration/test_registry_outage.py": 71,
    "integration/test_ingest.py": 71,
    "integration/test_fuzz_http.py": 65,
    "integration/browser/test_browser_tag.py": 59,
    "integration/test_helm_smoke.py": 58,
    "integration/test_collector.py": 57,
    "integration/test_agent_health.py": 52,
    "integration/test_scaling.py": 50,
    "integration/test_registry.py": 48,
    "integration/test_acls.py": 44,
    "integration/test_broker_probe.py": 41,
    "integration/browser/test_browser_tag_limits.py": 35,
    "integration/test_cli_ports.py": 31,
    "integration/test_simulate.py": 25,
    "integration/test_hostile_input.py": 25,
    "integration/test_learner_gate.py": 22,
    "integration/test_http_tls.py": 21,
}
UNLISTED_SECONDS = 10

WHOLE_SYSTEM = frozenset(
    {
        "integration/test_replay.py",
        "integration/test_up.py",
        "e2e/test_chaos.py",
        "e2e/test_up_simulate.py",
        "integration/test_embedded_kafka.py",
        "integration/test_helm_smoke.py",
    }
)
"""Files whose tests start the whole system (``up``, the chart's processes) or replay a
model's history: CPU-bound on two cores."""


def file_order(files: Iterable[str]) -> list[str]:
    """``files`` (paths relative to tests/) in the order to run them: each whole-system
    file, longest first, followed by lighter files, longest first, until they add up to
    its seconds; then the lighter files left, longest first (files without measured
    seconds in the order given)."""
    given = list(dict.fromkeys(files))

    def seconds(name: str) -> int:
        return SECONDS.get(name, UNLISTED_SECONDS)

    heavy = sorted((f for f in given if f in WHOLE_SYSTEM), key=seconds, reverse=True)
    light = sorted((f for f in given if f not in WHOLE_SYSTEM), key=seconds, reverse=True)
    order: list[str] = []
    for name in heavy:
        order.append(name)
        beside = 0
        while light and beside < seconds(name):
            beside += seconds(light[0])
            order.append(light.pop(0))
    return order + light
