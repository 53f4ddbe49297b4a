from __future__ import annotations

import base64
import socket
import uuid
from pathlib import Path

import pytest

from streamlearn.kafka_local import EmbeddedKafka, free_port
from streamlearn.kafka_local import broker as broker_module
from streamlearn.kafka_local.broker import _cluster_id
from streamlearn.kafka_local.config import BrokerConfig, log4j_properties, server_properties
from streamlearn.kafka_local.exceptions import BrokerStartError


def _props(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_single_node_kraft_properties(tmp_path: Path) -> None:
    config = BrokerConfig(data_dir=tmp_path, port=19092, controller_port=19093)
    props = _props(server_properties(config))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(tmp_path / "kraft-logs")
    # Transactions and consumer groups need their internal topics to fit on one broker.
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["auto.create.topics.enable"] == "false"
    assert config.bootstrap == "127.0.0.1:19092"


def test_broker_logs_go_to_a_capped_file(tmp_path: Path) -> None:
    text = log4j_properties(BrokerConfig(data_dir=tmp_path))
    assert f"fileName = {tmp_path / 'logs' / 'server.log'}" in text
    assert "SizeBasedTriggeringPolicy" in text


def test_cluster_id_is_a_kafka_uuid() -> None:
    cluster_id = _cluster_id()
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert _cluster_id() != cluster_id


def test_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 as the first byte encodes to "-" first: kafka-storage would take it for an option.
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))])
    monkeypatch.setattr(broker_module.uuid, "uuid4", lambda: next(drawn))
    cluster_id = _cluster_id()
    assert cluster_id.startswith("E")
    assert not cluster_id.startswith("-")


def test_a_failed_starts_message_quotes_the_first_errors_not_the_shutdown(tmp_path: Path) -> None:
    """The message quoted the last 15 lines of console.log: Kafka's orderly shutdown, never
    the BindException that caused it (which is in server.log)."""
    from streamlearn.kafka_local.broker import _cause

    console = tmp_path / "console.log"
    console.write_text("[2026-12-03 20:46:10,001] INFO Registered signal handlers (x)\n")
    server = tmp_path / "server.log"
    server.write_text(
        "[2026-12-03 20:46:11,000] INFO starting (kafka.server.KafkaRaftServer)\n"
        "[2026-12-03 20:46:12,129] ERROR Unable to start acceptor for PLAINTEXT (k.n.A)\n"
        "org.apache.kafka.common.KafkaException: Socket server failed to bind to "
        "127.0.0.1:39098: Address already in use.\n"
        "\tat kafka.network.Acceptor.openServerSocket(SocketServer.scala:741)\n"
        "Caused by: java.net.BindException: Address already in use\n"
        "[2026-12-03 20:46:12,513] INFO [QuorumController id=1] electUnclean: event unable to "
        "start processing because of RejectedExecutionException (k.c.QuorumController)\n"
        "[2026-12-03 20:46:12,514] INFO Metrics reporters closed (o.a.k.c.m.Metrics)\n"
    )
    assert _cause(console, server).splitlines() == [
        "Unable to start acceptor for PLAINTEXT (k.n.A)",
        "org.apache.kafka.common.KafkaException: Socket server failed to bind to "
        "127.0.0.1:39098: Address already in use.",
        "Caused by: java.net.BindException: Address already in use",
    ]
    quiet = tmp_path / "quiet.log"
    quiet.write_text("".join(f"line {i}\n" for i in range(30)))
    assert _cause(quiet).splitlines() == [f"line {i}" for i in range(15, 30)]


def test_a_port_held_by_a_client_connected_to_itself_is_said_so(tmp_path: Path) -> None:
    """A broker's port in the ephemeral range, after an outage: a client that retried took
    the port as its own and connected to itself. "In use by another process" sent users
    looking for a process that does not exist."""
    port = free_port()
    with socket.socket() as client:
        client.bind(("127.0.0.1", port))
        client.connect(("127.0.0.1", port))
    broker = EmbeddedKafka(BrokerConfig(data_dir=tmp_path, port=port), classpath=[])
    with pytest.raises(BrokerStartError) as raised:
        broker.prepare()
    message = str(raised.value)
    assert f"port {port} on 127.0.0.1 is held by a client's connection to itself" in message
    assert "within about two minutes" in message
    assert "another process" not in message


def test_a_broker_stopped_while_starting_ends_the_wait_at_once(tmp_path: Path) -> None:
    """Found by a new user: Ctrl-C while the embedded broker started stopped it at once,
    but `up` returned a minute later: the wait went on polling a port nothing would answer
    until its timeout (stop() forgets the process the wait was watching)."""
    import subprocess
    import threading
    import time

    from streamlearn.kafka_local import free_port

    broker = EmbeddedKafka(BrokerConfig(data_dir=tmp_path, port=free_port()), classpath=[])
    jvm = broker._process = subprocess.Popen(["sleep", "60"])  # stands in for the JVM

    def stop() -> None:  # what stop() does to a broker it started
        jvm.terminate()
        jvm.wait()
        broker._process = None

    stopping = threading.Timer(0.5, stop)
    stopping.start()
    started = time.monotonic()
    with pytest.raises(BrokerStartError, match="exited"):
        broker.wait_ready(60)
    assert time.monotonic() - started < 10
    stopping.join()


@pytest.mark.parametrize("existing", [False, True])
def test_the_brokers_data_is_readable_by_its_owner_only(tmp_path: Path, existing: bool) -> None:
    """Found by a new user: the embedded broker's data directory was created with the
    umask's mode (0755), so every local user could read kraft-logs, where telemetry.events
    keeps end users' raw IPs and user agents. It is the owner's alone, made so at each
    start (a directory made before this was fixed included)."""
    data_dir = tmp_path / "kafka"
    if existing:
        data_dir.mkdir(mode=0o755)
        data_dir.chmod(0o755)
    kafka = EmbeddedKafka(BrokerConfig(data_dir, port=9092, controller_port=9093), classpath=[])
    kafka._write_config()
    assert data_dir.stat().st_mode & 0o777 == 0o700
