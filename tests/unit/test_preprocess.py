"""The preprocess step on its own: every outcome, with the reason or rule recorded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streamlearn.agents.preprocess import MAX_CLIENT_AHEAD_S, Preprocessor, PreprocessStep
from streamlearn.exceptions import ConfigurationError
from streamlearn.runtime.local import LocalCluster, LocalWorker
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.serde import AvroSerde, InMemoryRegistry, frame
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"  # noqa: E501
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _event(offset_s: float = 0, **overrides: Any) -> dict[str, Any]:
    received = T0 + timedelta(seconds=offset_s)
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "page_view",
        "user_id": "u-1",
        "client_ts": received - timedelta(milliseconds=300),
        "received_ts": received,
        "url": "https://shop.example/",
        "user_agent": CHROME,
        "ip": "203.0.113.9",
        "app_version": "web-1",
    }
    event.update(overrides)
    return event


class Harness:
    """One partition's preprocessing (partition 3), events as the runtime decodes them."""

    def __init__(self, **settings: Any) -> None:
        self.metrics = AgentMetrics()
        self.seen: dict[str, list[Any]] = {}
        self.bot_state: dict[str, list[int]] = {}
        registry = InMemoryRegistry()
        self.serde = AvroSerde.for_topic(registry, "telemetry.events", "TelemetryEvent")
        self.pre = Preprocessor(Settings(**settings), self.metrics)
        self.offset = 0

    def run(self, event: dict[str, Any], offset: int | None = None):  # type: ignore[no-untyped-def]
        if offset is None:
            self.offset += 1
            offset = self.offset
        decoded = self.serde.decode(self.serde.encode(event))
        return self.pre.process(decoded, 3, offset, self.seen, self.bot_state)

    def count(self, outcome: str) -> float:
        return self.metrics.value(self.metrics.events, outcome=outcome)


def test_clean_event_is_enriched_and_compliant() -> None:
    harness = Harness()
    result = harness.run(_event())
    assert result.outcome == "clean"
    clean = result.clean
    assert clean is not None
    assert (clean["browser_family"], clean["os_family"], clean["device_class"]) == (
        "Chrome", "Windows", "desktop",
    )  # fmt: skip
    assert clean["event_ts"] == clean["client_ts"]
    assert clean["ip_pseudonym"] is None, "full IPs are not allowed for training"
    assert "ip" not in clean
    assert "user_agent" not in clean
    assert (clean["source_partition"], clean["source_offset"]) == (3, 1)
    assert harness.count("clean") == 1


def test_ip_pseudonym_is_keyed_and_stable() -> None:
    harness = Harness(ip_policy="pseudonymise", pseudonymisation_key="pseudonym-key-one-16")
    first = harness.run(_event()).clean
    second = harness.run(_event(1)).clean
    assert first is not None
    assert second is not None
    assert first["ip_pseudonym"] == second["ip_pseudonym"]
    assert "203.0.113.9" not in first["ip_pseudonym"]
    other_key = (
        Harness(ip_policy="pseudonymise", pseudonymisation_key="pseudonym-key-two-16")
        .run(_event())
        .clean
    )
    assert other_key is not None
    assert other_key["ip_pseudonym"] != first["ip_pseudonym"]


def test_pseudonymising_without_a_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="PSEUDONYMISATION_KEY"):
        Harness(ip_policy="pseudonymise")


def test_implausible_client_time_falls_back_to_received_time() -> None:
    harness = Harness(max_clock_skew_s=3600)
    event = _event(client_ts=T0 - timedelta(days=400))
    clean = harness.run(event).clean
    assert clean is not None
    assert clean["event_ts"] == event["received_ts"]
    assert clean["client_ts"] == event["client_ts"], "the client's time is kept as sent"


def test_a_client_time_after_the_event_was_received_is_not_its_event_time() -> None:
    """An event cannot happen after it reached the collector. One event with a client_ts
    23 h ahead (within the 24 h skew allowed for clocks behind, e.g. events an app sent
    late) moved its partition's session clock 23 h on: sessionise closed the partition's
    386 open sessions at once and dropped its next 979 events as expired."""
    harness = Harness()
    cases = [(23 * 3600, False), (MAX_CLIENT_AHEAD_S + 1, False), (MAX_CLIENT_AHEAD_S, True),
             (5, True), (-23 * 3600, True)]  # fmt: skip
    for i, (ahead_s, kept) in enumerate(cases):
        received_s = 60.0 * i  # a minute apart: a person, not a burst
        event = _event(received_s, client_ts=T0 + timedelta(seconds=received_s + ahead_s))
        clean = harness.run(event).clean
        assert clean is not None
        expected = event["client_ts"] if kept else event["received_ts"]
        assert clean["event_ts"] == expected, ahead_s
        assert clean["client_ts"] == event["client_ts"]
    # A skew set tighter than 60 s bounds a clock ahead too, as it did before.
    tight = Harness(max_clock_skew_s=10)
    event = _event(0, client_ts=T0 + timedelta(seconds=30))
    clean = tight.run(event).clean
    assert clean is not None
    assert clean["event_ts"] == event["received_ts"]


