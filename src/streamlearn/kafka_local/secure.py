"""The embedded broker's secure mode: SASL_SSL with SCRAM-SHA-512, for development and tests.

``streamlearn kafka start --secure`` makes, once per data directory (in ``secure/``,
readable by its owner only):

- a certificate authority (``ca.pem``: what clients trust) and the broker's certificate for
  ``localhost`` and the broker's address, signed by it (``broker.pem``: key and chain, the
  PEM key store Kafka reads);
- SCRAM-SHA-512 users, written into the cluster's metadata when its storage is formatted:
  ``admin`` (the broker's own inter-broker user) and ``streamlearn`` (the clients'),
  each with a random password;
- ``client.yaml``: the settings a streamlearn process needs to connect as ``streamlearn``
  (``STREAMLEARN_CONFIG_FILE=<path>``), so passwords stay in files, never on a command
  line or in the environment of every process.

The KRaft controller listener stays PLAINTEXT on the loopback interface: SCRAM credentials
live in the metadata the controller serves, so it cannot authenticate with them, and a
single-node development broker has no other controller to talk to.

With ACLs (``kafka start --secure --acls``) the broker also runs Kafka's
``StandardAuthorizer`` and the material gains a SCRAM user per part of streamlearn
(``streamlearn-<part>``, with ``client-<part>.yaml`` beside ``client.yaml``). Super users:
``admin`` (the broker's own), ``streamlearn`` (the operator's: ``topics apply``,
``acls apply``) and ``ANONYMOUS``, the principal of the PLAINTEXT controller listener, on
which the broker registers with its controller (it needs ``CLUSTER_ACTION``; the listener
is bound to the loopback interface). Every other principal gets only what ACLs allow.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from streamlearn.kafka_local.exceptions import EmbeddedKafkaError

MECHANISM = "SCRAM-SHA-512"
BROKER_USER = "admin"
CLIENT_USER = "streamlearn"
PART_USER_PREFIX = "streamlearn-"
"""SCRAM user of part P with ACLs: ``streamlearn-P`` (``acls plan``'s default principal)."""
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
CONTROLLER_PRINCIPAL = "User:ANONYMOUS"
"""The principal of the PLAINTEXT controller listener."""
VALID_DAYS = 825  # what browsers and most TLS stacks still accept for a leaf certificate


@dataclass(frozen=True)
class SecureMaterial:
    """The files and users of one secure data directory."""

    directory: Path
    passwords: dict[str, str]
    authorizer: bool = False
    """Kafka's StandardAuthorizer is on: principals get what ACLs allow (super users all)."""

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def broker_pem_path(self) -> Path:
        return self.directory / "broker.pem"

    @property
    def client_settings_path(self) -> Path:
        return self.directory / "client.yaml"

    def part_settings_path(self, part: str) -> Path:
        """The client settings of part ``part``'s own user (with ACLs)."""
        return self.directory / f"client-{part}.yaml"

    def password(self, user: str) -> str:
        return self.passwords[user]

    def client_config(self, user: str = CLIENT_USER) -> dict[str, str]:
        """confluent-kafka (librdkafka) settings to connect as ``user``."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": self.password(user),
            "ssl.ca.location": str(self.ca_path),
        }

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that create the users."""
        args = []
        for user, password in sorted(self.passwords.items()):
            args += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
        return args


def _private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only (created so, never widened)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "streamlearn development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
    key_encipherment=False, data_encipherment=False, key_agreement=False,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def _certificates(host: str) -> tuple[bytes, bytes]:
    """(the CA's certificate, the broker's key + certificate + CA chain), as PEM."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # clocks of tests may lag
    until = now + dt.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("streamlearn development CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker = (
        x509.CertificateBuilder()
        .subject_name(_name("streamlearn embedded Kafka"))
        .issuer_name(ca_name)
        .public_key(broker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    # Kafka's PEM key store: an unencrypted PKCS#8 key, then the chain (leaf first).
    key_pem = broker_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ca_pem, key_pem + broker.public_bytes(serialization.Encoding.PEM) + ca_pem


def ensure_secure_material(data_dir: Path, host: str) -> SecureMaterial:
    """The secure material of ``data_dir`` (the broker's), made on first use."""
    directory = data_dir / "secure"
    users_path = directory / "users.json"
    if users_path.exists():
        return SecureMaterial(directory, dict(json.loads(users_path.read_text())))
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_pem, broker_pem = _certificates(host)
    passwords = {user: secrets.token_urlsafe(24) for user in (BROKER_USER, CLIENT_USER)}
    material = SecureMaterial(directory, passwords)
    _private(material.ca_path, ca_pem)
    _private(material.broker_pem_path, broker_pem)
    _write_client_settings(material, material.client_settings_path, CLIENT_USER)
    _private(users_path, json.dumps(passwords).encode())  # last: its presence means done
    return material


def client_settings(material: SecureMaterial, user: str) -> dict[str, str]:
    """streamlearn's settings (field names) that connect as ``user``."""
    return {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": MECHANISM,
        "kafka_sasl_username": user,
        "kafka_sasl_password": material.password(user),
        "kafka_ssl_cafile": str(material.ca_path),
    }


def _write_client_settings(material: SecureMaterial, path: Path, user: str) -> None:
    _private(path, yaml.safe_dump(client_settings(material, user)).encode())


def existing_secure_material(data_dir: Path) -> SecureMaterial | None:
    """The secure material of ``data_dir`` if it has been made."""
    users_path = data_dir / "secure" / "users.json"
    if not users_path.exists():
        return None
    return SecureMaterial(
        users_path.parent,
        dict(json.loads(users_path.read_text())),
        authorizer=(users_path.parent / "authorizer").exists(),
    )


def enable_acls(material: SecureMaterial, parts: Sequence[str]) -> SecureMaterial:
    """``material`` with the authorizer on and a user per part (``streamlearn-<part>``).

    Users can only join the metadata when the storage is formatted: a data directory
    formatted without them is refused (its broker would have no such users). Once on, the
    authorizer stays on for the directory (its ACLs live in the cluster's metadata).
    """
    missing = [PART_USER_PREFIX + part for part in parts]
    missing = [user for user in missing if user not in material.passwords]
    if missing and (material.directory / "formatted").exists():
        raise EmbeddedKafkaError(
            f"{material.directory.parent} was formatted without the per-part users ACLs "
            "need; start the broker with --acls on another --data-dir"
        )
    passwords = {**material.passwords, **{user: secrets.token_urlsafe(24) for user in missing}}
    enabled = SecureMaterial(material.directory, passwords, authorizer=True)
    for part in parts:
        path = enabled.part_settings_path(part)
        if not path.exists():
            _write_client_settings(enabled, path, PART_USER_PREFIX + part)
    if missing:
        _private(material.directory / "users.json", json.dumps(passwords).encode())
    _private(material.directory / "authorizer", b"StandardAuthorizer\n")
    return enabled


def secure_properties(material: SecureMaterial) -> dict[str, str]:
    """``server.properties`` entries of the SASL_SSL listener (named ``SASL_SSL``)."""
    admin = material.password(BROKER_USER)
    return {
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{BROKER_USER}" password="{admin}";'
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(material.broker_pem_path),
        # The broker is its own inter-broker client: it must trust the CA too.
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(material.ca_path),
        "ssl.client.auth": "none",
        **(_authorizer_properties() if material.authorizer else {}),
    }


def _authorizer_properties() -> dict[str, str]:
    supers = [f"User:{BROKER_USER}", f"User:{CLIENT_USER}", CONTROLLER_PRINCIPAL]
    return {
        "authorizer.class.name": AUTHORIZER,
        "super.users": ";".join(supers),
        # Kafka's default, spelled out: a resource without ACLs is closed, not open.
        "allow.everyone.if.no.acl.found": "false",
    }
