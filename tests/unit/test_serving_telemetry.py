"""The telemetry sink without a broker: what it hands the producer, and what it counts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import KafkaError
from prometheus_client import generate_latest

from streamlearn.serde import AvroSerde, InMemoryRegistry, SerdeError
from streamlearn.serving import telemetry
from streamlearn.serving.metrics import ServingMetrics
from streamlearn.serving.prediction_codec import prediction_record
from streamlearn.serving.telemetry import PRODUCER_SETTINGS, TelemetrySink
from streamlearn.settings import Settings


class FakeProducer:
    """Records what the sink produces (librdkafka is not involved)."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes, str]] = []
        self.polls = 0
        self.queued = 0
        """Records librdkafka would still hold (len(producer))."""

    def __len__(self) -> int:
        return self.queued

    def produce(self, topic: str, value: bytes, key: str) -> None:
        self.produced.append((topic, value, key))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def _sink(buffer: int = 100) -> tuple[TelemetrySink, FakeProducer, ServingMetrics]:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", serve_telemetry_buffer=buffer)
    metrics = ServingMetrics()
    sink = TelemetrySink(settings, InMemoryRegistry(), metrics)
    fake = FakeProducer()
    sink._producer = fake  # type: ignore[assignment]
    return sink, fake, metrics


PREDICTION: dict[str, Any] = {
    "request_id": "r-1",
    "user_id": "u-1",
    "model_name": "ctr@b",
    "model_version": None,
    "experiment": "split",
    "arm": "b",
    "score": 0.02,
    "decision": "skip",
    "degraded": True,
    "degraded_reason": "no_model",
    "capped": False,
}
FEATURES: dict[str, Any] = {"price": 2.5, "hour": 3, "mobile": True, "category": "books", "x": None}


def test_a_record_counted_delivered_is_on_every_in_sync_replica() -> None:
    """With ``acks=1`` a record the leader took and lost in a failover was counted as
    delivered: lost uncounted. Every in-sync replica has it before librdkafka reports it.
    Not idempotent: that producer's fatal errors (a sequence gap after a broker restart)
    stopped telemetry until the worker restarted (a review, on librdkafka's mock broker)."""
    assert PRODUCER_SETTINGS["acks"] == "all"
    assert PRODUCER_SETTINGS["enable.idempotence"] is False


def test_predictions_are_encoded_as_their_record() -> None:
    sink, fake, _ = _sink()
    asyncio.run(sink._ensure_schemas())
    assert sink._fast is not None
    for fast in (True, False):
        if not fast:
            sink._fast = None
        sink.offer_prediction(PREDICTION, FEATURES, {"placement": "top"}, 1_000, 1.5, "w-1")
        sink._send_chunk()
    serde: AvroSerde = sink.serdes["prediction"]
    record = prediction_record(PREDICTION, FEATURES, {"placement": "top"}, 1_000, 1.5, "w-1")
    assert record["model_version"] == 0  # the fallback answered
    [(topic, fast_bytes, key), (_, generic_bytes, _)] = fake.produced
    assert (topic, key) == (sink.topics["prediction"], "r-1")
    assert fast_bytes == generic_bytes == serde.encode(record)
    assert serde.decode(fast_bytes)["features"] == FEATURES


def test_deliveries_and_drops_are_counted() -> None:
    """librdkafka reports failed records only: delivered ones are those produced, less the
    failed and those still in its queue."""
    sink, fake, metrics = _sink(buffer=4)
    assert PRODUCER_SETTINGS["delivery.report.only.error"] is True
    for _ in range(5):  # before the schemas are known: buffered, within the bound
        sink.offer_prediction(PREDICTION, FEATURES, {}, 1_000, 1.5, "w-1")
    assert sink.pending == 4
    asyncio.run(sink._ensure_schemas())
    fake.queued = 4
    sink._send_chunk()
    assert len(fake.produced) == 4

    def delivered() -> str:
        return generate_latest(metrics.registry).decode()

    assert "streamlearn_serve_telemetry_delivered_total 0.0" in delivered()
    fake.queued = 1
    sink._report(KafkaError(KafkaError._MSG_TIMED_OUT), None)  # type: ignore[arg-type]
    sink._poll()
    assert "streamlearn_serve_telemetry_delivered_total 2.0" in delivered()
    fake.queued = 0
    sink._poll()
    text = delivered()
    assert "streamlearn_serve_telemetry_delivered_total 3.0" in text
    assert 'streamlearn_serve_telemetry_dropped_total{reason="delivery_failed"} 1.0' in text
    assert 'streamlearn_serve_telemetry_dropped_total{reason="buffer_full"} 1.0' in text


