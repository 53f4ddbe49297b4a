"""The vendored chart library is exactly what ``scripts/vendor_uplot`` recorded, the page
loads it from the package, and the package data ships every static file."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import tomllib
from pathlib import Path

from streamlearn.dashboard.app import STATIC_DIR

REPO = Path(__file__).parents[2]
VENDOR = STATIC_DIR / "vendor"


def test_the_vendored_files_match_their_recorded_sha256() -> None:
    record = json.loads((VENDOR / "VENDOR.json").read_text())
    assert record["name"] == "uplot"
    assert record["license"] == "MIT"
    assert record["tarball"] == (
        f"https://registry.npmjs.org/uplot/-/uplot-{record['version']}.tgz"
    )
    assert record["integrity"].startswith("sha512-")
    assert set(record["files"]) == {"uPlot.iife.min.js", "uPlot.min.css", "LICENSE"}
    for name, digest in record["files"].items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert {p.name for p in VENDOR.iterdir()} == {*record["files"], "VENDOR.json"}


def test_the_script_pins_the_vendored_version_and_its_integrity() -> None:
    record = json.loads((VENDOR / "VENDOR.json").read_text())
    script = (REPO / "scripts" / "vendor_uplot").read_text()
    assert re.search(
        rf'UPLOT_VERSION="\$\{{UPLOT_VERSION:-{re.escape(record["version"])}\}}"', script
    )
    assert record["integrity"] in script
    banner = (VENDOR / "uPlot.iife.min.js").read_text()[:200]
    assert f"(v{record['version']})" in banner
    assert "MIT License" in (VENDOR / "LICENSE").read_text()


def test_package_data_ships_every_static_file() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["streamlearn"]
    package = REPO / "src" / "streamlearn"
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            relative = path.relative_to(package).as_posix()
            assert any(fnmatch.fnmatch(relative, p) and relative.count("/") == p.count("/")
                       for p in patterns), relative  # fmt: skip
