"""The generated configuration of the single-node KRaft broker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamlearn.kafka_local.secure import SecureMaterial, secure_properties

# The broker also answers transactions and consumer groups on a single node, so every
# internal topic gets replication factor 1 and min.insync.replicas 1.
_SINGLE_NODE = {
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "10",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "min.insync.replicas": "1",
    "default.replication.factor": "1",
}


@dataclass(frozen=True)
class BrokerConfig:
    """Where the broker listens and keeps its data."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    node_id: int = 1
    secure: SecureMaterial | None = None
    """SASL_SSL with SCRAM users instead of PLAINTEXT (``kafka start --secure``)."""
    port_range: tuple[int, int] | None = None
    """Where a controller port of 0 is picked from (``STREAMLEARN_PORT_RANGE``)."""

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_path(self) -> Path:
        return self.data_dir / "log4j2.properties"

    @property
    def server_log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def console_path(self) -> Path:
        return self.server_log_dir / "console.log"


def server_properties(config: BrokerConfig) -> str:
    """``server.properties`` for one process that is both broker and KRaft controller."""
    client = "PLAINTEXT" if config.secure is None else "SASL_SSL"
    props = {
        "process.roles": "broker,controller",
        "node.id": str(config.node_id),
        "controller.quorum.voters": f"{config.node_id}@{config.host}:{config.controller_port}",
        "listeners": (
            f"{client}://{config.host}:{config.port},"
            f"CONTROLLER://{config.host}:{config.controller_port}"
        ),
        "advertised.listeners": f"{client}://{config.host}:{config.port}",
        "listener.security.protocol.map": f"{client}:{client},CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": client,
        **({} if config.secure is None else secure_properties(config.secure)),
        "log.dirs": str(config.log_dir),
        "num.partitions": "1",
        # Topics come from topology/topics.yaml; a typo in a topic name must fail, not
        # silently create a topic with default settings.
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        **_SINGLE_NODE,
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def log4j_properties(config: BrokerConfig) -> str:
    """Broker logs go to a size-capped rolling file, not to the terminal."""
    log_file = config.server_log_dir / "server.log"
    # Kafka flushes and logs its own shutdown from a JVM shutdown hook; log4j's hook would
    # close the appender in parallel and lose the last lines, so it is disabled.
    return f"""\
status = warn
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.filePattern = {log_file}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = warn
"""
