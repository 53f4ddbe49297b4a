"""The wheel must contain every module: setuptools' find_packages skips folders without
``__init__.py``, which an editable install would hide."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "streamlearn"


def test_every_folder_with_modules_is_a_package() -> None:
    missing = [
        str(folder.relative_to(PACKAGE))
        for folder in [PACKAGE, *PACKAGE.rglob("*")]
        if folder.is_dir() and any(folder.glob("*.py")) and not (folder / "__init__.py").exists()
    ]
    assert missing == []
