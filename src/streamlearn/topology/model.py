"""The declared topics: a typed, validated model of ``topology/topics.yaml``."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, model_validator

_DURATION = re.compile(r"^(\d+)\s*(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

# Configs set through dedicated fields; `configs:` may not set them a second way.
_MANAGED_KEYS = frozenset({"cleanup.policy", "retention.ms", "max.message.bytes"})


JAVA_LONG_MAX = 2**63 - 1
MAX_PARTITIONS = 100_000
"""The most partitions Kafka's clients create a topic with (librdkafka refuses more)."""


def parse_retention_ms(value: object) -> int:
    """``7d`` → 604800000; ``forever`` → -1 (Kafka's "no time limit")."""
    retention = _retention_ms(value)
    if retention > JAVA_LONG_MAX:
        raise ValueError("retention is longer than Kafka's retention.ms can hold (a Java long)")
    return retention


def _retention_ms(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("retention must be a duration like 7d, 12h, 30m or 'forever'")
    if isinstance(value, int):
        if value < -1:
            raise ValueError("retention in ms must be -1 (forever) or positive")
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "forever":
            return -1
        match = _DURATION.match(text)
        if match:
            return int(match.group(1)) * _UNIT_MS[match.group(2)]
    raise ValueError(f"retention {value!r} is not a duration like 7d, 12h, 30m, 500ms or 'forever'")


RetentionMs = Annotated[int, BeforeValidator(parse_retention_ms)]
CleanupPolicy = Literal["delete", "compact", "compact,delete"]


class TopicDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    replication_factor: StrictInt = Field(default=1, ge=1)
    partitions: StrictInt = Field(default=1, ge=1, le=MAX_PARTITIONS)


class TopicSpec(BaseModel):
    """One declared topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    key: str
    value_schema: str | None
    cleanup_policy: CleanupPolicy
    retention: RetentionMs
    # Strict: YAML's `true` or "6" would be taken as 1 and 6 partitions.
    partitions: StrictInt | None = Field(default=None, ge=1, le=MAX_PARTITIONS)
    replication_factor: StrictInt | None = Field(default=None, ge=1)
    max_message_bytes: StrictInt | None = Field(default=None, ge=1024)
    configs: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> TopicSpec:
        if not _TOPIC_NAME.match(self.name) or self.name in (".", ".."):
            raise ValueError(f"{self.name!r} is not a legal Kafka topic name")
        doubled = _MANAGED_KEYS & self.configs.keys()
        if doubled:
            raise ValueError(
                f"configs may not set {', '.join(sorted(doubled))}: use the dedicated field"
            )
        return self

    @property
    def compacted(self) -> bool:
        return "compact" in self.cleanup_policy

    def kafka_configs(self) -> dict[str, str]:
        """The topic-level configs streamlearn manages for this topic."""
        configs = {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention)}
        if self.max_message_bytes is not None:
            configs["max.message.bytes"] = str(self.max_message_bytes)
        configs.update(self.configs)
        return configs


class Topology(BaseModel):
    """Every topic of the system, with defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    defaults: TopicDefaults = Field(default_factory=TopicDefaults)
    topics: list[TopicSpec]

    @model_validator(mode="after")
    def _unique_names(self) -> Topology:
        seen: set[str] = set()
        for topic in self.topics:
            if topic.name in seen:
                raise ValueError(f"topic {topic.name!r} is declared twice")
            seen.add(topic.name)
        return self

    def topic(self, name: str) -> TopicSpec:
        for spec in self.topics:
            if spec.name == name:
                return spec
        raise KeyError(name)
