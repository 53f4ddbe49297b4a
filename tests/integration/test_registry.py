"""Our registry as real clients use it: confluent-kafka's own client and serdes, over Kafka."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, DeserializingConsumer, SerializingProducer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import StringDeserializer, StringSerializer
from pydantic import SecretStr

from streamlearn.registry.state import RegistryState
from streamlearn.serde import RegistryClient, RegistryUnavailableError
from streamlearn.settings import Settings
from tests.support import RegistryProcess


def record(*fields: dict[str, Any], name: str = "Order") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "test", "fields": list(fields)})


ID = {"name": "id", "type": "string"}
AMOUNT = {"name": "amount", "type": "double"}
CURRENCY_DEFAULT = {"name": "currency", "type": "string", "default": "EUR"}
CURRENCY_REQUIRED = {"name": "currency", "type": "string"}
V1 = record(ID, AMOUNT)
NOT_JSON_DEFAULT = (
    '{"type":"record","name":"N","fields":[{"name":"d","type":"double","default":?}]}'
)
V2 = record(ID, AMOUNT, CURRENCY_DEFAULT)


def http(method: str, url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/vnd.schemaregistry.v1+json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


@pytest.fixture
def registry_client(schema_registry_url: str) -> Iterator[Callable[[], SchemaRegistryClient]]:
    """``registry_client()`` → a confluent-kafka registry client, closed after the test."""
    clients: list[SchemaRegistryClient] = []

    def make() -> SchemaRegistryClient:
        clients.append(SchemaRegistryClient({"url": schema_registry_url}))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def _consume_one(bootstrap: str, topic: str, deserializer: AvroDeserializer) -> Any:
    consumer = DeserializingConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "key.deserializer": StringDeserializer(),
            "value.deserializer": deserializer,
        }
    )
    consumer.subscribe([topic])
    try:
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None:
                assert message.error() is None
                return message.value()
    finally:
        consumer.close()
    raise AssertionError(f"nothing consumed from {topic}")


def test_confluent_serdes_auto_register_and_deserialize_by_id(
    kafka_bootstrap: str,
    registry_client: Callable[[], SchemaRegistryClient],
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic()
    client = registry_client()
    producer = SerializingProducer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "key.serializer": StringSerializer(),
            "value.serializer": AvroSerializer(client, V1),
        }
    )
    producer.produce(topic, key="o-1", value={"id": "o-1", "amount": 12.5})
    assert producer.flush(30) == 0

    registered = client.get_latest_version(f"{topic}-value")
    assert registered.version == 1
    assert json.loads(registered.schema.schema_str) == json.loads(V1)

    fresh = registry_client()
    value = _consume_one(kafka_bootstrap, topic, AvroDeserializer(fresh))
    assert value == {"id": "o-1", "amount": 12.5}
    # A reader schema one version ahead resolves the old data with Avro's rules.
    value = _consume_one(kafka_bootstrap, topic, AvroDeserializer(fresh, V2))
    assert value == {"id": "o-1", "amount": 12.5, "currency": "EUR"}


def test_a_schema_written_by_its_guid_is_read_by_it(
    kafka_bootstrap: str,
    registry_client: Callable[[], SchemaRegistryClient],
    new_topic: Callable[..., str],
    schema_registry_url: str,
) -> None:
    """Found by a new user: this registry hands out a schema's `guid` (on a register, on
    `/schemas/ids/{id}`), and confluent-kafka's serializer can write that guid into a
    record's header instead of the id before its body (`header_schema_id_serializer`);
    the deserializer then asks `GET /schemas/guids/{guid}`, which was a 404 here, so no
    record written that way could be read. Served as Confluent's registry serves it,
    with `/schemas/guids/{guid}/ids`."""
    from confluent_kafka.schema_registry import header_schema_id_serializer

    topic = new_topic()
    producer = SerializingProducer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "key.serializer": StringSerializer(),
            "value.serializer": AvroSerializer(
                registry_client(), V1, conf={"schema.id.serializer": header_schema_id_serializer}
            ),
        }
    )
    # The serializer puts the guid in the headers it is given.
    producer.produce(topic, key="o-1", value={"id": "o-1", "amount": 12.5}, headers=[])
    assert producer.flush(30) == 0
    value = _consume_one(kafka_bootstrap, topic, AvroDeserializer(registry_client()))
    assert value == {"id": "o-1", "amount": 12.5}

    registered = registry_client().get_latest_version(f"{topic}-value")
    status, by_id = http("GET", f"{schema_registry_url}/schemas/ids/{registered.schema_id}")
    assert status == 200
    status, by_guid = http("GET", f"{schema_registry_url}/schemas/guids/{by_id['guid']}")
    assert (status, by_guid) == (200, by_id)
    status, ids = http("GET", f"{schema_registry_url}/schemas/guids/{by_id['guid']}/ids")
    assert (status, ids) == (200, [{"context": ".", "id": registered.schema_id}])
    unknown = "00000000-0000-0000-0000-000000000000"
    status, answer = http("GET", f"{schema_registry_url}/schemas/guids/{unknown}")
    assert (status, answer["error_code"]) == (404, 40403)
    assert http("GET", f"{schema_registry_url}/schemas/guids/{unknown}/ids") == (200, [])


def test_use_latest_version(
    kafka_bootstrap: str,
    registry_client: Callable[[], SchemaRegistryClient],
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic()
    subject = f"{topic}-value"
    client = registry_client()
    first = client.register_schema(subject, Schema(V1, "AVRO"))
    second = client.register_schema(subject, Schema(V2, "AVRO"))
    assert second != first
    assert client.get_versions(subject) == [1, 2]

    serializer = AvroSerializer(
        client, conf={"auto.register.schemas": False, "use.latest.version": True}
    )
    producer = SerializingProducer(
        {"bootstrap.servers": kafka_bootstrap, "value.serializer": serializer}
    )
    producer.produce(topic, value={"id": "o-2", "amount": 3.0, "currency": "SEK"})
    assert producer.flush(30) == 0
    deserializer = AvroDeserializer(client, conf={"use.latest.version": True})
    assert _consume_one(kafka_bootstrap, topic, deserializer) == {
        "id": "o-2",
        "amount": 3.0,
        "currency": "SEK",
    }
    found = client.lookup_schema(subject, Schema(V1, "AVRO"))
    assert (found.version, found.schema_id) == (1, first)


def test_compatibility_config_and_checks(
    schema_registry_url: str,
    registry_client: Callable[[], SchemaRegistryClient],
    unique_name: Callable[..., str],
) -> None:
    subject = unique_name("subject")
    client = registry_client()
    client.register_schema(subject, Schema(V1, "AVRO"))
    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility(subject, "FULL")
    assert client.get_compatibility(subject) == "FULL"

    assert client.test_compatibility(subject, Schema(V2, "AVRO")) is True
    required = record(ID, AMOUNT, CURRENCY_REQUIRED)
    assert client.test_compatibility(subject, Schema(required, "AVRO")) is False
    status, body = http(
        "POST",
        f"{schema_registry_url}/compatibility/subjects/{subject}/versions/latest?verbose=true",
        {"schema": required},
    )
    assert status == 200
    assert body["is_compatible"] is False
    assert "currency" in body["messages"][0]

    with pytest.raises(SchemaRegistryError) as info:
        client.register_schema(subject, Schema(required, "AVRO"))
    assert info.value.http_status_code == 409
    assert info.value.error_code == 409
    assert client.get_versions(subject) == [1], "a refused schema changes nothing"

    client.set_compatibility(subject, "NONE")
    client.register_schema(subject, Schema(required, "AVRO"))
    assert client.get_versions(subject) == [1, 2]


def test_a_schema_for_a_new_subject_is_compatible_with_its_latest_version(
    schema_registry_url: str,
    registry_client: Callable[[], SchemaRegistryClient],
    unique_name: Callable[..., str],
) -> None:
    """Found by a new user: confluent-kafka's `test_compatibility` (which asks against
    `latest`) raised 404 40401 for a subject with no version yet, where Confluent's
    registry answers `is_compatible: true` (nothing to be incompatible with): a CI step
    checking a new topic's schema before its first deployment failed here only. A given
    version number of such a subject is still 404, as there."""
    subject = unique_name("subject")
    client = registry_client()
    assert client.test_compatibility(subject, Schema(V1, "AVRO")) is True
    base = f"{schema_registry_url}/compatibility/subjects/{subject}/versions"
    assert http("POST", f"{base}/-1", {"schema": V1}) == (200, {"is_compatible": True})
    assert http("POST", f"{base}/1", {"schema": V1})[1]["error_code"] == 40401
    # Every version soft-deleted: as new.
    client.register_schema(subject, Schema(V1, "AVRO"))
    client.delete_subject(subject)
    required = record(ID, CURRENCY_REQUIRED)
    assert client.test_compatibility(subject, Schema(required, "AVRO")) is True


def _snapshot(url: str, subjects: list[str]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for subject in subjects:
        _, versions = http("GET", f"{url}/subjects/{subject}/versions?deleted=true")
        state[subject] = [
            http("GET", f"{url}/subjects/{subject}/versions/{v}?deleted=true")[1] for v in versions
        ]
        state[subject + "#config"] = http("GET", f"{url}/config/{subject}?defaultToGlobal=true")[1]
    state["#subjects"] = http("GET", f"{url}/subjects")[1]
    return state


def test_replicas_rebuild_the_same_state_after_a_kill(
    start_registry: Callable[[str], RegistryProcess], unique_name: Callable[..., str]
) -> None:
    prefix = unique_name("reg") + "."
    first = start_registry(prefix)
    subjects = [f"orders-{i}-value" for i in range(3)]
    for subject in subjects:
        assert http("POST", f"{first.url}/subjects/{subject}/versions", {"schema": V1})[0] == 200
    assert http("POST", f"{first.url}/subjects/{subjects[0]}/versions", {"schema": V2})[0] == 200
    assert http("PUT", f"{first.url}/config/{subjects[1]}", {"compatibility": "FULL"})[0] == 200
    assert http("DELETE", f"{first.url}/subjects/{subjects[2]}")[0] == 200
    before = _snapshot(first.url, subjects)
    first.stop(signal.SIGKILL)

    second, third = start_registry(prefix), start_registry(prefix)
    assert _snapshot(second.url, subjects) == before
    assert _snapshot(third.url, subjects) == before

    # A write on one replica is read by the other from the topic.
    other = record(ID, name="Refund")
    status, body = http("POST", f"{second.url}/subjects/refunds-value/versions", {"schema": other})
    assert status == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, found = http("POST", f"{third.url}/subjects/refunds-value", {"schema": other})
        if status == 200:
            break
        time.sleep(0.1)
    assert found["id"] == body["id"]
    assert found["version"] == 1


def test_racing_replicas_never_share_an_id(
    start_registry: Callable[[str], RegistryProcess], unique_name: Callable[..., str]
) -> None:
    prefix = unique_name("race") + "."
    replicas = [start_registry(prefix), start_registry(prefix)]
    results: dict[str, int] = {}
    errors: list[Any] = []

    def register(index: int) -> None:
        url = replicas[index % 2].url
        schema = record(ID, name=f"Event{index}")
        status, body = http("POST", f"{url}/subjects/s{index}-value/versions", {"schema": schema})
        if status != 200:
            errors.append(body)
        else:
            results[f"s{index}-value"] = body["id"]

    threads = [threading.Thread(target=register, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(results.values())) == 16, "every distinct schema gets its own id"
    for replica in replicas:
        for subject, schema_id in results.items():
            deadline = time.monotonic() + 30
            while True:
                status, body = http("GET", f"{replica.url}/subjects/{subject}/versions/latest")
                if status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert (status, body["id"], body["version"]) == (200, schema_id, 1)


def test_latest_is_tested_alone_under_a_transitive_level(
    schema_registry_url: str,
    registry_client: Callable[[], SchemaRegistryClient],
    unique_name: Callable[..., str],
) -> None:
    """`versions/latest` was tested against every version under BACKWARD_TRANSITIVE, unlike
    `versions/2` (the same version) and Confluent's registry; confluent-kafka's
    test_compatibility asks for `latest` by default."""
    subject = unique_name("transitive")
    client = registry_client()
    client.set_compatibility(subject, "NONE")
    client.register_schema(subject, Schema(record({"name": "x", "type": "int"}), "AVRO"))
    client.register_schema(subject, Schema(record(), "AVRO"))
    client.set_compatibility(subject, "BACKWARD_TRANSITIVE")
    candidate = record({"name": "x", "type": "string", "default": "a"})
    url = f"{schema_registry_url}/compatibility/subjects/{subject}/versions"
    for path, compatible in (("/latest", True), ("/2", True), ("/1", False), ("", False)):
        status, body = http("POST", url + path, {"schema": candidate})
        assert (status, body["is_compatible"]) == (200, compatible), path
    assert client.test_compatibility(subject, Schema(candidate, "AVRO")) is True


def test_answers_are_in_the_registry_media_type(schema_registry_url: str) -> None:
    """Confluent's registry answers its API as application/vnd.schemaregistry.v1+json; this
    one answered application/json (its constant for the other was never used)."""
    registry = "application/vnd.schemaregistry.v1+json"
    for path, media in (
        ("/subjects", registry),
        ("/config", registry),
        ("/schemas/ids/999999", registry),  # an error too
        ("/healthz", "application/json"),
        ("/openapi.json", "application/json"),
    ):
        request = urllib.request.Request(schema_registry_url + path)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                content_type = response.headers["Content-Type"]
        except urllib.error.HTTPError as error:
            with error:
                content_type = error.headers["Content-Type"]
        assert content_type.split(";")[0] == media, path


def _compacted(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """``topic`` as Kafka's log cleaner leaves it: each key's last record, in log order."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4()}",
         "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, 0)])
    _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    records: list[tuple[int, bytes | None, bytes | None]] = []
    while not records or records[-1][0] < high - 1:
        message = consumer.poll(5)
        assert message is not None, f"{topic} ended before offset {high}"
        records.append((message.offset(), message.key(), message.value()))
    consumer.close()
    last = {key: offset for offset, key, _ in records}
    return [(key, value) for offset, key, value in records if last[key] == offset]