def test_duplicates_are_dropped_and_counted() -> None:
    harness = Harness()
    event = _event()
    assert harness.run(event).outcome == "clean"
    assert harness.run(dict(event, received_ts=T0 + timedelta(seconds=5))).outcome == "duplicate"
    assert harness.count("duplicate") == 1


def test_dedup_memory_expires_after_the_window() -> None:
    harness = Harness(dedup_window_s=60)
    event = _event()
    harness.run(event)
    now_ms = int((T0 + timedelta(seconds=120)).timestamp() * 1000)
    removed = harness.pre.expire(now_ms, harness.seen, harness.bot_state)
    assert removed >= 1
    assert harness.seen == {}
    assert harness.bot_state == {}


@pytest.mark.parametrize(
    ("events", "rule"),
    [
        ([_event(user_agent=GOOGLEBOT)], "crawler_user_agent"),
        ([_event(i * 0.2, user_id="fast") for i in range(6)], "user_rate"),
        ([_event(i * 0.01, user_id="burst") for i in range(5)], "inhuman_burst"),
        ([_event(i * 0.2, user_id=f"u{i}", ip="198.51.100.1") for i in range(6)], "ip_rate"),
    ],
    ids=["crawler", "user-rate", "burst", "ip-rate"],
)
def test_bot_rules(events: list[dict[str, Any]], rule: str) -> None:
    harness = Harness(bot_max_events_per_user=5, bot_max_events_per_ip=5, bot_burst_length=5)
    results = [harness.run(event) for event in events]
    assert results[-1].outcome == "bot"
    assert results[-1].bot_rule == rule
    assert harness.metrics.value(harness.metrics.bots, rule=rule) == 1
    assert all(r.outcome == "clean" for r in results[:-1]), "a rule fires only once it is true"


def test_humans_at_human_speed_pass() -> None:
    harness = Harness()
    results = [harness.run(_event(i * 20.0)) for i in range(50)]
    assert {r.outcome for r in results} == {"clean"}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not avro at all", "bad_magic_byte"),
        (b"\x00\x00", "truncated_body"),
        (None, "null_value"),
        (frame(424242, b"\x02\x04"), "unknown_schema_id"),
    ],
)
def test_undecodable_records_are_rejected_with_reason(value: bytes | None, reason: str) -> None:
    registry = InMemoryRegistry()
    cluster = LocalCluster(TopicCatalogue.from_settings(Settings()), registry, partitions=6)
    serde = cluster.catalogue.topic("telemetry.events").serde(registry)
    cluster.produce("telemetry.events", b"u-1", serde.encode(_event()), partition=3)
    cluster.produce("telemetry.events", b"u-1", value, partition=3)
    metrics = AgentMetrics()
    worker = LocalWorker(cluster, PreprocessStep(Settings(), metrics), metrics=metrics)
    worker.assign(range(6))
    worker.run()
    assert len(cluster.messages("events.clean")) == 1, "the poison record stops nothing"
    [rejected] = cluster.decoded("events.rejected")
    assert (rejected["reason"], rejected["value"], rejected["key"]) == (reason, value, b"u-1")
    assert (rejected["source_topic"], rejected["source_partition"]) == ("telemetry.events", 3)
    assert rejected["source_offset"] == 1
    assert rejected["agent"] == "preprocess"
    assert "telemetry.events[3]@1" in rejected["detail"]
    assert metrics.value(metrics.rejected, agent="preprocess", reason=reason) == 1


def test_empty_required_field_is_reported_naming_it() -> None:
    harness = Harness()
    result = harness.run(_event(user_id="  "))
    assert result.outcome == "invalid"
    assert result.problem is not None
    assert "user_id" in result.problem


