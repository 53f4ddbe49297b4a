"""SASL mechanisms a platform engineer may give (kafka.sasl.mechanism, or
STREAMLEARN_KAFKA_SASL_MECHANISM): only those every client of streamlearn can log in with.
OAUTHBEARER and GSSAPI were taken by the settings and the values schema, and every part then
failed at its first connection (aiokafka: no token provider; no gssapi library). And
credentials the security protocol leaves unused (kafka.sasl with PLAINTEXT or SSL,
kafka.tls with a protocol without TLS) rendered without a word."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streamlearn.settings import Settings
from tests.unit.test_helm_chart import CHART, _helm

pytestmark = pytest.mark.unit

SASL = (
    "kafka.securityProtocol=SASL_SSL",
    "kafka.sasl.username=streamlearn",
    "kafka.sasl.password=a-password-of-the-cluster",
)


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "GSSAPI"])
def test_a_mechanism_the_clients_cannot_log_in_with_is_refused_by_the_settings(
    mechanism: str,
) -> None:
    with pytest.raises(ValidationError, match="kafka_sasl_mechanism"):
        Settings(kafka_sasl_mechanism=mechanism)  # type: ignore[arg-type]


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "GSSAPI"])
def test_a_mechanism_the_clients_cannot_log_in_with_is_refused_by_helm(mechanism: str) -> None:
    args = ["template", "rel", str(CHART), "--kube-version", "1.30.0"]
    for item in (*SASL, f"kafka.sasl.mechanism={mechanism}"):
        args += ["--set", item]
    result = _helm(*args, check=False)
    assert result.returncode != 0
    assert "/kafka/sasl/mechanism" in result.stderr, result.stderr


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_the_mechanisms_the_clients_log_in_with_are_taken(mechanism: str) -> None:
    assert Settings(kafka_sasl_mechanism=mechanism).kafka_sasl_mechanism == mechanism  # type: ignore[arg-type]
    args = ["template", "rel", str(CHART), "--kube-version", "1.30.0"]
    for item in (*SASL, f"kafka.sasl.mechanism={mechanism}"):
        args += ["--set", item]
    _helm(*args)


@pytest.mark.parametrize(
    ("protocol", "given", "complaint"),
    [
        # The SASL_SSL example of docs/deploy.md with the protocol left at its default: the
        # parts spoke plain Kafka to the brokers' SASL_SSL port, the credentials unused.
        ("PLAINTEXT", ("kafka.sasl.username=streamlearn",), "kafka.sasl"),
        ("SSL", ("kafka.sasl.password=a-password-of-the-cluster",), "kafka.sasl"),
        (
            "PLAINTEXT",
            ("kafka.sasl.users.serve.username=s", "kafka.sasl.users.serve.existingSecret=u"),
            "kafka.sasl",
        ),
        (
            "SASL_PLAINTEXT",
            (*SASL[1:], "kafka.sasl.mechanism=SCRAM-SHA-512", "kafka.tls.existingSecret=kafka-ca"),
            "kafka.tls",
        ),
        ("PLAINTEXT", ("kafka.tls.existingSecret=kafka-ca",), "kafka.tls"),
    ],
)
def test_kafka_credentials_the_security_protocol_would_leave_unused_are_refused(
    protocol: str, given: tuple[str, ...], complaint: str
) -> None:
    args = ["template", "rel", str(CHART), "--kube-version", "1.30.0"]
    for item in (f"kafka.securityProtocol={protocol}", *given):
        args += ["--set", item]
    result = _helm(*args, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr
    assert protocol in result.stderr, result.stderr