def test_racing_replicas_leave_a_log_that_compacts_to_what_they_acknowledged(
    start_registry: Callable[[str], RegistryProcess],
    unique_name: Callable[..., str],
    kafka_bootstrap: str,
) -> None:
    """Two replicas registering in one subject race for the same next version: the loser's
    record followed the winner's under the same key, and compaction keeps a key's last
    record, so a replica rebuilt from the compacted topic answered acknowledged ids, and
    versions, with the losing schemas (7 of 40 ids for a new user)."""
    prefix = unique_name("compact") + "."
    replicas = [start_registry(prefix), start_registry(prefix)]
    subject = "race-value"
    assert http("PUT", f"{replicas[0].url}/config/{subject}", {"compatibility": "NONE"})[0] == 200
    acknowledged: dict[int, str] = {}
    lock = threading.Lock()

    def register(index: int) -> None:
        schema = record(ID, name=f"R{index}")
        status, body = http(
            "POST", f"{replicas[index % 2].url}/subjects/{subject}/versions", {"schema": schema}
        )
        assert status == 200, body
        with lock:
            acknowledged[body["id"]] = f"R{index}"

    threads = [threading.Thread(target=register, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(acknowledged) == 40
    rebuilt = RegistryState()
    for key, value in _compacted(kafka_bootstrap, f"{prefix}_schemas"):
        rebuilt.apply(key, value)
    versions = rebuilt.all_versions(subject)
    assert {v.schema_id: json.loads(v.schema)["name"] for v in versions} == acknowledged
    for version in versions:  # and each version as the live replicas answer it
        status, body = http(
            "GET", f"{replicas[1].url}/subjects/{subject}/versions/{version.version}"
        )
        assert (status, body["id"]) == (200, version.schema_id)


def test_deletes_and_ids_are_never_reused(
    start_registry: Callable[[str], RegistryProcess], unique_name: Callable[..., str]
) -> None:
    prefix = unique_name("del") + "."
    registry = start_registry(prefix)
    url = registry.url
    _, first = http("POST", f"{url}/subjects/a-value/versions", {"schema": V1})
    _, second = http("POST", f"{url}/subjects/a-value/versions", {"schema": V2})

    status, body = http("DELETE", f"{url}/subjects/a-value?permanent=true")
    assert (status, body["error_code"]) == (404, 40405)
    assert "not deleted first" in body["message"]
    assert http("DELETE", f"{url}/subjects/a-value") == (200, [1, 2])
    assert http("GET", f"{url}/subjects")[1] == []
    assert http("GET", f"{url}/subjects?deleted=true")[1] == ["a-value"]
    assert http("GET", f"{url}/subjects/a-value/versions")[1]["error_code"] == 40401
    assert http("DELETE", f"{url}/subjects/a-value")[1]["error_code"] == 40404
    assert http("DELETE", f"{url}/subjects/a-value?permanent=true") == (200, [1, 2])
    http("POST", f"{url}/subjects/c-value/versions", {"schema": V1})
    assert http("DELETE", f"{url}/subjects/c-value/versions/1") == (200, 1)
    status, body = http("DELETE", f"{url}/subjects/c-value/versions/1")
    assert (status, body["error_code"]) == (404, 40406), "soft deleted already"
    assert http("DELETE", f"{url}/subjects/c-value/versions/1?permanent=true") == (200, 1)
    assert http("GET", f"{url}/schemas/ids/{second['id']}")[1]["error_code"] == 40403

    registry.stop()
    restarted = start_registry(prefix)
    third = record(ID, name="Other")
    _, body = http("POST", f"{restarted.url}/subjects/b-value/versions", {"schema": third})
    assert body["id"] > second["id"] > first["id"], "a deleted id is never handed out again"


def test_the_same_schema_written_differently_is_the_same_version(schema_registry_url: str) -> None:
    """Key order and a primitive written as {"type": ...} do not make another schema (the
    Java registry compares parsed schemas): no new version, the same id, found by lookup."""
    url = f"{schema_registry_url}/subjects/same-value"
    _, first = http("POST", f"{url}/versions", {"schema": V1})
    reordered = json.dumps(
        {
            "fields": [
                {"type": "string", "name": "id"},
                {"name": "amount", "type": {"type": "double"}},
            ],
            "namespace": "test",
            "name": "Order",
            "type": "record",
        }
    )
    assert http("POST", f"{url}/versions", {"schema": reordered}) == (200, first)
    assert http("GET", f"{url}/versions")[1] == [1]
    status, found = http("POST", url, {"schema": reordered})
    assert (status, found["id"], found["version"]) == (200, first["id"], 1)
    _, other = http(
        "POST", f"{schema_registry_url}/subjects/same2-value/versions", {"schema": reordered}
    )
    assert other == first, "the same schema under another subject shares its id"
    _, plain = http(
        "POST", f"{schema_registry_url}/subjects/prim-value/versions", {"schema": '"int"'}
    )
    assert http(
        "POST", f"{schema_registry_url}/subjects/prim-value/versions", {"schema": '{"type": "int"}'}
    ) == (200, plain)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error_code"),
    [
        ("POST", "/subjects/x-value/versions", b"{not json", 400, 400),
        ("POST", "/subjects/x-value/versions", b"[1, 2]", 400, 400),
        ("POST", "/subjects/x-value/versions", {"schema": '{"type": "recrd"}'}, 422, 42201),
        ("POST", "/subjects/x-value/versions", {"schema": "not json"}, 422, 42201),
        ("POST", "/subjects/x-value/versions", {}, 422, 42201),
        ("POST", "/subjects/x-value/versions", {"schema": V1, "schemaType": "JSON"}, 422, 42201),
        # A default that does not fit its field's type (Avro's parsers refuse it).
        (
            "POST",
            "/subjects/x-value/versions",
            {"schema": record(ID, {"name": "n", "type": "int", "default": "oops"})},
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/x-value/versions",
            {"schema": record({"name": "u", "type": ["string", "null"], "default": None})},
            422,
            42201,
        ),
        # What Java's parser refuses and Python's took (a new user registered each).
        *[
            ("POST", "/subjects/x-value/versions", {"schema": record(field)}, 422, 42201)
            for field in (
                {"name": "n", "type": "int", "default": 3_000_000_000},
                {"name": "a", "type": {"type": "array", "items": "int"}, "default": ["x"]},
                {"name": "m", "type": {"type": "map", "values": "int"}, "default": {"k": "v"}},
                {"name": "r", "type": json.loads(record(ID, name="Inner")), "default": {}},
                {"name": "a-b", "type": "int"},
            )
        ],
        # Nested deeper than a parser recurses: the body, a string in it, a schema.
        ("POST", "/subjects/x-value/versions", b"[" * 50_000 + b"]" * 50_000, 400, 400),
        ("POST", "/subjects/x-value/versions", {"schema": "[" * 50_000 + "]" * 50_000}, 422, 42201),
        (
            "POST",
            "/subjects/x-value/versions",
            {"schema": '{"type":"array","items":' * 2_000 + '"int"' + "}" * 2_000},
            422,
            42201,
        ),
        # JavaScript's NaN and Infinity are not JSON: stored, they were served back to
        # clients that cannot parse them.
        (
            "POST",
            "/subjects/x-value/versions",
            {"schema": NOT_JSON_DEFAULT.replace("?", "NaN")},
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/x-value/versions",
            {"schema": NOT_JSON_DEFAULT.replace("?", "-Infinity")},
            422,
            42201,
        ),
        ("GET", "/subjects/missing-value/versions", None, 404, 40401),
        ("GET", "/subjects/missing-value/versions/1", None, 404, 40401),
        ("GET", "/subjects/known-value/versions/7", None, 404, 40402),
        ("GET", "/subjects/known-value/versions/abc", None, 422, 42202),
        ("GET", "/schemas/ids/987654", None, 404, 40403),
        ("PUT", "/config", {"compatibility": "SIDEWAYS"}, 422, 42203),
        ("GET", "/config/known-value", None, 404, 40408),
        ("GET", "/associations/resources/-/known?resourceType=topic", None, 404, 404),
    ],
)
def test_bad_requests_get_the_registry_error_and_the_service_keeps_running(
    schema_registry_url: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    error_code: int,
) -> None:
    http("POST", f"{schema_registry_url}/subjects/known-value/versions", {"schema": V1})
    raw = body if isinstance(body, bytes) else None
    got_status, got = http(method, schema_registry_url + path, None if raw else body, raw=raw)
    assert (got_status, got["error_code"]) == (status, error_code), got
    assert got["message"]
    assert http("GET", f"{schema_registry_url}/subjects")[0] == 200


def test_a_body_of_another_media_type_is_415(schema_registry_url: str) -> None:
    """Found by a new user: a register sent as `text/plain` or a form
    (`application/x-www-form-urlencoded`, curl's `-d` without `-H`) was taken; Confluent's
    registry answers 415, and a client sending a form is one that means something else."""
    body = json.dumps({"schema": V1}).encode()
    url = f"{schema_registry_url}/subjects/media-value/versions"
    for media_type in ("text/plain", "application/x-www-form-urlencoded"):
        request = urllib.request.Request(url, data=body, method="POST")
        request.add_header("Content-Type", media_type)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        with refused.value as error:
            assert error.code == 415
            answer = json.loads(error.read())
        assert answer["error_code"] == 415
        assert media_type in answer["message"]
    for media_type in ("application/json", "application/vnd.schemaregistry+json",
                       "application/octet-stream"):  # fmt: skip
        request = urllib.request.Request(url, data=body, method="POST")
        request.add_header("Content-Type", media_type)
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200


@pytest.mark.parametrize(
    "subject",
    ["tab\there-value", "nul\x00-value", "del\x7f-value", "c1\x85-value", "__GLOBAL", "__EMPTY"],
)
def test_a_subject_confluents_registry_refuses_is_refused(
    schema_registry_url: str, subject: str
) -> None:
    """Found by a new user: a subject holding a control character (a tab pasted with the
    name, a NUL) was registered, listed under /subjects with it, and then matched no
    topic's `<topic>-value`; Confluent's registry refuses such a subject, and the two names
    it keeps for its global settings, as 422 with error code 42208, on a register and on a
    subject's config."""
    from urllib.parse import quote

    path = quote(subject, safe="")
    status, answer = http("POST", f"{schema_registry_url}/subjects/{path}/versions", {"schema": V1})
    assert (status, answer["error_code"]) == (422, 42208), answer
    assert "subject" in answer["message"]
    assert subject not in http("GET", f"{schema_registry_url}/subjects")[1]
    status, answer = http("PUT", f"{schema_registry_url}/config/{path}", {"compatibility": "NONE"})
    assert (status, answer["error_code"]) == (422, 42208), answer


@pytest.mark.parametrize(
    ("path", "body", "error_code", "named"),
    [
        ("/subjects/f-value/versions", {"schema": V1, "ruleSet": {"domainRules": [
            {"name": "encrypt", "kind": "TRANSFORM", "type": "ENCRYPT"}]}}, 42201, "ruleSet"),
        ("/subjects/f-value/versions", {"schema": V1, "metadata": {"properties": {"o": "x"}}},
         42201, "metadata"),
        ("/subjects/f-value/versions", {"schema": V1, "id": 500}, 42205, "id"),
        ("/subjects/f-value/versions", {"schema": V1, "version": 5}, 42205, "version"),
        ("/config/f-value", {"compatibility": "NONE", "alias": "other-value"}, 42203, "alias"),
        ("/config", {"compatibility": "NONE", "normalize": True}, 42203, "normalize"),
    ],
)  # fmt: skip
def test_what_this_registry_does_not_keep_is_refused_not_dropped(
    schema_registry_url: str, path: str, body: dict[str, Any], error_code: int, named: str
) -> None:
    """Found by a new user: a register carrying a `ruleSet` (field encryption) or
    `metadata`, or asking for an `id` or `version`, answered 200 with an id of the
    registry's choosing, the rest dropped without a word (a client thought its encryption
    rule stored); `PUT /config` with `alias` or `normalize` answered 200 the same way.
    Each is refused, naming the field; the same fields given as null (clients send
    unset ones so) are taken."""
    method = "PUT" if path.startswith("/config") else "POST"
    subject = f"f-{uuid.uuid4().hex[:8]}-value"
    path = path.replace("f-value", subject)
    status, answer = http(method, schema_registry_url + path, body)
    assert (status, answer["error_code"]) == (422, error_code), answer
    assert named in answer["message"]
    if path.startswith("/subjects"):
        assert http("GET", f"{schema_registry_url}/subjects/{subject}/versions")[0] == 404
    nulls = {key: (None if key not in ("schema", "compatibility") else value)
             for key, value in body.items()}  # fmt: skip
    assert http(method, schema_registry_url + path, nulls)[0] == 200
    if path.startswith("/config"):
        http("DELETE", schema_registry_url + path)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "record", "fields": []}, 'the schema: a record needs a "name"'),
        ({"type": "record", "name": "X", "fields": [{"name": "a"}]}, 'record X, field a: "type"'),
        ({"type": "enum", "name": "E"}, 'enum E: "symbols" is required'),
        (
            {
                "type": "record",
                "name": "X",
                "fields": [{"name": "a", "type": ["null", {"type": "map"}]}],
            },
            'record X, field a, union branch 1: a map needs "values"',
        ),
    ],
)
def test_a_missing_attribute_is_named_where_it_is_missing(
    schema_registry_url: str, schema: Any, message: str
) -> None:
    """Found by a new user: these were Apache Avro's own words ("Name None must be a
    string, but it is <class 'NoneType'>")."""
    url = f"{schema_registry_url}/subjects/shape-value/versions"
    status, body = http("POST", url, {"schema": json.dumps(schema)})
    assert (status, body["error_code"]) == (422, 42201), body
    assert message in body["message"], body["message"]


