"""How many cores an agent worker counts on before it starts a decoding process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamlearn.runtime.faust_step import usable_cores

pytestmark = pytest.mark.unit


def test_a_cgroup_quota_caps_the_cores_the_process_may_run_on(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")  # a limit of one CPU
    assert usable_cores(cpu_max) == min(affinity, 1.0)
    cpu_max.write_text("max 100000\n")
    assert usable_cores(cpu_max) == affinity
    assert usable_cores(tmp_path / "absent") == affinity
    cpu_max.write_text("garbage\n")
    assert usable_cores(cpu_max) == affinity
