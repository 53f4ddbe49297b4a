"""What the command line loads before a command runs: every command, `--help` included,
starts a Python process that imports :mod:`streamlearn.cli`."""

from __future__ import annotations

import subprocess
import sys

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
