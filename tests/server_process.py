"""A streamlearn HTTP server (`collector serve`, `serve`, `registry serve`, `dashboard`) run
as its own process the way users run it, ready once its /healthz answers 200 (over TLS
when given a CA to trust), its whole output kept for tests that read its logs."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence


class ServerProcess:
    def __init__(
        self,
        args: Sequence[str],
        port: int,
        env: Mapping[str, str],
        *,
        cafile: str | None = None,
        health_path: str = "/healthz",
    ) -> None:
        self.scheme = "https" if cafile else "http"
        self.url = f"{self.scheme}://127.0.0.1:{port}"
        self.health_url = self.url + health_path
        self.context = ssl.create_default_context(cafile=cafile) if cafile else None
        # A file, not a pipe: a chatty server (DEBUG logs) must never block on a full pipe.
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 (closed by stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlearn", *args],
            env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.output = ""
        """Everything it printed (after :meth:`stop`)."""

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.url} exited {self.process.returncode}: {self.output}")
            try:
                with urllib.request.urlopen(
                    self.health_url, timeout=1, context=self.context
                ) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.url} not ready within {timeout_s}s: {self.output}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.seek(0)
            self.output = self._log.read()
            self._log.close()
        return self.process.returncode
