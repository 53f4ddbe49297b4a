"""Run a `streamlearn` command line in the test's own process, as its console script would.

A `streamlearn replay` subprocess spends about 3.5 s of CPU before it reads a record:
starting Python and importing River, whose metrics and linear models import SciPy's
statistics. A test file that runs two dozen commands spent most of its minutes there
(2026-12-05: 69 s of one test's 94 s). In process, the command runs through the console
script's own entry point (:func:`streamlearn.cli.main`: its error handling and exit
status) with the environment given and its output captured; only what every command
line's process starts from is shared with the test: the modules already imported.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Mapping
from contextlib import redirect_stderr, redirect_stdout
from unittest import mock

from streamlearn import kafka_clients
from streamlearn.cli import main


def run_command(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``streamlearn *args`` with exactly ``env`` as its environment: its exit status and
    what it wrote to stdout and stderr, as :func:`subprocess.run` gives them."""
    stdout, stderr = io.StringIO(), io.StringIO()
    status = 0
    # A command that answers and exits quietens the librdkafka clients it makes from then
    # on (a module setting): the test's own clients keep theirs.
    with (
        mock.patch.dict(os.environ, env, clear=True),
        mock.patch.object(kafka_clients, "_log_level", kafka_clients._log_level),
        redirect_stdout(stdout),
        redirect_stderr(stderr),
    ):
        try:
            main(list(args))
        except SystemExit as stopped:
            code = stopped.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess(
        ["streamlearn", *args], status, stdout.getvalue(), stderr.getvalue()
    )