def test_a_replayed_record_gets_its_verdict_again_but_a_duplicate_is_dropped() -> None:
    harness = Harness(bot_burst_length=3)
    burst = [_event(i * 0.01, user_id="burst") for i in range(4)]
    verdicts = [harness.run(event, offset=40 + i).outcome for i, event in enumerate(burst)]
    assert verdicts == ["clean", "clean", "bot", "bot"]
    # After a crash the worker re-reads offsets 40-43: the same records, the same verdicts,
    # though the bot counters already count them.
    again = [harness.run(event, offset=40 + i).outcome for i, event in enumerate(burst)]
    assert again == verdicts
    assert harness.run(burst[0], offset=44).outcome == "duplicate"


def _geo_database(tmp_path: Path) -> Path:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-Country")
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "NZ"}})
    path = tmp_path / "countries.mmdb"
    writer.to_db_file(str(path))
    return path


def test_country_from_a_configured_geo_database(tmp_path: Path) -> None:
    harness = Harness(geoip_database=_geo_database(tmp_path))
    known = harness.run(_event(ip="203.0.113.9")).clean
    unknown = harness.run(_event(1, ip="198.51.100.7")).clean
    garbage = harness.run(_event(2, ip="not an ip")).clean
    assert known is not None
    assert unknown is not None
    assert garbage is not None
    assert (known["geo_country"], unknown["geo_country"], garbage["geo_country"]) == (
        "NZ",
        None,
        None,
    )
    assert known["ip_pseudonym"] is None, "the IP itself is still dropped"


def test_no_geo_database_no_country() -> None:
    clean = Harness().run(_event()).clean
    assert clean is not None
    assert clean["geo_country"] is None


def test_missing_geo_database_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot open geo database"):
        Harness(geoip_database=tmp_path / "absent.mmdb")


def test_fields_standard_avro_readers_cannot_read_back_are_rejected_not_cleaned() -> None:
    """What a producer other than the collector can write as plain Avro (a string that is
    no UUID where the schema says uuid, a timestamp beyond what a datetime holds): passed
    on, events.clean would hold records that fastavro and Java readers refuse."""
    registry = InMemoryRegistry()
    cluster = LocalCluster(TopicCatalogue.from_settings(Settings()), registry, partitions=6)
    plain = AvroSerde.for_topic(registry, "telemetry.events", "TelemetryEvent", logical_types=False)
    at_ms = int(T0.timestamp() * 1000)

    def event(**overrides: Any) -> dict[str, Any]:
        value = {
            **_event(), "client_ts": at_ms, "received_ts": at_ms, "session_hint": None,
            "referrer": None, "properties": {}, "context": {},
        }  # fmt: skip
        value.update(overrides)
        return value

    bad = [
        event(event_id="not-a-uuid"),
        event(client_ts=2**62),
        event(client_ts=-(2**62)),
        event(received_ts=2**62),
    ]
    for value in [event(), *bad, event(event_id=str(uuid.uuid4()).upper())]:
        cluster.produce("telemetry.events", b"u-1", plain.encode(value), partition=3)
    metrics = AgentMetrics()
    worker = LocalWorker(cluster, PreprocessStep(Settings(), metrics), metrics=metrics)
    worker.assign(range(6))
    worker.run()
    logical = cluster.catalogue.topic("events.clean").serde(registry)
    clean = [logical.decode(m.value) for m in cluster.messages("events.clean")]
    assert len(clean) == 2, "the valid event and the upper-case UUID"
    rejected = cluster.decoded("events.rejected")
    assert [r["reason"] for r in rejected] == ["invalid_field"] * len(bad)
    details = [r["detail"] for r in rejected]
    assert "event_id" in details[0]
    assert "client_ts" in details[1]
    assert "client_ts" in details[2]
    assert "received_ts" in details[3]


def test_an_event_stamped_far_after_kafka_received_it_is_rejected_not_taken_as_time() -> None:
    """An app host whose clock ran 30 days ahead stamped received_ts 30 days late; its
    events moved the partition's event time, and sessionise then dropped every later event
    of the partition as expired. Where the broker stamps records (LogAppendTime, as the
    topology sets for telemetry.events), a received_ts further after it than
    MAX_CLIENT_AHEAD_S is the producer's clock, not the event's time: rejected."""
    registry = InMemoryRegistry()
    cluster = LocalCluster(TopicCatalogue.from_settings(Settings()), registry, partitions=6)
    serde = cluster.catalogue.topic("telemetry.events").serde(registry)
    appended_ms = int(T0.timestamp() * 1000)
    ahead = _event(30 * 86400, user_id="u-ahead")
    for event in (_event(0), ahead, _event(1, user_id="u-2")):
        cluster.produce("telemetry.events", b"u", serde.encode(event), partition=3,
                        timestamp_ms=appended_ms + 1000)  # fmt: skip
    # Without a broker time (a record from before the topology said so), nothing to compare.
    cluster.produce("telemetry.events", b"u", serde.encode(_event(2)), partition=3)
    cluster.produce("telemetry.events", b"u", serde.encode(_event(3)), partition=3,
                    timestamp_ms=-1)  # fmt: skip
    metrics = AgentMetrics()
    worker = LocalWorker(cluster, PreprocessStep(Settings(), metrics), metrics=metrics)
    worker.assign(range(6))
    worker.run()
    assert len(cluster.messages("events.clean")) == 4
    [rejected] = cluster.decoded("events.rejected")
    assert rejected["reason"] == "invalid_field"
    assert "received_ts is 2591999 s after Kafka received the record" in rejected["detail"]


