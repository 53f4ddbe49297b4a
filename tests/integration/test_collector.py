"""The collector over real HTTP and a real broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from confluent_kafka import Consumer, TopicPartition

from streamlearn.collector.app import create_collector_app
from streamlearn.collector.state import COLLECTOR
from streamlearn.kafka_local import free_port
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from tests.raw_http import post_raw
from tests.support import end_offsets


@pytest.fixture
def settings(system_settings: Settings) -> Settings:
    return system_settings.model_copy(
        update={
            "collector_max_batch": 20,
            "collector_max_body_bytes": 64 * 1024,
            "collector_cors_origins": ["https://shop.example"],
        }
    )


@pytest.fixture
def registry(settings: Settings) -> Iterator[RegistryClient]:
    with RegistryClient(settings.schema_registry_url) as client:
        yield client


async def _serve(settings: Settings, registry: RegistryClient) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(create_collector_app(settings, registry))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def collector(
    settings: Settings, registry: RegistryClient
) -> AsyncIterator[Callable[..., Any]]:
    runner, url = await _serve(settings, registry)
    async with aiohttp.ClientSession() as session:

        async def post(
            body: Any = None, raw: bytes | None = None, **headers: str
        ) -> tuple[int, Any]:
            data = raw if raw is not None else None
            async with session.post(
                f"{url}/v1/events",
                json=None if raw is not None else body,
                data=data,
                headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", **headers},
            ) as response:
                return response.status, (await response.json(), response.headers)

        post.url = url  # type: ignore[attr-defined]
        post.session = session  # type: ignore[attr-defined]
        yield post
    await runner.cleanup()


def _read(settings: Settings, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"c-{uuid.uuid4().hex[:8]}"}
    )
    name = settings.topic_prefix + topic
    partitions = consumer.list_topics(name, timeout=30).topics[name].partitions
    consumer.assign([TopicPartition(name, p, 0) for p in partitions])
    found: list[tuple[bytes, bytes]] = []
    try:
        for _ in range(40):
            for message in consumer.consume(100, timeout=0.5):
                found.append((message.key(), message.value()))
            if len(found) >= count:
                break
    finally:
        consumer.close()
    return found


async def test_valid_batch_is_accepted_and_produced(
    collector: Callable[..., Any], settings: Settings, registry: RegistryClient
) -> None:
    batch = [
        {
            "event_type": "page_view",
            "user_id": "u-1",
            "url": "/",
            "client_ts": "2026-11-30T10:00:00Z",
        },
        {
            "event_type": "click",
            "user_id": "u-2",
            "client_ts": 1796000000000,
            "properties": {"b": "x"},
        },
        {"request_id": "req-9", "kind": "click", "user_id": "u-1"},
    ]
    status, (body, _) = await collector(batch, **{"X-App-Version": "web-7"})
    assert status == 202
    assert body["accepted"] == 3
    async with collector.session.get(f"{collector.url}/metrics") as response:
        text = await response.text()
    # Requests and records apart: the refusal alert compares requests with requests.
    assert "streamlearn_collector_accepted_requests_total 1.0" in text
    assert 'streamlearn_collector_accepted_total{kind="event"} 2.0' in text
    events = await asyncio.to_thread(_read, settings, "telemetry.events", 2)
    serde = AvroSerde.for_topic(
        registry, settings.topic_prefix + "telemetry.events", "TelemetryEvent"
    )
    decoded = sorted((serde.decode(v) for _, v in events), key=lambda e: e["user_id"])
    assert [k for k, _ in sorted(events)] == [b"u-1", b"u-2"]
    assert [str(e["event_id"]) for e in decoded] == body["event_ids"][:2]
    assert decoded[0]["app_version"] == "web-7"
    assert decoded[0]["user_agent"].startswith("Mozilla/5.0")
    assert decoded[0]["ip"] == "127.0.0.1"
    assert abs(decoded[0]["received_ts"] - datetime.now(UTC)) < timedelta(minutes=1)
    assert decoded[0]["client_ts"] == datetime(2026, 11, 30, 10, 0, tzinfo=UTC), (
        "sender's time kept"
    )
    assert decoded[1]["properties"] == {"b": "x"}
    feedback = await asyncio.to_thread(_read, settings, "telemetry.feedback", 1)
    assert feedback[0][0] == b"req-9"


async def test_headers_in_latin1_are_read_as_latin1_not_refused_as_the_body(
    collector: Callable[..., Any], settings: Settings, registry: RegistryClient
) -> None:
    # Devices and old stacks send their names in ISO-8859-1, which HTTP allowed: the event
    # was refused (400, field "body", although the body was fine) and so lost.
    user_agent = "Mozilla/5.0 (Linux; Android 4.4; Gerät) AppleWebKit/537.36 Chrome/44.0"
    host, port = collector.url.removeprefix("http://").rsplit(":", 1)
    status, answer = await post_raw(
        host,
        int(port),
        "/v1/events",
        b"User-Agent: " + user_agent.encode("latin-1") + b"\r\nX-App-Version: caf\xe9-1\r\n",
        json.dumps({"event_type": "page_view", "user_id": "u-latin"}).encode(),
    )
    assert status == 202, json.loads(answer)
    events = await asyncio.to_thread(_read, settings, "telemetry.events", 1)
    serde = AvroSerde.for_topic(
        registry, settings.topic_prefix + "telemetry.events", "TelemetryEvent"
    )
    event = serde.decode(events[0][1])
    assert (event["user_agent"], event["app_version"]) == (user_agent, "café-1")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_type": "page_view", "app_version": "1"}, "[0].user_id"),
        ({"event_type": "page_view", "user_id": 7, "app_version": "1"}, "[0].user_id"),
        (
            {"event_type": "v", "user_id": "u", "app_version": "1", "client_ts": "yesterday"},
            "[0].client_ts",
        ),
        (
            {
                "event_type": "v",
                "user_id": "u",
                "app_version": "1",
                "client_ts": "2026-11-30T10:00:00",
            },
            "[0].client_ts",
        ),
        (
            {"event_type": "v", "user_id": "u", "app_version": "1", "event_id": "nope"},
            "[0].event_id",
        ),
        (
            {"event_type": "v", "user_id": "u", "app_version": "1", "properties": {"n": 3}},
            "[0].properties.n",
        ),
        ({"event_type": "v", "user_id": "u", "app_version": "1", "colour": "red"}, "[0].colour"),
        ({"event_type": "v", "user_id": "u"}, "[0].app_version"),
        ({"request_id": "r", "kind": "teleport", "app_version": "1"}, "[0].kind"),
        ({"request_id": "r", "kind": "value", "value": "12", "app_version": "1"}, "[0].value"),
        ("just a string", "body"),  # neither an object nor an array of them
    ],
)
async def test_invalid_events_name_the_field(
    collector: Callable[..., Any], body: Any, field: str
) -> None:
    status, (answer, _) = await collector(body)
    assert status == 400
    assert answer["field"] == field, answer


async def test_one_invalid_item_refuses_the_whole_batch(
    collector: Callable[..., Any], settings: Settings
) -> None:
    good = {"event_type": "v", "user_id": "only-if-all-valid", "app_version": "1"}
    status, (answer, _) = await collector([good, {"event_type": "v", "app_version": "1"}])
    assert (status, answer["field"]) == (400, "[1].user_id")
    assert await asyncio.to_thread(_read, settings, "telemetry.events", 1) == []


async def test_malformed_and_oversized_requests(collector: Callable[..., Any]) -> None:
    status, (answer, _) = await collector(raw=b"{not json")
    assert (status, answer["field"]) == (400, "body")
    status, (answer, _) = await collector(raw=b"[" + b" " * (70 * 1024) + b"]")
    assert status == 413
    many = [{"event_type": "v", "user_id": "u", "app_version": "1"}] * 21
    status, (answer, _) = await collector(many)
    assert status == 413
    assert "at most 20" in answer["error"]


async def test_an_item_over_what_kafka_takes_is_refused_naming_it_and_nothing_written(
    settings: Settings, registry: RegistryClient
) -> None:
    """An event under the body limit but over the 1,000,000 bytes librdkafka produces (a
    big property) was a 500 "Server got itself in trouble", the items before it written:
    the browser tag kept the batch and retried it for good, and nothing after it was sent."""
    roomy = settings.model_copy(update={"collector_max_body_bytes": 2 * 1024 * 1024})
    runner, url = await _serve(roomy, registry)
    good = {"event_type": "v", "user_id": "written-only-if-all-fit", "app_version": "1"}
    big = {**good, "properties": {"review": "x" * 1_010_000}}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/v1/events", json=[good, big]) as response,
        ):
            assert response.status == 400
            answer = await response.json()
    finally:
        await runner.cleanup()
    assert answer["field"] == "[1]", answer
    assert "over the 999,744 a record of" in answer["error"], answer  # librdkafka's 1,000,000
    assert await asyncio.to_thread(_read, settings, "telemetry.events", 1) == []


async def test_cors_preflight_for_configured_origins(collector: Callable[..., Any]) -> None:
    session: aiohttp.ClientSession = collector.session  # type: ignore[attr-defined]
    headers = {
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type",
    }
    async with session.options(f"{collector.url}/v1/events", headers=headers) as response:  # type: ignore[attr-defined]
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    async with session.options(
        f"{collector.url}/v1/events",
        headers={**headers, "Origin": "https://evil.example"},  # type: ignore[attr-defined]
    ) as response:
        assert response.status == 403


async def test_with_no_origin_listed_a_preflight_is_refused_as_an_unlisted_origins(
    settings: Settings, registry: RegistryClient
) -> None:
    runner, url = await _serve(settings.model_copy(update={"collector_cors_origins": []}), registry)
    headers = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    try:
        async with aiohttp.ClientSession() as session:
            async with session.options(f"{url}/v1/events", headers=headers) as response:
                assert response.status == 403
                assert (await response.json())["field"] == "Origin"
            async with session.options(f"{url}/v1/events") as response:
                assert response.status == 405
                assert response.headers["Allow"] == "POST"
            async with session.get(f"{url}/metrics") as response:
                counts = _refused_counts(await response.text())
            assert (counts.get("403"), counts.get("405")) == (1.0, 1.0)
    finally:
        await runner.cleanup()


async def test_broker_down_is_503_with_retry_after(
    settings: Settings, registry: RegistryClient
) -> None:
    down = settings.model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "collector_delivery_timeout_s": 1.0}
    )
    runner, url = await _serve(down, registry)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{url}/v1/events", json={"event_type": "v", "user_id": "u", "app_version": "1"}
            ) as response,
        ):
            assert response.status == 503
            assert response.headers["Retry-After"] == "5"
            assert "retry" in (await response.json())["error"]
    finally:
        await runner.cleanup()


async def test_a_producer_that_cannot_get_through_while_kafka_answers_fails_liveness(
    settings: Settings, registry: RegistryClient
) -> None:
    """A producer that confirms nothing while a new client reaches the brokers is stuck
    (seen once after a broker outage, in librdkafka): /healthz fails so the process is
    restarted. Here the producer is sent to a port where no broker listens, which is what
    that producer looked like from outside; the brokers themselves answer."""
    quick = settings.model_copy(
        update={"kafka_producer_stall_s": 1.0, "collector_delivery_timeout_s": 0.5}
    )
    app = create_collector_app(
        quick, registry, producer_config={"bootstrap.servers": f"127.0.0.1:{free_port()}"}
    )
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    event = {"event_type": "v", "user_id": "u", "app_version": "1"}
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/healthz") as response:
                assert response.status == 200
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                async with session.post(f"{url}/v1/events", json=event) as response:
                    assert response.status == 503  # nothing is confirmed
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 503:
                        body = await response.json()
                        break
                assert asyncio.get_running_loop().time() < deadline, "never said stalled"
                await asyncio.sleep(0.5)
            assert body["status"] == "stalled"
            assert "no word from a broker" in body["reason"]
            async with session.get(f"{url}/metrics") as response:
                text = await response.text()
            unheard = next(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("streamlearn_collector_producer_unheard_seconds ")
            )
            assert unheard >= 1.0
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("why", ["brokers away", "no such topics"])
async def test_what_a_restart_would_not_cure_does_not_fail_liveness(
    settings: Settings, registry: RegistryClient, why: str
) -> None:
    """With every broker away, or no topic of the collector's in the cluster (a wrong
    prefix: its records time out in the client too), a restart would not help: the
    collector answers 503 to posts and stays live."""
    change: dict[str, Any] = (
        {"kafka_bootstrap": f"127.0.0.1:{free_port()}"}
        if why == "brokers away"
        else {"topic_prefix": f"nowhere-{uuid.uuid4().hex[:6]}."}
    )
    down = settings.model_copy(
        update={**change, "collector_delivery_timeout_s": 0.5, "kafka_producer_stall_s": 1.0}
    )
    runner, url = await _serve(down, registry)
    event = {"event_type": "v", "user_id": "u", "app_version": "1"}
    try:
        async with aiohttp.ClientSession() as session:
            watch = runner.app[COLLECTOR].watch
            clock = asyncio.get_running_loop().time
            deadline, asked_at = clock() + 60, None
            # Each ask waits up to 5 s for brokers that are away; a producer taken for stuck
            # would be said so a stall time (1 s) after the first ask that was answered.
            while asked_at is None or watch.asked < 3 or clock() < asked_at + 3:
                async with session.post(f"{url}/v1/events", json=event) as response:
                    assert response.status == 503
                if asked_at is None and watch.asked:
                    asked_at = clock()
                assert clock() < deadline, "the watch did not ask"
                await asyncio.sleep(0.5)
            assert watch.waited_s() >= 1.0
            async with session.get(f"{url}/healthz") as response:
                assert response.status == 200, await response.text()
    finally:
        await runner.cleanup()


async def test_a_post_from_an_origin_not_listed_is_refused_and_nothing_written(
    collector: Callable[..., Any], settings: Settings
) -> None:
    """Browsers send simple (text/plain) posts without a preflight: the collector itself
    must refuse an origin it would not let read the answer, or a page's retries would write
    the same events again and again."""

    def event(user: str) -> bytes:
        return json.dumps([{"event_type": "view", "user_id": user, "app_version": "1"}]).encode()

    status, (answer, _) = await collector(raw=event("u-evil"), Origin="https://evil.example")
    assert status == 403
    assert answer["field"] == "Origin"
    assert "STREAMLEARN_COLLECTOR_CORS_ORIGINS" in answer["error"]
    status, (_, headers) = await collector(raw=event("u-listed"), Origin="https://shop.example")
    assert status == 202
    assert headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Retry-After" in headers["Access-Control-Expose-Headers"]
    same_origin = collector.url  # type: ignore[attr-defined]
    status, _ = await collector(raw=event("u-same"), Origin=same_origin)
    assert status == 202
    keys = {key for key, _ in _read(settings, "telemetry.events", 2)}
    assert keys == {b"u-listed", b"u-same"}, "the refused post wrote nothing"


async def test_a_client_over_its_rate_gets_429_and_nothing_of_it_is_written(
    settings: Settings, registry: RegistryClient
) -> None:
    limited = settings.model_copy(
        update={"collector_rate_limit_per_ip": 0.5, "collector_rate_burst": 3}
    )
    runner, url = await _serve(limited, registry)
    statuses = []
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(5):
                event = {"event_type": "page_view", "user_id": f"rate-{n}", "app_version": "1"}
                async with session.post(
                    f"{url}/v1/events", json=event,
                    headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"},
                ) as response:  # fmt: skip
                    statuses.append(response.status)
                    if response.status == 429:
                        assert response.headers["Retry-After"] == "2"
                        assert "too many requests" in (await response.json())["error"]
            async with session.get(f"{url}/metrics") as response:
                metrics = await response.text()
    finally:
        await runner.cleanup()
    assert statuses == [202, 202, 202, 429, 429]
    assert 'streamlearn_collector_refused_requests_total{status="429"} 2.0' in metrics
    # 202 means Kafka confirmed: the topic holds those three and nothing else.
    assert {key for key, _ in _read(settings, "telemetry.events", 3)} == {
        b"rate-0",
        b"rate-1",
        b"rate-2",
    }
    name = settings.topic_prefix + "telemetry.events"
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "ends"})
    try:
        assert sum(end_offsets(consumer, name, range(6)).values()) == 3
    finally:
        consumer.close()


def _refused_counts(text: str) -> dict[str, float]:
    counts = {}
    for line in text.splitlines():
        if line.startswith("streamlearn_collector_refused_requests_total{"):
            labels, _, value = line.rpartition(" ")
            counts[labels.split('status="')[1].split('"')[0]] = float(value)
    return counts


async def test_every_malformed_body_is_a_400_naming_it_and_counted(
    collector: Callable[..., Any],
) -> None:
    """Bodies that used to escape as 500s (a traceback in the log, nothing counted): nested
    deeper than the parser recurses, non-finite or out-of-range numbers, a body that does
    not decode as its Content-Encoding says, text that is not Unicode."""
    session: aiohttp.ClientSession = collector.session  # type: ignore[attr-defined]
    url = collector.url  # type: ignore[attr-defined]

    async def refused() -> dict[str, float]:
        async with session.get(f"{url}/metrics") as response:
            return _refused_counts(await response.text())

    before = await refused()
    feedback = '{"request_id": "r1", "kind": "value", "app_version": "a", "value": %s}'
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (b"[" * 5_000 + b"]" * 5_000, {}, 400, "body"),
        (b"{\"a\":" * 5_000 + b"1" + b"}" * 5_000, {}, 400, "body"),
        ((feedback % "NaN").encode(), {}, 400, "body"),
        ((feedback % "-Infinity").encode(), {}, 400, "body"),
        ((feedback % "1e999").encode(), {}, 400, "[0].value"),
        ((feedback % ("1" + "0" * 400)).encode(), {}, 400, "[0].value"),
        (b'{"event_type": "x", "user_id": "u", "app_version": "a"}',
         {"Content-Encoding": "gzip"}, 400, "body"),
        (b'{"event_type": "x", "user_id": "u", "url": "\\udfff", "app_version": "a"}',
         {}, 400, "[0].url"),
        (b'{"event_type": "x", "user_id": "u"}', {"X-App-Version": " "}, 400, "[0].app_version"),
        (b"5", {}, 400, "body"),  # was refused as an item "[0]", which there is not
    ]  # fmt: skip
    for raw, headers, status, field in cases:
        got, (answer, _) = await collector(raw=raw, **headers)
        assert (got, answer.get("field")) == (status, field), (raw[:60], answer)
        if field == "[0].url":  # said in its own words, not the Avro encoder's
            assert answer["error"].startswith("must be Unicode text"), answer
    async with session.put(f"{url}/v1/events", data=b"{}") as response:
        assert response.status == 405
    # An encoding the server does not decode was read as identity (found by a new user).
    foo: dict[str, str] = {"Content-Encoding": "foo"}
    got, (answer, _) = await collector(raw=b'{"event_type": "x", "user_id": "u"}', **foo)
    assert (got, answer.get("field")) == (415, "Content-Encoding"), answer
    after = await refused()
    assert after.get("400", 0) - before.get("400", 0) == len(cases)
    assert after.get("405", 0) - before.get("405", 0) == 1
    assert after.get("415", 0) - before.get("415", 0) == 1
    status, _ = await collector({"event_type": "x", "user_id": "u", "app_version": "a"})
    assert status == 202, "the collector keeps running"