def test_oversized_request_is_413(schema_registry_url: str) -> None:
    huge = {"schema": V1, "padding": "x" * (9 * 1024 * 1024)}
    status, body = http("POST", f"{schema_registry_url}/subjects/big-value/versions", huge)
    assert (status, body["error_code"]) == (413, 413)


def test_writes_need_a_configured_writer_and_reads_stay_open(kafka_bootstrap: str) -> None:
    registry = RegistryProcess(
        kafka_bootstrap,
        f"auth-{uuid.uuid4().hex[:8]}.",
        env={"STREAMLEARN_REGISTRY_WRITERS": '["ci-writer:pw-7f3a91"]'},
    )
    schema = record({"name": "id", "type": "string"})
    try:
        status, body = http("POST", f"{registry.url}/subjects/a-value/versions", {"schema": schema})
        assert status == 401
        assert body["error_code"] == 401
        assert http("GET", f"{registry.url}/subjects")[0] == 200, "reads stay open"
        wrong = SchemaRegistryClient(
            {"url": registry.url, "basic.auth.user.info": "ci-writer:not-it"}
        )
        with pytest.raises(SchemaRegistryError) as refused:
            wrong.register_schema("a-value", Schema(schema, "AVRO"))
        assert refused.value.http_status_code == 401
        # What confluent-kafka's clients send, and ours with STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH.
        writer = SchemaRegistryClient(
            {"url": registry.url, "basic.auth.user.info": "ci-writer:pw-7f3a91"}
        )
        first = writer.register_schema("a-value", Schema(schema, "AVRO"))
        ours = RegistryClient.for_settings(
            Settings(
                schema_registry_url=registry.url,
                schema_registry_basic_auth=SecretStr("ci-writer:pw-7f3a91"),
            )
        )
        with ours:
            assert ours.register("a-value", schema) == first
            other = record({"name": "id", "type": "string"}, name="Other")
            assert ours.register("b-value", other) > first
        status, found = http("POST", f"{registry.url}/subjects/a-value", {"schema": schema})
        assert status == 200, "a lookup only reads"
        assert found["id"] == first
        # The parts (collector, workers, agents) need no writer's password for schemas
        # `schemas register` put there: they look them up. They registered each one, so
        # every part, the internet-facing collector too, needed a writer's rights.
        reader = RegistryClient.for_settings(Settings(schema_registry_url=registry.url))
        with reader:
            assert reader.register("a-value", schema) == first
            with pytest.raises(RegistryUnavailableError, match="401"):
                reader.register("c-value", record({"name": "x", "type": "int"}, name="New"))
        for client in (wrong, writer):
            client.close()
    finally:
        registry.stop()
    assert "registry on http" in registry.output
    assert "pw-7f3a91" not in registry.output


