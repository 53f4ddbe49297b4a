"""The HTTP servers' TLS settings: one context for all, TLS 1.2 or newer, key files
refused when others may read them, errors that name files and never their contents."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from streamlearn.exceptions import ConfigurationError
from streamlearn.http_tls import client_ssl_context, scheme, server_ssl_context
from streamlearn.kafka_local.secure import ensure_secure_material
from streamlearn.settings import Settings


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a development CA, a key + certificate chain for 127.0.0.1 it signed), mode 0600."""
    made = ensure_secure_material(tmp_path_factory.mktemp("tls"), "127.0.0.1")
    return made.ca_path, made.broker_pem_path


def test_no_certificate_means_plain_http() -> None:
    assert server_ssl_context(Settings()) is None
    assert scheme(Settings()) == "http"
    with pytest.raises(ConfigurationError, match="without STREAMLEARN_HTTP_TLS_CERTFILE"):
        server_ssl_context(Settings(http_tls_keyfile=Path("/etc/hostname")))


def test_a_certificate_makes_one_tls_1_2_plus_context(material: tuple[Path, Path]) -> None:
    _, chain = material
    settings = Settings(http_tls_certfile=chain)  # the key is in the same file
    context = server_ssl_context(settings)
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert scheme(settings) == "https"
    separate = Settings(http_tls_certfile=chain, http_tls_keyfile=chain)
    assert server_ssl_context(separate) is not None


def test_a_key_others_may_read_is_refused(material: tuple[Path, Path], tmp_path: Path) -> None:
    _, chain = material
    exposed = tmp_path / "server.pem"
    exposed.write_bytes(chain.read_bytes())
    exposed.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600") as refused:
        server_ssl_context(Settings(http_tls_certfile=exposed))
    assert "PRIVATE KEY" not in str(refused.value)
    exposed.chmod(0o640)  # shared with the server's group: fine
    assert server_ssl_context(Settings(http_tls_certfile=exposed)) is not None
    with pytest.raises(ConfigurationError, match="STREAMLEARN_HTTP_TLS_KEYFILE"):
        server_ssl_context(
            Settings(http_tls_certfile=exposed, http_tls_keyfile=tmp_path / "missing.pem")
        )


def test_a_file_that_is_not_a_key_and_chain_is_named_not_shown(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n")
    broken.chmod(0o600)
    with pytest.raises(ConfigurationError, match="not a PEM certificate chain") as refused:
        server_ssl_context(Settings(http_tls_certfile=broken))
    assert str(broken) in str(refused.value)
    assert "c2VjcmV0" not in str(refused.value)


def test_clients_trust_the_configured_ca(material: tuple[Path, Path], tmp_path: Path) -> None:
    ca, _ = material
    context = client_ssl_context(Settings(http_tls_cafile=ca))
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert any(
        "streamlearn development CA" in str(cert.get("subject")) for cert in context.get_ca_certs()
    )
    with pytest.raises(ConfigurationError, match="STREAMLEARN_HTTP_TLS_CAFILE"):
        client_ssl_context(Settings(http_tls_cafile=tmp_path / "missing.pem"))


def test_an_encrypted_key_is_refused_at_once_naming_the_setting(
    material: tuple[Path, Path], tmp_path: Path
) -> None:
    """Found by a new user: an encrypted key made OpenSSL prompt "Enter PEM pass phrase:"
    on the terminal, blocking the start, and without a terminal the error was "[Errno 22]
    Invalid argument"."""
    from cryptography.hazmat.primitives import serialization

    _, chain = material
    pem = chain.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    certificates = pem[pem.index(b"-----BEGIN CERTIFICATE-----") :]
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"a-pass-phrase"),
        )
        + certificates
    )
    encrypted.chmod(0o600)
    with pytest.raises(ConfigurationError, match="encrypted") as refused:
        server_ssl_context(Settings(http_tls_certfile=encrypted))
    assert "STREAMLEARN_HTTP_TLS_CERTFILE" in str(refused.value)
    assert "openssl pkey" in str(refused.value)


def test_a_certificate_without_its_key_asks_for_the_key_file(
    material: tuple[Path, Path], tmp_path: Path
) -> None:
    """Found by a new user: a certificate alone (mode 0644, as certificates are) was refused
    as "readable or writable by others: make it 0600"; made 0600, as "not a PEM certificate
    chain and its private key", naming the certificate's setting twice and not the key's."""
    _, chain = material
    text = chain.read_text()
    certificate_only = tmp_path / "server.crt"
    certificate_only.write_text(text[text.index("-----BEGIN CERTIFICATE-----") :])
    certificate_only.chmod(0o644)
    with pytest.raises(ConfigurationError) as refused:
        server_ssl_context(Settings(http_tls_certfile=certificate_only))
    assert str(refused.value) == (
        f"STREAMLEARN_HTTP_TLS_CERTFILE={certificate_only} holds no private key: set "
        "STREAMLEARN_HTTP_TLS_KEYFILE to the key's file (owner-only)"
    )
