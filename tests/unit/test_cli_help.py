"""Every command's --help shows its options' help as written: text in brackets, such as
``[default: $STREAMLEARN_KAFKA_BOOTSTRAP]``, was taken for Rich markup and vanished."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from streamlearn.cli import app

ROOT = get_command(app)


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    # typer's own (vendored) click: a group is what has commands.
    if hasattr(group, "commands"):
        for name, command in group.commands.items():
            yield from _commands(command, (*path, name))
    else:
        yield path


def _command(path: tuple[str, ...]) -> Any:
    command: Any = ROOT
    for name in path:
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", sorted(_commands(ROOT)), ids=" ".join)
def test_every_options_help_is_shown_as_written(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    for parameter in _command(path).params:
        text = getattr(parameter, "help", None)
        if text:
            written = " ".join(text.split())
            assert re.sub(r"\s", "", written) in re.sub(r"\s", "", shown), (parameter.name, shown)


def test_only_takes_a_trailing_comma_and_spaces_and_names_what_is_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import typer

    from streamlearn.cli_common import chosen_agents

    known, default = ("preprocess", "sessionise", "learner"), ("preprocess", "sessionise")
    assert chosen_agents(None, known, default) == default
    assert chosen_agents("preprocess,", known, default) == ("preprocess",)
    assert chosen_agents(" learner , preprocess ", known, default) == ("learner", "preprocess")
    # `--only ""` ran every default agent (found by a new user).
    for bad, said in (
        ("", "names no agent"),
        (",", "names no agent"),
        ("preprocess,lerner", "['lerner']"),
    ):
        with pytest.raises(typer.Exit):
            chosen_agents(bad, known, default)
        assert said in capsys.readouterr().err


def test_the_port_a_server_listens_on_is_read_from_aiohttps_start_message() -> None:
    from streamlearn.cli_common import listening_port

    said = "======== Running on http://127.0.0.1:41045 ========\n(Press CTRL+C to quit)"
    assert listening_port(said, 0) == 41045
    assert listening_port("======== Running on https://[::1]:8443 ========", 0) == 8443
    assert listening_port("something else", 8001) == 8001
