"""Settings the Helm chart takes from its own values, and what ``config`` says of them.

``config`` holds any other setting by name and goes into a ConfigMap. A setting the chart
makes itself (from a value of its own, a Secret or the pod's layout), and a secret (which
must never reach a ConfigMap), are refused there. Helm's own words for an unknown key,
"additional properties 'serve_api_tokens' not allowed", say neither that it is a known
setting nor where it goes; each such key is therefore a property of ``config`` whose
schema refuses every value (a ``const`` and its ``not``) with a message naming the value
to set instead: Helm prints "value must be '<message>'".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

EMBEDDED_BROKER = "a setting of the embedded broker, which a cluster does not run"
POD_LAYOUT = "set by the chart from the pod layout"
CONFIDENTIAL = " (a secret)"

CHART_VALUE_OF: Mapping[str, str] = {
    "kafka_bootstrap": "kafka.bootstrapServers",
    "kafka_security_protocol": "kafka.securityProtocol",
    "kafka_sasl_mechanism": "kafka.sasl.mechanism",
    "kafka_sasl_username": "kafka.sasl.username (or kafka.sasl.users per part)",
    "kafka_sasl_password": "kafka.sasl.password or kafka.sasl.existingSecret" + CONFIDENTIAL,
    "kafka_ssl_cafile": "kafka.tls.existingSecret and caKey",
    "kafka_ssl_certfile": "kafka.tls.existingSecret and certKey",
    "kafka_ssl_keyfile": "kafka.tls.existingSecret and keyKey",
    "kafka_ssl_key_password": "kafka.tls.keyPasswordKey" + CONFIDENTIAL,
    "schema_registry_url": "schemaRegistry.url (empty: the chart runs its own)",
    "topic_prefix": "topics.prefix",
    "topic_replication_factor": "kafka.topicReplicationFactor",
    "model_signing_key": "signing.key or signing.existingSecret" + CONFIDENTIAL,
    "model_signing_key_id": "signing.keyId",
    "pseudonymisation_key": "pseudonymisation.key or pseudonymisation.existingSecret"
    + CONFIDENTIAL,
    "cache_dir": POD_LAYOUT,
    "data_dir": POD_LAYOUT,
    "maven_repository": EMBEDDED_BROKER,
    "kafka_heap": EMBEDDED_BROKER,
    "kafka_start_timeout_s": EMBEDDED_BROKER,
    "serve_port": "serve.port",
    "log_level": "logLevel",
}
"""Each setting the chart sets itself, and the value of the chart's that sets it."""

PLACED_ELSEWHERE = "placed elsewhere"
"""The ``$comment`` that marks a refusal (the values reference leaves them out)."""


def _refusal(message: str) -> dict[str, Any]:
    return {"$comment": PLACED_ELSEWHERE, "const": message, "not": {"const": message}}


def refusals(secret_settings: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``config``'s properties for the settings that go elsewhere, by name."""
    found = {
        name: _refusal(f"not set in config: {where}" if where in (EMBEDDED_BROKER, POD_LAYOUT)
                       else f"not set in config: set {where}")
        for name, where in CHART_VALUE_OF.items()
    }  # fmt: skip
    for name in secret_settings:
        found[name] = _refusal(
            f"not set in config (a ConfigMap): a secret, set secretConfig.values.{name}"
        )
    return dict(sorted(found.items()))


def is_refusal(schema: Mapping[str, Any]) -> bool:
    """Whether ``schema`` (a property of ``config``) is one of :func:`refusals`."""
    return schema.get("$comment") == PLACED_ELSEWHERE
