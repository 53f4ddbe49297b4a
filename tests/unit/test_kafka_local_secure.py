"""The secure broker's material and configuration, without a broker."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from streamlearn.kafka_local import EmbeddedKafkaError, broker_material
from streamlearn.kafka_local.config import BrokerConfig, server_properties
from streamlearn.kafka_local.secure import (
    BROKER_USER,
    CLIENT_USER,
    ensure_secure_material,
    existing_secure_material,
)


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_material_is_made_once_private_and_names_the_broker(tmp_path: Path) -> None:
    assert existing_secure_material(tmp_path) is None
    material = ensure_secure_material(tmp_path, "127.0.0.1")
    again = ensure_secure_material(tmp_path, "127.0.0.1")
    assert again.passwords == material.passwords, "made once, then reused"
    assert existing_secure_material(tmp_path) == material
    assert set(material.passwords) == {BROKER_USER, CLIENT_USER}
    assert len(set(material.passwords.values())) == 2
    assert stat.S_IMODE(material.directory.stat().st_mode) == 0o700
    for path in material.directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    chain = x509.load_pem_x509_certificates(material.broker_pem_path.read_bytes())
    ca = x509.load_pem_x509_certificate(material.ca_path.read_bytes())
    leaf = chain[0]
    assert leaf.issuer == ca.subject
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert b"BEGIN PRIVATE KEY" in material.broker_pem_path.read_bytes(), "PKCS#8 for Kafka"
    client = yaml.safe_load(material.client_settings_path.read_text())
    assert client["kafka_security_protocol"] == "SASL_SSL"
    assert client["kafka_sasl_username"] == CLIENT_USER
    assert client["kafka_sasl_password"] == material.password(CLIENT_USER)
    assert BROKER_USER not in client.values(), "clients do not get the broker's user"


def test_secure_properties_replace_plaintext_and_keep_the_controller_local(
    tmp_path: Path,
) -> None:
    plain = _properties(server_properties(BrokerConfig(tmp_path, port=9092, controller_port=9093)))
    assert plain["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    material = ensure_secure_material(tmp_path, "127.0.0.1")
    config = BrokerConfig(tmp_path, port=9092, controller_port=9093, secure=material)
    props = _properties(server_properties(config))
    assert props["listeners"] == "SASL_SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:9092"
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "PLAINTEXT://" not in props["listeners"].split(",")[0]
    assert props["ssl.keystore.location"] == str(material.broker_pem_path)
    arguments = material.scram_arguments()
    assert arguments.count("--add-scram") == 2
    assert f"SCRAM-SHA-512=[name={CLIENT_USER},password={material.password(CLIENT_USER)}]" in (
        arguments
    )


def test_a_directory_formatted_plain_is_refused_before_any_material_is_made(
    tmp_path: Path,
) -> None:
    """A broker formatted without SCRAM users cannot gain them: asking for the secure mode
    there fails at once, naming the fix, and leaves the directory plain (material made
    first would turn every later plain start of it into a secure one, which fails too)."""
    log_dir = BrokerConfig(tmp_path).log_dir
    log_dir.mkdir(parents=True)
    (log_dir / "meta.properties").write_text("version=1\n")
    assert broker_material(tmp_path, secure=False, acls=False) is None
    for secure, acls in ((True, False), (False, True), (True, True)):
        with pytest.raises(EmbeddedKafkaError, match="--data-dir"):
            broker_material(tmp_path, secure=secure, acls=acls)
    assert existing_secure_material(tmp_path) is None


def test_a_secure_directory_stays_secure_and_gains_part_users_with_acls(tmp_path: Path) -> None:
    made = broker_material(tmp_path, secure=True, acls=False)
    assert made is not None
    assert not made.authorizer
    assert broker_material(tmp_path, secure=False, acls=False) == made, "stays secure"
    with_acls = broker_material(tmp_path, secure=False, acls=True)
    assert with_acls is not None
    assert with_acls.authorizer
    assert "streamlearn-learner" in with_acls.passwords