def test_tallied_predictions_are_in_every_rendering() -> None:
    metrics = ServingMetrics()
    metrics.served.counts[("ctr", "")] = 5
    first = generate_latest(metrics.registry).decode()
    metrics.served.counts[("ctr", "")] = 2
    second = generate_latest(metrics.registry).decode()
    line = 'streamlearn_serve_predictions_total{arm="",model="ctr"}'
    assert f"{line} 5.0" in first
    assert f"{line} 7.0" in second


def test_a_requests_predictions_are_offered_in_one_call_within_the_bound() -> None:
    from streamlearn.serving.validation import Instance

    sink, fake, metrics = _sink(buffer=3)
    sink.offer_prediction(PREDICTION, FEATURES, {}, 1_000, 1.5, "w-1")
    batch = [{**PREDICTION, "request_id": f"r-{i}"} for i in range(4)]
    instances = [
        Instance(f"u-{i}", {"price": float(i)}, {"placement": "top"}, None) for i in range(4)
    ]
    sink.offer_predictions(batch, instances, 2_000, 2.5, "w-1")
    assert sink.pending == 3  # room for two of the four (buffered: no schemas yet)
    asyncio.run(sink._ensure_schemas())
    sink._send_chunk()
    serde: AvroSerde = sink.serdes["prediction"]
    keys = [key for _, _, key in fake.produced]
    assert keys == ["r-1", "r-0", "r-1"]
    second = serde.decode(fake.produced[2][1])
    assert (second["request_id"], second["features"], second["context"]) == (
        "r-1", {"price": 1.0}, {"placement": "top"},
    )  # fmt: skip
    assert second["served_ts"].timestamp() == 2.0  # a timestamp-millis logical type
    assert second["latency_ms"] == 2.5
    text = generate_latest(metrics.registry).decode()
    assert 'streamlearn_serve_telemetry_dropped_total{reason="buffer_full"} 2.0' in text


class RegistryAway(InMemoryRegistry):
    """A schema registry that cannot be reached."""

    def register(self, subject: str, schema_str: str) -> int:
        raise SerdeError("schema registry unreachable: connection refused")

    def latest(self, subject: str) -> tuple[int, str]:
        raise SerdeError("schema registry unreachable: connection refused")


def test_records_dropped_while_the_registry_is_away_are_counted_as_no_schema() -> None:
    """A new user's worker started while the schema registry was down: the records of
    its first requests waited for their schemas, and those over the buffer's bound were
    counted as ``buffer_full`` ("the drain is behind"): the dashboard sent them looking at
    the worker's CPU instead of the registry. They are ``no_schema``, as the ones a
    stopping worker loses for the same reason; once the registry answers, a full buffer
    is ``buffer_full`` again."""
    from streamlearn.serving.validation import Instance

    settings = Settings(kafka_bootstrap="127.0.0.1:1", serve_telemetry_buffer=2)
    metrics = ServingMetrics()
    registry = RegistryAway()
    sink = TelemetrySink(settings, registry, metrics)
    sink._producer = FakeProducer()  # type: ignore[assignment]
    assert asyncio.run(sink._ensure_schemas()) is False
    batch = [{**PREDICTION, "request_id": f"r-{i}"} for i in range(3)]
    instances = [Instance(f"u-{i}", {"price": 1.0}, {}, None) for i in range(3)]
    sink.offer_predictions(batch, instances, 2_000, 2.5, "w-1")
    sink.offer("alert", "a-1", {"kind": "x"})
    text = generate_latest(metrics.registry).decode()
    assert 'streamlearn_serve_telemetry_dropped_total{reason="no_schema"} 2.0' in text
    assert 'streamlearn_serve_telemetry_dropped_total{reason="buffer_full"} 0.0' in text
    # The registry answers: the buffer drains, and a full one is the drain's again.
    registry.__class__ = InMemoryRegistry
    assert asyncio.run(sink._ensure_schemas()) is True
    sink.offer("alert", "a-2", {"kind": "x"})
    text = generate_latest(metrics.registry).decode()
    assert 'streamlearn_serve_telemetry_dropped_total{reason="buffer_full"} 1.0' in text


