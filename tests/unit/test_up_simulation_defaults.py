"""`up --simulate`'s defaults against the user's own settings sources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamlearn.up.simulation import apply_simulate_defaults

pytestmark = pytest.mark.unit


def test_the_simulations_defaults_never_outrank_a_users_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user: with `.env` setting `STREAMLEARN_MODELS=["ctr"]` (and a
    config file setting `session_gap_s: 120`), `up --simulate` said "simulation default:
    STREAMLEARN_MODELS=["ctr", "ctr_tree"]" and ran both: its defaults went into the
    environment, which outranks the files the README gives as settings sources. A
    setting any source gives is the user's; only the others get the simulation's."""
    config = tmp_path / "settings.yaml"
    config.write_text("session_gap_s: 120\n")
    (tmp_path / ".env").write_text('STREAMLEARN_MODELS=["ctr"]\n')
    monkeypatch.chdir(tmp_path)
    environ = {"STREAMLEARN_CONFIG_FILE": str(config), "STREAMLEARN_SNAPSHOT_EVERY_S": "7"}
    for name in list(os.environ):
        if name.startswith("STREAMLEARN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(config))
    monkeypatch.setenv("STREAMLEARN_SNAPSHOT_EVERY_S", "7")
    applied = apply_simulate_defaults(environ)
    assert "STREAMLEARN_MODELS" not in applied
    assert "STREAMLEARN_SESSION_GAP_S" not in applied
    assert "STREAMLEARN_SNAPSHOT_EVERY_S" not in applied
    assert applied["STREAMLEARN_LABEL_HORIZON_S"] == "20"
    assert environ["STREAMLEARN_LABEL_HORIZON_S"] == "20"
