"""The collector's fields against its OpenAPI document (collector/mapping.py, openapi.py):
client timestamps within the range the document declares (epoch milliseconds, or ISO 8601
text with a zone), refused naming the field otherwise, never an exception the handler did not
expect; null taken as absent exactly where the document allows it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest

from streamlearn.collector.exceptions import InvalidEventError
from streamlearn.collector.mapping import EARLIEST_MS, LATEST_MS, RequestContext, map_item
from streamlearn.collector.openapi import openapi_document
from streamlearn.settings import Settings

CONTEXT = RequestContext(datetime(2026, 12, 3, tzinfo=UTC), "127.0.0.1", "test", "1.0")


def _client_ts(value: Any, *, feedback: bool = False) -> datetime:
    item: dict[str, Any] = {"user_id": "u1", "client_ts": value}
    if feedback:
        item.update(request_id="r1", kind="click")
    else:
        item["event_type"] = "page_view"
    client_ts = map_item(item, 0, CONTEXT, reject_unknown=True).record["client_ts"]
    assert isinstance(client_ts, datetime)
    return client_ts


@pytest.mark.parametrize("feedback", [False, True])
def test_epoch_milliseconds_at_the_documented_bounds_are_taken(feedback: bool) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for value in (EARLIEST_MS, LATEST_MS, 0, 1_796_000_000_000, 1_796_000_000_000.5):
        taken = _client_ts(value, feedback=feedback)
        assert abs(taken - (epoch + timedelta(milliseconds=value))) < timedelta(milliseconds=1)


@pytest.mark.parametrize("feedback", [False, True])
@pytest.mark.parametrize(
    "value",
    [
        EARLIEST_MS - 1,  # 0001-01-01: a datetime, but outside what the document declares
        LATEST_MS + 1,
        EARLIEST_MS - 0.5,
        -62_135_596_800_001,  # before year 1
        10**20,
        float("inf"),
        float("nan"),
    ],
)
def test_epoch_milliseconds_outside_the_documented_range_are_refused(
    value: float, feedback: bool
) -> None:
    with pytest.raises(InvalidEventError) as refused:
        _client_ts(value, feedback=feedback)
    assert refused.value.field == "[0].client_ts"
    assert "out of range" in str(refused.value)


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",  # in UTC, before year 1
        "9999-12-31T23:00:00-05:00",  # in UTC, after 9999
        "0001-01-01T05:00:00Z",
        "9999-12-31T00:00:00Z",
    ],
)
def test_text_on_the_first_or_last_day_a_timestamp_holds_is_refused_naming_the_field(
    text: str,
) -> None:
    # A zone can move those days out of the years a timestamp holds: refused, whatever the
    # zone, as the document's pattern says (never an OverflowError out of the handler).
    with pytest.raises(InvalidEventError) as refused:
        _client_ts(text)
    assert refused.value.field == "[0].client_ts"
    assert "out of range" in str(refused.value)


def test_text_a_day_inside_the_edges_is_taken_in_utc() -> None:
    assert _client_ts("0001-01-02T00:30:00+01:00") == datetime(1, 1, 1, 23, 30, tzinfo=UTC)
    assert _client_ts("9999-12-30T23:30:00-05:00") == datetime(9999, 12, 31, 4, 30, tzinfo=UTC)


@pytest.mark.parametrize("record", ["Event", "Feedback"])
def test_the_document_declares_the_range_the_collector_takes(record: str) -> None:
    document = openapi_document(Settings())
    declared = document["components"]["schemas"][record]["properties"]["client_ts"]["anyOf"]
    assert {"type": "number", "minimum": EARLIEST_MS, "maximum": LATEST_MS} in declared
    (text,) = [schema for schema in declared if schema["type"] == "string"]
    pattern = re.compile(text["pattern"])
    assert not pattern.search("0001-01-01T05:00:00Z")
    assert not pattern.search("9999-12-31T00:00:00Z")
    assert pattern.search("0001-01-02T00:30:00+01:00")
    assert pattern.search("2026-12-03T10:00:00Z")


MINIMAL = {
    "Event": {"event_type": "page_view", "user_id": "u1", "app_version": "1.0"},
    "Feedback": {"request_id": "r1", "kind": "click", "app_version": "1.0"},
}


@pytest.mark.parametrize("record", ["Event", "Feedback"])
def test_the_document_allows_null_exactly_where_the_collector_takes_it(record: str) -> None:
    # An optional field sent as null is taken as absent; the document must say so, or a
    # client validating against it (and the schema-driven fuzz test) disagrees with the
    # collector. Required fields refuse null in both.
    document = openapi_document(Settings())
    schema = document["components"]["schemas"][record]
    for name, field_schema in schema["properties"].items():
        item = {**MINIMAL[record], name: None}
        try:
            map_item(item, 0, RequestContext(CONTEXT.received_ts, None, None, None),
                     reject_unknown=True)  # fmt: skip
            taken = True
        except InvalidEventError:
            taken = False
        declared = jsonschema.Draft202012Validator(field_schema).is_valid(None)
        assert declared == taken, (record, name, "taken" if taken else "refused")


def test_the_document_describes_every_route_the_collector_serves() -> None:
    from streamlearn.collector.app import create_collector_app

    app = create_collector_app(Settings())
    served = {
        resource.canonical
        for resource in app.router.resources()
        if resource.canonical != "/{tail:[\\s\\S]*}"
    }
    assert served == set(openapi_document(Settings())["paths"])


@pytest.mark.parametrize(
    ("item", "field", "said"),
    [
        ({"user_id": 7}, "[0].user_id", "must be a string, got number"),
        ({"user_id": "u", "url": {"a": 1}}, "[0].url", "must be a string, got object"),
        ({"user_id": "u", "properties": {"p": None}}, "[0].properties.p", "got null"),
        ({"user_id": "u", "context": {"c": [1]}}, "[0].context.c", "got array"),
    ],
)
def test_a_wrong_type_is_named_in_jsons_words(item: dict[str, Any], field: str, said: str) -> None:
    """The answers said `not NoneType`, `not dict`: Python's names, not the client's JSON."""
    with pytest.raises(InvalidEventError) as refused:
        map_item({"event_type": "view", **item}, 0, CONTEXT, reject_unknown=True)
    assert refused.value.field == field
    assert said in refused.value.problem


def test_a_null_request_id_is_named_not_the_event_fields_beside_it() -> None:
    """Found by a new user: `{"request_id": null, "event_type": "x", ...}` was refused as
    `[0].event_type: is not a known field` (an item with request_id is feedback, whose
    request_id the document requires as text)."""
    item = {"request_id": None, "event_type": "x", "user_id": "u", "app_version": "w"}
    with pytest.raises(InvalidEventError) as refused:
        map_item(item, 0, CONTEXT, reject_unknown=True)
    assert refused.value.field == "[0].request_id"


def test_feedback_carries_the_user_agent_of_who_sent_it() -> None:
    """Fixed at logging time, as events' is: label-join can then tell a crawler's
    impressions and clicks from a person's (agents/labels.py)."""
    item = {"request_id": "r1", "kind": "impression"}
    mapped = map_item(item, 0, CONTEXT, reject_unknown=True)
    assert mapped.record["user_agent"] == "test"  # the request's header
    forwarded = {**item, "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"}
    record = map_item(forwarded, 0, CONTEXT, reject_unknown=True).record
    assert record["user_agent"] == forwarded["user_agent"]  # a server's, for a person


@pytest.mark.parametrize("blank", ["", "  ", "\t"])
def test_a_blank_app_version_in_the_item_is_taken_from_the_header_as_an_empty_one_was(
    blank: str,
) -> None:
    """An empty item `app_version` was taken from `X-App-Version`, one of spaces refused
    with "is required (or send X-App-Version)" although the request sent the header."""
    item = {"event_type": "page_view", "user_id": "u1", "app_version": blank}
    assert map_item(item, 0, CONTEXT, reject_unknown=True).record["app_version"] == "1.0"
    without_header = RequestContext(CONTEXT.received_ts, None, None, None)
    with pytest.raises(InvalidEventError) as refused:
        map_item(item, 0, without_header, reject_unknown=True)
    assert refused.value.field == "[0].app_version"