def test_once_the_schemas_are_known_a_batch_is_produced_in_its_call() -> None:
    """A batch is encoded and handed to librdkafka while its data is in the caches (a
    batch of 32: 1.15-1.2x less CPU than encoding it in the drain, bench/predict.py A/B);
    a single prediction waits for the drain (0.97-0.98x in its call), as does everything
    before the schemas are known."""
    from streamlearn.serving.validation import Instance

    sink, fake, _ = _sink(buffer=10)
    sink.offer_prediction({**PREDICTION, "request_id": "early"}, FEATURES, {}, 1_000, 1.5, "w")
    asyncio.run(sink._ensure_schemas())
    sink.offer_prediction({**PREDICTION, "request_id": "single"}, FEATURES, {}, 1_000, 1.5, "w")
    assert (sink.pending, fake.produced) == (2, [])
    batch = [{**PREDICTION, "request_id": f"r-{i}"} for i in range(3)]
    instances = [Instance(f"u-{i}", {"price": float(i)}, {}, None) for i in range(3)]
    sink.offer_predictions(batch, instances, 2_000, 2.5, "w")
    assert sink.pending == 2
    assert [key for _, _, key in fake.produced] == ["r-0", "r-1", "r-2"]
    record = prediction_record(batch[2], {"price": 2.0}, {}, 2_000, 2.5, "w")
    assert fake.produced[-1][1] == sink.serdes["prediction"].encode(record)
    sink._send_chunk()
    assert sink.pending == 0
    assert [key for _, _, key in fake.produced][3:] == ["early", "single"]


def test_records_refused_by_a_full_producer_queue_are_counted() -> None:
    class FullProducer(FakeProducer):
        def produce(self, topic: str, value: bytes, key: str) -> None:
            if len(self.produced) >= 2:
                raise BufferError("queue full")
            super().produce(topic, value, key)

    sink, _, metrics = _sink(buffer=10)
    full = FullProducer()
    sink._producer = full  # type: ignore[assignment]
    asyncio.run(sink._ensure_schemas())
    for _ in range(5):
        sink.offer_prediction(PREDICTION, FEATURES, {}, 1_000, 1.5, "w-1")
    sink._send_chunk()
    assert len(full.produced) == 2
    assert sink.pending == 0
    text = generate_latest(metrics.registry).decode()
    assert 'streamlearn_serve_telemetry_dropped_total{reason="producer_queue_full"} 3.0' in text


def test_a_request_is_one_entry_and_a_record_that_does_not_fit_is_dropped_alone() -> None:
    from streamlearn.serving.validation import Instance

    sink, fake, metrics = _sink(buffer=10)
    asyncio.run(sink._ensure_schemas())
    batch = [{**PREDICTION, "request_id": f"r-{i}"} for i in range(3)]
    instances = [Instance(f"u-{i}", {"price": float(i)}, {}, None) for i in range(3)]
    instances[1] = Instance("u-1", {"price": [1.0]}, {}, None)  # not a feature value
    sink.offer_predictions(batch, instances, 2_000, 2.5, "w-1")
    assert (sink.pending, len(sink._buffer)) == (3, 1)
    sink._send_chunk()
    assert sink.pending == 0
    assert [key for _, _, key in fake.produced] == ["r-0", "r-2"]
    serde: AvroSerde = sink.serdes["prediction"]
    for (_, value, _), instance, prediction in zip(
        fake.produced, [instances[0], instances[2]], [batch[0], batch[2]], strict=True
    ):
        record = prediction_record(prediction, instance.features, {}, 2_000, 2.5, "w-1")
        assert value == serde.encode(record)
    text = generate_latest(metrics.registry).decode()
    assert 'streamlearn_serve_telemetry_dropped_total{reason="encode_error"} 1.0' in text


def test_a_turn_that_fails_midway_hands_over_what_it_encoded_and_keeps_count(
    monkeypatch: Any,
) -> None:
    """A drain turn gathers its predictions and hands them over at its end: a bug in the
    middle of it (here, an alert's encoding raising what no schema check raises) must not
    take the requests encoded before it along, nor leave their records counted as still
    waiting (a count that only grows turns into ``buffer_full`` drops for good)."""
    from streamlearn.serving.validation import Instance

    sink, fake, _ = _sink(buffer=10)
    asyncio.run(sink._ensure_schemas())
    for i in range(2):
        instance = Instance(f"u-{i}", {"price": float(i)}, {}, None)
        sink.offer_predictions(
            [{**PREDICTION, "request_id": f"r-{i}"}], [instance], 2_000, 2.5, "w-1"
        )
    sink.offer("alert", "k", {"alert_key": "k"})

    def broken(record: Any) -> bytes:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sink.serdes["alert"], "encode", broken)
    with pytest.raises(RuntimeError):  # the drain's loop logs it and goes on
        sink._send_chunk()
    assert [key for _, _, key in fake.produced] == ["r-0", "r-1"]
    assert sink.pending == 0


