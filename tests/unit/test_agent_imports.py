"""What an agent's process loads: ``streamlearn up`` starts one process per agent, and each
paid for River and SciPy (~2 s of CPU on a 2-core machine, with nine parts starting at once)
whether it learns or not. `up`'s own process loaded them too, for the invariants that only
`--chaos` checks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

RIVER_FREE = (
    "streamlearn.agents",
    "streamlearn.agents.preprocess",
    "streamlearn.agents.sessionise",
    "streamlearn.agents.label_join",
    "streamlearn.agents.monitor",
    "streamlearn.models.specs",
    "streamlearn.serving.experiment_topic",
    # `up` itself, and the parts that neither learn nor serve a model.
    "streamlearn.cli_up",
    "streamlearn.up.system",
    "streamlearn.collector.app",
    "streamlearn.dashboard.app",
    "streamlearn.registry.app",
)


def _loaded(code: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c",
         f"import json, sys; {code}; "
         "print(json.dumps(sorted(m for m in ('river', 'scipy') if m in sys.modules)))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    names: list[str] = json.loads(result.stdout)
    return names


@pytest.mark.parametrize("module", RIVER_FREE)
def test_agents_that_do_not_learn_load_no_river(module: str) -> None:
    assert _loaded(f"import {module}") == []


def test_the_specs_build_their_river_estimators_when_asked() -> None:
    loaded = _loaded(
        "from streamlearn.models.specs import SPECS; [spec.new_model(7) for spec in SPECS.values()]"
    )
    assert loaded == ["river", "scipy"]
