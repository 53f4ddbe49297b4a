"""Which Kafka user `up` and each part it runs connect as.

On a PLAINTEXT broker every part inherits `up`'s settings. On the embedded broker's secure
mode (``up --secure``, or a data directory made secure before) `up` itself connects as the
operator, ``streamlearn``: it applies the topology and the ACLs and reads topics for
``--chaos``'s invariants. With ACLs (``--secure`` turns them on) each part connects as its
own user, ``streamlearn-<part>``, which the broker's StandardAuthorizer lets do only what
``streamlearn acls plan`` derives for that part, as the Helm chart runs them. A part gets
its credentials in its own environment, as the chart's pods get theirs from a Secret: no
part holds another's password or the operator's.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from streamlearn.kafka_clients import confluent_config
from streamlearn.kafka_local.secure import (
    CLIENT_USER,
    PART_USER_PREFIX,
    SecureMaterial,
    client_settings,
)
from streamlearn.settings import Settings
from streamlearn.topology.acl_admin import apply_acls
from streamlearn.topology.acl_parts import shipped_parts
from streamlearn.topology.acls import DEFAULT_PRINCIPAL_PREFIX, Acl, plan_acls, principals
from streamlearn.topology.model import Topology
from streamlearn.topology.namespace import Namespace


@dataclass(frozen=True)
class KafkaUsers:
    """The users of one broker's secure material (None: a PLAINTEXT broker)."""

    material: SecureMaterial | None = None

    @property
    def per_part(self) -> bool:
        """Each part runs as its own user (the broker enforces ACLs)."""
        return self.material is not None and self.material.authorizer

    def operator(self, settings: Settings) -> Settings:
        """``settings`` connecting as the operator (unchanged on a PLAINTEXT broker)."""
        if self.material is None:
            return settings
        fields = client_settings(self.material, CLIENT_USER)
        return settings.model_copy(
            update={
                "kafka_security_protocol": fields["kafka_security_protocol"],
                "kafka_sasl_mechanism": fields["kafka_sasl_mechanism"],
                "kafka_sasl_username": fields["kafka_sasl_username"],
                "kafka_sasl_password": SecretStr(fields["kafka_sasl_password"]),
                "kafka_ssl_cafile": self.material.ca_path,
            }
        )

    def part_environment(self, part: str) -> dict[str, str]:
        """The environment that makes part ``part`` connect as its user (empty: `up`'s)."""
        if self.material is None:
            return {}
        user = PART_USER_PREFIX + part if self.per_part else CLIENT_USER
        fields = client_settings(self.material, user)
        return {f"STREAMLEARN_{name.upper()}": value for name, value in fields.items()}

    def grant(self, operator: Settings, topology: Topology) -> list[Acl]:
        """Apply every part's planned ACLs (what the cluster lacks); the ACLs added."""
        if not self.per_part:
            return []
        parts = shipped_parts(topology)
        principal_of = principals([part.part for part in parts], DEFAULT_PRINCIPAL_PREFIX, {})
        planned = plan_acls(parts, topology, Namespace(operator.topic_prefix), principal_of)
        return apply_acls(AdminClient(confluent_config(operator)), planned)
