"""A worker's HTTP endpoint: ``/metrics`` for Prometheus and the probes Kubernetes asks.

``/healthz`` (liveness) answers 503 when the worker's event loop has not run its heartbeat
for ``stale_after_s``: a loop blocked that long processes nothing and should be restarted.
``/readyz`` answers 503 until the worker has started, while a rebalance or table
recovery is under way, while a batch waits for the schema registry, and while Kafka does
not answer (:mod:`~streamlearn.runtime.broker_probe`, when the worker has one). Both answers name
the worker's pid. The server runs in its own thread (like prometheus_client's), so it
answers even when the loop does not: that is what makes the liveness check meaningful.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streamlearn.listen_errors import bind_error
from streamlearn.runtime.broker_probe import KAFKA_UNREACHABLE, BrokerProbe
from streamlearn.runtime.faust_app import BatchingApp

HEARTBEAT_EVERY_S = 1.0
STALE_AFTER_S = 30.0


class WorkerHealth:
    """The worker's liveness and readiness, read by the HTTP thread."""

    def __init__(
        self,
        app: BatchingApp,
        stale_after_s: float = STALE_AFTER_S,
        probe: BrokerProbe | None = None,
    ) -> None:
        self.app = app
        self.stale_after_s = stale_after_s
        self.probe = probe
        self.last_beat: float | None = None

    def install(self) -> None:
        """Beat from a task of the app's own loop, started with the app."""

        async def heartbeat() -> None:
            while True:
                self.last_beat = time.monotonic()
                await asyncio.sleep(HEARTBEAT_EVERY_S)

        self.app.task(heartbeat)

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        if self.last_beat is None:
            return True, {"status": "starting"}
        age = time.monotonic() - self.last_beat
        alive = age < self.stale_after_s
        return alive, {"status": "ok" if alive else "event loop stalled", "beat_age_s": age}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.last_beat is None:
            return False, {"status": "starting"}
        if self.app.rebalancing or self.app.in_recovery:
            return False, {"status": "rebalancing or recovering"}
        waiting_for = self.app.waiting_for
        if waiting_for is not None:
            return False, {"status": f"waiting for {waiting_for}"}
        return self.reachable() or (True, {"status": "ready"})

    def reachable(self) -> tuple[bool, dict[str, Any]] | None:
        """Not ready while the probe's last request to Kafka failed (None: no objection)."""
        error = None if self.probe is None else self.probe.error
        return None if error is None else (False, {"status": KAFKA_UNREACHABLE, "error": error})


def serve_health(
    health: WorkerHealth, registry: CollectorRegistry, host: str, port: int
) -> ThreadingHTTPServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                return
            checks = {"/healthz": health.liveness, "/readyz": health.readiness}
            if path not in checks:
                self._send(404, b'{"error": "not found"}', "application/json")
                return
            ok, body = checks[path]()
            # The pid lets a supervisor tell its own child's answer from another's (a port
            # given to two processes: the second cannot listen, the first answers).
            answer = {**body, "pid": os.getpid()}
            self._send(200 if ok else 503, json.dumps(answer).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Probes every few seconds are not worth a log line each."""

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise bind_error(exc, host, port) from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    return server
