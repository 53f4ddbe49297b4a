"""What the command line loads before a command runs: every command, `--help` included,
starts a Python process that imports :mod:`streamlearn.cli`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import streamlearn.archive


def test_the_command_line_loads_the_archive_s_file_formats_only_for_an_archive() -> None:
    """``streamlearn.cli`` imports ``streamlearn.archive.exceptions``, which ran the
    package's ``__init__``: pyarrow and everything else the archive uses, about half a
    second of every command's start on a 2-core machine."""
    loaded = subprocess.run(
        [sys.executable, "-c",
         "import sys, streamlearn.cli; print(sorted(m for m in ('pyarrow', 'fsspec') "
         "if m in sys.modules))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert loaded.stdout.strip() == "[]"


def test_every_name_the_archive_package_exports_resolves_and_others_do_not() -> None:
    from streamlearn.archive import agent, reader

    assert streamlearn.archive.ArchiveAgent is agent.ArchiveAgent
    assert streamlearn.archive.read_archive is reader.read_archive
    for name in streamlearn.archive.__all__:
        assert getattr(streamlearn.archive, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        streamlearn.archive.no_such_name  # noqa: B018


_REFUSED = """
import sys
from streamlearn.cli import main
heavy = sys.argv[1].split(",")
try:
    main(sys.argv[2:])
except SystemExit as exc:
    print("exit", exc.code)
print(sorted(m for m in heavy if m in sys.modules))
"""
"""Runs a command that must refuse, then prints its exit status and which of the heavy
modules (argv[1], comma-separated) it had loaded by then."""


def _refused(
    command: list[str], heavy: list[str], environment: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """``command`` run in a fresh interpreter with no STREAMLEARN_ settings but
    ``environment``; its stdout: the exit status, then the ``heavy`` modules it loaded."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLEARN_")}
    return subprocess.run(
        [sys.executable, "-c", _REFUSED, ",".join(heavy), *command],
        capture_output=True, text=True, check=True, cwd=tmp_path,
        env={**clean, "STREAMLEARN_DATA_DIR": str(tmp_path), **environment},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("environment", "reason"),
    [
        ({}, "STREAMLEARN_MODEL_SIGNING_KEY"),
        ({"STREAMLEARN_MODEL_SIGNING_KEY": "ab" * 32, "STREAMLEARN_MODELS": '["nosuch"]'},
         "unknown model spec 'nosuch'"),
        ({"STREAMLEARN_MODEL_SIGNING_KEY": "ab" * 32,
          "STREAMLEARN_HTTP_TLS_CERTFILE": "/nonexistent/cert.pem"},
         "STREAMLEARN_HTTP_TLS_CERTFILE=/nonexistent/cert.pem"),
    ],
)  # fmt: skip
def test_serve_refuses_its_settings_before_loading_the_models_libraries(
    environment: dict[str, str], reason: str, tmp_path: Path
) -> None:
    """``serve`` without a signing key imported River, SciPy and NumPy (the serving
    package) before it said what was missing: ~30 s on a cold, small machine, to refuse."""
    command = ["serve", "--port", "23811"]
    refused = _refused(command, ["river", "scipy", "numpy"], environment, tmp_path)
    assert reason in refused.stderr
    assert refused.stdout.splitlines() == ["exit 1", "[]"]


@pytest.mark.parametrize(
    ("environment", "reason"),
    [
        ({}, "STREAMLEARN_MODEL_SIGNING_KEY"),
        ({"STREAMLEARN_MODEL_SIGNING_KEY": "ab" * 32, "STREAMLEARN_MODELS": '["nosuch"]'},
         "unknown model spec 'nosuch'"),
    ],
)  # fmt: skip
def test_agents_run_refuses_its_settings_before_loading_faust_and_the_models_libraries(
    environment: dict[str, str], reason: str, tmp_path: Path
) -> None:
    """``agents run`` without a signing key imported Faust, River, SciPy and NumPy before
    the learner said what was missing."""
    heavy = ["faust", "river", "scipy", "numpy"]
    refused = _refused(["agents", "run"], heavy, environment, tmp_path)
    assert reason in refused.stderr
    assert refused.stdout.splitlines() == ["exit 1", "[]"]


@pytest.mark.parametrize("command", [["replay", "model", "ctr"], ["replay", "verify", "ctr"]])
def test_replay_refuses_a_missing_key_before_loading_the_models_libraries(
    command: list[str], tmp_path: Path
) -> None:
    """``replay model`` and ``replay verify`` imported River and SciPy before saying the
    signing key was missing."""
    refused = _refused(command, ["river", "scipy"], {}, tmp_path)
    assert "STREAMLEARN_MODEL_SIGNING_KEY" in refused.stderr
    assert refused.stdout.splitlines() == ["exit 1", "[]"]
