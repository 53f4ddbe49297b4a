"""`streamlearn collector serve` with write keys, on the broker: keyed posts are written
with their key's app stamped on, the others refused and not written, every answer one the
document declares, and no key ever reaches the logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis

from streamlearn.kafka_local import free_port
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from tests.server_process import ServerProcess
from tests.support import read_values

ENV_KEY = "wk-env-7c1e0b9d54a2f6e8"
FILE_KEY = "wk-file-3f9a6d2c81b4e075"
HEADER = "X-Streamlearn-Write-Key"


@pytest.fixture
def keyed_collector(system_settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    keys_file = tmp_path / "write-keys.json"
    keys_file.write_text(json.dumps({FILE_KEY: "shop-web"}))
    keys_file.chmod(0o600)
    port = free_port()
    server = ServerProcess(
        ["collector", "serve", "--port", str(port)],
        port,
        {
            "STREAMLEARN_KAFKA_BOOTSTRAP": system_settings.kafka_bootstrap,
            "STREAMLEARN_SCHEMA_REGISTRY_URL": system_settings.schema_registry_url,
            "STREAMLEARN_TOPIC_PREFIX": system_settings.topic_prefix,
            "STREAMLEARN_COLLECTOR_WRITE_KEYS": json.dumps({ENV_KEY: "shop-ios"}),
            "STREAMLEARN_COLLECTOR_WRITE_KEYS_FILE": str(keys_file),
            "STREAMLEARN_COLLECTOR_MAX_BATCH": "20",
            # Every request in the access log: the test below reads it for keys.
            "STREAMLEARN_LOG_LEVEL": "DEBUG",
        },
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


ANSWERS: list[requests.Response] = []


def _post(url: str, body: object, **headers: str) -> tuple[int, dict[str, str]]:
    response = requests.post(url, data=json.dumps(body), headers=headers, timeout=30)
    ANSWERS.append(response)
    return response.status_code, response.json()


async def test_keyed_posts_are_written_as_their_apps_and_the_rest_refused(
    keyed_collector: ServerProcess, system_settings: Settings
) -> None:
    events = f"{keyed_collector.url}/v1/events"
    event = {"event_type": "page_view", "app_version": "2.0"}
    assert _post(events, {**event, "user_id": "u-header"}, **{HEADER: ENV_KEY})[0] == 202
    # The browser tag's way (text/plain, the key in the query: beacons cannot set headers).
    status, _ = _post(
        f"{events}?write_key={FILE_KEY}",
        [{**event, "user_id": "u-query"}, {"request_id": "r-1", "kind": "click"}],
        **{"Content-Type": "text/plain", "X-App-Version": "2.0"},
    )
    assert status == 202
    refused = [
        _post(events, {**event, "user_id": "u-nokey"}),
        _post(events, {**event, "user_id": "u-badkey"}, **{HEADER: "wk-guess"}),
        _post(
            events,
            {**event, "user_id": "u-foreign", "context": {"app": "shop-web"}},
            **{HEADER: ENV_KEY},
        ),
    ]
    assert [(status, body["field"]) for status, body in refused] == [
        (401, HEADER),
        (401, HEADER),
        (403, "[0].context.app"),
    ]

    # Exactly what was accepted is in Kafka, each item with its key's app.
    with RegistryClient(system_settings.schema_registry_url) as registry:
        decoded = {}
        for topic, schema, count in (
            ("telemetry.events", "TelemetryEvent", 2),
            ("telemetry.feedback", "Feedback", 1),
        ):
            name = system_settings.topic_prefix + topic
            serde = AvroSerde.for_topic(registry, name, schema)
            values = await read_values(system_settings.kafka_bootstrap, name, count, settle_s=1)
            decoded[topic] = [serde.decode(v) for v in values]
    assert {e["user_id"]: e["context"]["app"] for e in decoded["telemetry.events"]} == {
        "u-header": "shop-ios",
        "u-query": "shop-web",
    }
    assert [f["properties"]["app"] for f in decoded["telemetry.feedback"]] == ["shop-web"]

    metrics = requests.get(f"{keyed_collector.url}/metrics", timeout=10).text
    assert 'streamlearn_collector_refused_requests_total{status="401"} 2.0' in metrics
    assert 'streamlearn_collector_refused_requests_total{status="403"} 1.0' in metrics

    # The document of a keyed collector declares each of those answers (the unkeyed
    # collector is fuzzed from its document in tests/integration/test_fuzz_http.py).
    document = schemathesis.openapi.from_url(f"{keyed_collector.url}/openapi.json")
    operation = document["/v1/events"]["POST"]
    for answer in ANSWERS:
        assert str(answer.status_code) in operation.definition.raw["responses"]
        operation.validate_response(answer)

    keyed_collector.stop()
    log = keyed_collector.output
    assert "POST /v1/events?write_key=redacted" in log, "the access log was on"
    assert "shop-web" in log, "the apps (not their keys) are named at start"
    for key in (ENV_KEY, FILE_KEY):
        assert key not in log
