"""A chaos run inside ``up``: the faults while the traffic runs, then the drain and the
invariants (``up/chaos.py``, ``up/drain.py``, ``up/invariants.py`` do the work)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from streamlearn.kafka_local import EmbeddedKafka
from streamlearn.settings import Settings
from streamlearn.simulate import Simulator
from streamlearn.simulate.ledger import Ledger
from streamlearn.up.chaos import PAUSE_BEYOND_SESSION_S, Chaos, ChaosOptions, plan, with_chaos
from streamlearn.up.children import Child
from streamlearn.up.drain import drain
from streamlearn.up.report import Check

CHAOS_DEFAULTS = {
    # Under the simulator's 5 s client timeout, so a broker outage is answered (503 with
    # Retry-After) rather than left to time out.
    "STREAMLEARN_COLLECTOR_DELIVERY_TIMEOUT_S": "3",
}
"""What ``up --chaos`` changes unless the environment sets it."""


def _check_invariants(*args: Any, **options: Any) -> list[Check]:
    """:func:`streamlearn.up.invariants.check_invariants`, imported here (off the event
    loop, in the thread that runs it): the invariants replay the models' histories, which
    loads River and SciPy (~1.5 s of CPU), and `up` without --chaos checks none of them."""
    from streamlearn.up.invariants import check_invariants

    return check_invariants(*args, **options)


class ChaosRun:
    """The faults of one ``up``, and what is checked after them."""

    def __init__(
        self,
        options: ChaosOptions,
        settings: Settings,
        duration_s: float | None,
        children: Callable[[], Sequence[Child]],
        broker: EmbeddedKafka | None,
        simulator: Simulator,
        say: Callable[[str], None],
    ) -> None:
        self.options, self.settings, self.say = options, settings, say
        self.children = children
        pause_s = options.pause_s or settings.consumer_session_timeout_s + PAUSE_BEYOND_SESSION_S
        faults = plan(options, duration_s, pause_s, broker is not None)
        self.ledger = simulator.ledger = Ledger()
        self.chaos = Chaos(
            faults,
            children,
            broker,
            settings.kafka_start_timeout_s,
            say,
            simulator,
            options.interval_s,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.invariants: list[Check] = []
        self.lag: dict[str, int] = {}
        planned = ", ".join(f"{f.kind} {f.target} at {f.at_s:.0f}s" for f in faults)
        say(f"chaos (seed {options.seed}): {planned or 'no fault fits the duration'}")

    def start(self, started: float) -> None:
        self.task = asyncio.create_task(self.chaos.run(started, self.stop))

    async def end_faults(self) -> None:
        """No more faults (a pause in progress is let go, a stopped broker restarted)."""
        self.stop.set()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def drain_and_check(self, figures: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """After the traffic: the drain, then the invariants against the ground truth
        (``figures()``: the parts' counters after the drain). Not with Kafka down for good
        (a broker fault's restart failed, a failed check of its own): there is nothing to
        drain into, nor to read the outcome from."""
        if self.chaos.broker_down:
            self.say("Kafka is down: no drain, invariants not checked")
            return
        self.lag = await drain(self.settings, self.say)
        worker_kills = [
            f["ended"]
            for f in self.chaos.faults
            if f["kind"] == "kill" and f["target"] == "serve" and "pid" in f  # sent, not skipped
        ]
        self.invariants = await asyncio.to_thread(
            _check_invariants,
            self.settings,
            self.ledger,
            await figures(),
            self.say,
            worker_kills=worker_kills,
        )
        if any(self.lag.values()):
            self.invariants.append(
                Check("agents caught up after the drain", False, f"still behind: {self.lag}")
            )

    def report(self, final: dict[str, Any], results: list[Check]) -> list[Check]:
        """``final["chaos"]`` and the checks of the run: ``up``'s (an injected kill's crash
        expected) and the invariants."""
        final["chaos"] = {
            "seed": self.options.seed,
            "faults": self.chaos.faults,
            "invariants": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.invariants
            ],
        }
        restarts = sum(1 for f in self.chaos.faults if f["kind"] == "broker" and "down_s" in f)
        if "kafka" in final["processes"]:
            final["processes"]["kafka"]["starts"] += restarts
            final["processes"]["kafka"]["pid"] = self.chaos.broker_pid or final["processes"][
                "kafka"]["pid"]  # fmt: skip
        crashes = [
            (c.name, c.exit_code, c.at, c.stuck_s is not None)
            for child in self.children()
            for c in child.crashes
        ]
        return with_chaos(results, crashes, self.chaos.faults) + self.invariants
