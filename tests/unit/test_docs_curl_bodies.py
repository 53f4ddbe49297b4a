"""Every curl command the docs give that sends a body names its media type.

A new user upgrading a schema ran docs/schemas.md's
`curl -X PUT -d '{"compatibility":"FULL"}' $REGISTRY/config/telemetry.events-value`:
curl's `-d` alone sends `application/x-www-form-urlencoded`, which the registry (as
Confluent's) answers 415, so the documented level change was never made."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# A command in backticks, or one line of a fenced block, that starts with curl.
CURL = re.compile(r"`(curl [^`]*)`|^\s*(curl (?:.*\\\n)*.*)$", re.MULTILINE)
SENDS_BODY = re.compile(r"(?:^|\s)(?:-d|--data(?:-raw|-binary)?|--json)(?:\s|=)")
NAMES_TYPE = re.compile(r"(?:-H|--header)\s+['\"]?content-type:", re.IGNORECASE)


def _curl_commands() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        for match in CURL.finditer(path.read_text()):
            command = " ".join((match.group(1) or match.group(2)).split())
            found.append((path.name, command))
    return found


def test_the_docs_give_curl_commands_that_send_bodies() -> None:
    assert any(SENDS_BODY.search(c) for _, c in _curl_commands())


def test_every_curl_command_sending_a_body_names_its_content_type() -> None:
    untyped = [
        (where, command)
        for where, command in _curl_commands()
        if SENDS_BODY.search(command) and "--json" not in command and not NAMES_TYPE.search(command)
    ]
    assert untyped == []