def test_a_test_registry_that_logs_a_lot_keeps_answering(kafka_bootstrap: str) -> None:
    """The tests' registry process logs to a file, not to a pipe read only when it stops:
    at DEBUG it wrote past a pipe's 64 KiB within seconds and then hung on its next log
    line, and every test of the session waited on the registry (found running a test
    with ``STREAMLEARN_LOG_LEVEL=DEBUG``)."""
    registry = RegistryProcess(
        kafka_bootstrap, f"chatty-{uuid.uuid4().hex[:8]}.", env={"STREAMLEARN_LOG_LEVEL": "DEBUG"}
    )
    try:
        # Each logged (aiohttp's access log at DEBUG, ~145 bytes a line): past 64 KiB.
        for _ in range(800):
            assert http("GET", f"{registry.url}/subjects") == (200, [])
    finally:
        registry.stop()
    assert len(registry.output) > 65_536, "all it logged is kept"
    assert "GET /subjects" in registry.output


@pytest.mark.parametrize(
    ("partitions", "configs", "complaint"),
    [
        (3, {"cleanup.policy": "compact"}, "has 3 partitions"),
        (1, {"cleanup.policy": "delete", "retention.ms": "60000"}, "cleanup.policy=delete"),
        (1, {"cleanup.policy": "compact,delete"}, "cleanup.policy=compact,delete"),
    ],
)
def test_a_registry_refuses_a_schemas_topic_that_would_lose_its_state(
    kafka_bootstrap: str, partitions: int, configs: dict[str, str], complaint: str
) -> None:
    """Found by a new user: `registry serve` started on a `_schemas` made by hand with
    three partitions and `cleanup.policy=delete` (a minute's retention) without a word:
    it reads partition 0 only, and the broker deleted the schemas after the retention,
    after which their ids were unknown to every consumer and could be handed out again.
    Confluent's registry refuses such a topic at start; so does this one, saying why."""
    from confluent_kafka.admin import AdminClient, NewTopic

    prefix = f"bad-{uuid.uuid4().hex[:8]}."
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = NewTopic(f"{prefix}_schemas", num_partitions=partitions, replication_factor=1,
                     config=configs)  # fmt: skip
    admin.create_topics([topic])[topic.topic].result(timeout=30)
    try:
        started = RegistryProcess(kafka_bootstrap, prefix)
    except RuntimeError as refused:
        message = str(refused)
    else:
        started.stop()  # never left running past the test
        pytest.fail(f"the registry started on {prefix}_schemas")
    assert "registry exited" in message
    assert complaint in message, message
    assert f"{prefix}_schemas" in message
    assert "Traceback" not in message
