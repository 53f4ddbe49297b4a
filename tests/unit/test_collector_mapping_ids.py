"""Event ids: any form ``uuid.UUID`` reads is kept in its canonical form, anything else is
refused naming the field (collector/mapping.py)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import pytest

from streamlearn.collector.exceptions import InvalidEventError
from streamlearn.collector.mapping import RequestContext, map_item

CONTEXT = RequestContext(datetime(2026, 12, 2, tzinfo=UTC), "127.0.0.1", "test", "1.0")


def _mapped_id(event_id: str) -> str:
    item = {"event_type": "page_view", "user_id": "u1", "event_id": event_id}
    return str(map_item(item, 0, CONTEXT, reject_unknown=True).record["event_id"])


def _forms(value: uuid.UUID) -> list[str]:
    text = str(value)
    return [text, text.upper(), "{" + text + "}", "urn:uuid:" + text, value.hex, value.hex.upper()]


def test_every_form_uuid_reads_is_kept_canonical() -> None:
    rng = random.Random(4)
    values = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(300)]
    values += [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.uuid4()]
    for value in values:
        for form in _forms(value):
            assert _mapped_id(form) == str(uuid.UUID(form)) == str(value), form


def test_digits_python_reads_as_hex_are_canonicalised_too() -> None:
    # uuid.UUID reads digits of any script (int(..., 16) does): such an id is kept as the
    # ASCII form it stands for, never as sent.
    assert _mapped_id("\uff101234567-89ab-cdef-0123-456789abcdef") == (
        "01234567-89ab-cdef-0123-456789abcdef"
    )


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not-a-uuid",
        "0123456789abcdef0123456789abcdeg",
        "01234567-89ab-cdef-0123-456789abcde",  # one digit short
        "01234567-89ab-cdef-0123-456789abcdef0",  # one digit over
        "01234567-89ab-cdef-0123_456789abcdef",
        "01234567-89ab-cdef-0123-456789abcdef\n",
    ],
)
def test_anything_else_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(InvalidEventError) as refused:
        _mapped_id(bad)
    assert refused.value.field.endswith("event_id")