def test_an_event_stamped_hours_after_kafka_received_it_is_rejected_too() -> None:
    """The bound was max_clock_skew_s (24 h, the lag allowed a client clock *behind*): one
    event from a host 23 h ahead (its client_ts and received_ts both) was cleaned with an
    event_ts 23 h on, and sessionise, on that partition's event time, closed its open
    sessions and dropped every later event of the partition as expired (a probe: 84 of 337
    sessions closed at once, then about 2 events a second expired). A receipt cannot follow
    the append by more than clocks drift: past MAX_CLIENT_AHEAD_S, as for client_ts."""
    registry = InMemoryRegistry()
    cluster = LocalCluster(TopicCatalogue.from_settings(Settings()), registry, partitions=6)
    serde = cluster.catalogue.topic("telemetry.events").serde(registry)
    appended_ms = int(T0.timestamp() * 1000)
    cases = [(23 * 3600, False), (MAX_CLIENT_AHEAD_S + 1, False), (MAX_CLIENT_AHEAD_S, True),
             (0, True)]  # fmt: skip
    for ahead_s, _kept in cases:  # the host's clock ahead: both of its stamps
        event = _event(ahead_s, user_id=f"u-{ahead_s}")
        cluster.produce("telemetry.events", b"u", serde.encode(event), partition=3,
                        timestamp_ms=appended_ms)  # fmt: skip
    metrics = AgentMetrics()
    worker = LocalWorker(cluster, PreprocessStep(Settings(), metrics), metrics=metrics)
    worker.assign(range(6))
    worker.run()
    clean = {event["user_id"] for event in cluster.decoded("events.clean")}
    assert clean == {f"u-{ahead_s}" for ahead_s, kept in cases if kept}
    rejected = cluster.decoded("events.rejected")
    assert [r["reason"] for r in rejected] == ["invalid_field"] * 2
    assert "received_ts is 82800 s after Kafka received the record" in rejected[0]["detail"]


def test_one_event_id_written_in_several_uuid_forms_is_one_event_in_canonical_form() -> None:
    """A producer other than the collector (which writes the canonical form) may write an
    id in any form ``uuid.UUID`` reads, and a retry need not use the same one. Deduplicated
    on the string as written, the upper-case and ``urn:uuid:`` copies of one event were
    each cleaned (a probe: three records of one event id in events.clean, one session of
    three events), and non-canonical strings reached events.clean, where Java's
    ``UUID.fromString`` does not read ``urn:uuid:`` or braces."""
    registry = InMemoryRegistry()
    cluster = LocalCluster(TopicCatalogue.from_settings(Settings()), registry, partitions=6)
    plain = AvroSerde.for_topic(registry, "telemetry.events", "TelemetryEvent", logical_types=False)
    at_ms = int(T0.timestamp() * 1000)
    event_id = str(uuid.uuid4())
    forms = [event_id.upper(), event_id, f"urn:uuid:{event_id}", "{" + event_id + "}"]
    for offset_ms, form in enumerate(forms):
        value = {
            **_event(), "event_id": form, "client_ts": at_ms + offset_ms,
            "received_ts": at_ms + offset_ms, "session_hint": None, "referrer": None,
            "properties": {}, "context": {},
        }  # fmt: skip
        cluster.produce("telemetry.events", b"u-1", plain.encode(value), partition=3)
    metrics = AgentMetrics()
    worker = LocalWorker(cluster, PreprocessStep(Settings(), metrics), metrics=metrics)
    worker.assign(range(6))
    worker.run()
    clean = AvroSerde.for_topic(registry, "events.clean", "CleanEvent", logical_types=False)
    written = [clean.decode(m.value)["event_id"] for m in cluster.messages("events.clean")]
    assert written == [event_id]
    assert metrics.value(metrics.events, outcome="duplicate") == 3