def test_the_largest_instance_a_worker_takes_makes_a_record_kafka_takes() -> None:
    """The validation's bound on an instance (its JSON) keeps its record under Kafka's
    1,000,000-byte message limit, in the worst case: doubles under short names, which Avro
    writes in 8 bytes each (``"abc":1.0,`` is 10 bytes of JSON, 13 of Avro), and ids of
    the longest kind."""
    import itertools
    import string

    import orjson

    from streamlearn.serving.validation import MAX_ID_CHARS, MAX_INSTANCE_BYTES

    sink, _, _ = _sink()
    asyncio.run(sink._ensure_schemas())
    assert sink._fast is not None
    names = ("".join(n) for n in itertools.product(string.ascii_letters + string.digits, repeat=3))
    entries = (MAX_INSTANCE_BYTES - 4 * MAX_ID_CHARS - 64) // len('"abc":1.0,')
    features: dict[str, Any] = dict(zip(names, itertools.repeat(1.0, entries), strict=False))
    wide = "\U0001f600" * MAX_ID_CHARS  # 4 bytes each in UTF-8
    prediction = {**PREDICTION, "request_id": wide, "user_id": wide, "arm": "a" * 100}
    size = len(orjson.dumps({"user_id": wide, "features": features}))
    assert MAX_INSTANCE_BYTES - 100 <= size <= MAX_INSTANCE_BYTES
    record = prediction_record(prediction, features, {}, 1_000, 1.5, "w" * 100)
    fast = sink._fast.encode(record)
    assert fast == sink.serdes["prediction"].encode(record)
    assert len(fast) < 1_000_000 - 1_000, len(fast)  # room for the batch's own bytes


def test_an_idle_drain_polls_the_producer_a_few_times_a_second() -> None:
    """With nothing buffered the drain still serves delivery reports and the delivered
    count, but once quiet it does not wake every few milliseconds to find nothing: polling
    every 5 ms cost an idle worker 28 ms of CPU a second (3 % of a core)."""
    sink, fake, _ = _sink()

    async def idle_for(seconds: float) -> None:
        drain = asyncio.create_task(sink.run())
        await asyncio.sleep(seconds)
        drain.cancel()

    asyncio.run(idle_for(1.0))
    # Every 5 ms for the first 100 ms, then every 100 ms: ~29 (every 5 ms: ~190); fewer on
    # a busy machine, whose sleeps overrun, but never none.
    assert 2 <= fake.polls <= 40


def test_an_offer_wakes_an_idle_drain_at_once(monkeypatch: Any) -> None:
    monkeypatch.setattr(telemetry, "IDLE_POLL_S", 60.0)
    sink, fake, _ = _sink()

    async def offer_to_an_idle_drain() -> float:
        await sink._ensure_schemas()
        drain = asyncio.create_task(sink.run())
        await asyncio.sleep(0.3)  # quiet for longer than QUIET_TURNS turns: it waits
        loop = asyncio.get_running_loop()
        offered = loop.time()
        sink.offer_prediction(PREDICTION, FEATURES, {}, 1_000, 1.5, "w-1")
        while not fake.produced and loop.time() - offered < 10:
            await asyncio.sleep(0.001)
        drain.cancel()
        return loop.time() - offered

    waited = asyncio.run(offer_to_an_idle_drain())
    assert [key for _, _, key in fake.produced] == ["r-1"]
    assert waited < 10  # not after the idle poll's 60 s


def test_the_sink_tells_its_watch_what_it_hands_over_and_what_a_broker_said() -> None:
    """Records handed over start the watch's wait; a delivery (or a broker's error) ends
    it, a record that timed out in the client does not (see producer_watch)."""
    sink, fake, metrics = _sink()
    asyncio.run(sink._ensure_schemas())
    sink.offer_prediction(PREDICTION, FEATURES, {}, 1_000, 1.5, "w-1")
    fake.queued = 1
    sink._send_chunk()
    assert sink.watch._waiting_since is not None
    fake.queued = 0
    sink._report(KafkaError(KafkaError._MSG_TIMED_OUT), None)  # type: ignore[arg-type]
    sink._poll()
    assert sink.watch._waiting_since is not None, "a time-out in the client is no word"
    sink.offer_prediction(PREDICTION, FEATURES, {}, 1_000, 1.5, "w-1")
    sink._send_chunk()  # the poll after it counts it delivered (nothing left queued)
    assert sink.watch._waiting_since is None
    sink.offer_prediction(PREDICTION, FEATURES, {}, 1_000, 1.5, "w-1")
    fake.queued = 1
    sink._send_chunk()
    fake.queued = 0
    sink._report(KafkaError(KafkaError.NOT_ENOUGH_REPLICAS), None)  # type: ignore[arg-type]
    sink._poll()
    assert sink.watch._waiting_since is None, "a broker's error is word from it"
    assert (
        "streamlearn_serve_telemetry_unheard_seconds 0.0"
        in generate_latest(metrics.registry).decode()
    )
