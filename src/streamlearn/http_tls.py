"""TLS for streamlearn's HTTP servers and the CA its own HTTP clients trust.

One place builds the server side for every HTTP server (collector, prediction workers,
registry, dashboard): with ``STREAMLEARN_HTTP_TLS_CERTFILE`` set, each serves HTTPS only
(TLS 1.2 or newer) with that certificate chain and ``STREAMLEARN_HTTP_TLS_KEYFILE``'s key;
unset, plain HTTP (development, or behind a TLS-terminating proxy). A key file others may
read is refused, as ssh and PostgreSQL refuse theirs: a key that leaked is a key to replace.
``STREAMLEARN_HTTP_TLS_CAFILE`` is what streamlearn's own clients trust for these servers
(a private CA); unset, the system's trust store.
"""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

from streamlearn.exceptions import ConfigurationError
from streamlearn.settings import Settings

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
NOT_PRIVATE = stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO
"""Mode bits a secret file may not have: group write, or anything for others (0600 and
0640, a key shared with the server's group, are fine)."""


def check_private_file(path: Path, setting: str) -> None:
    """Refuse a secret file that does not exist or that others may read or change."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigurationError(f"{setting}={path}: {exc.strerror}") from exc
    if stat.S_ISDIR(mode):
        raise ConfigurationError(f"{setting}={path}: a directory, not a file")
    if mode & NOT_PRIVATE:
        raise ConfigurationError(
            f"{setting}={path} is readable or writable by others (mode "
            f"{stat.S_IMODE(mode):04o}): make it 0600 (chmod 600 {path})"
        )


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context every HTTP server serves with, or None for plain HTTP."""
    certfile, keyfile = settings.http_tls_certfile, settings.http_tls_keyfile
    if certfile is None:
        if keyfile is not None:
            raise ConfigurationError(
                "STREAMLEARN_HTTP_TLS_KEYFILE is set without STREAMLEARN_HTTP_TLS_CERTFILE"
            )
        return None
    key_setting = "STREAMLEARN_HTTP_TLS_KEYFILE" if keyfile else "STREAMLEARN_HTTP_TLS_CERTFILE"
    if keyfile is None and not _holds_a_key(certfile):
        # A certificate alone is public (0644 is fine): it is the key that is missing.
        raise ConfigurationError(
            f"STREAMLEARN_HTTP_TLS_CERTFILE={certfile} holds no private key: set "
            "STREAMLEARN_HTTP_TLS_KEYFILE to the key's file (owner-only)"
        )
    check_private_file(keyfile or certfile, key_setting)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MINIMUM_VERSION
    try:
        # A password callback, so that an encrypted key fails here instead of OpenSSL
        # prompting for a pass phrase on the terminal (and blocking the start).
        context.load_cert_chain(certfile, keyfile, password=_encrypted_key)
    except _EncryptedKeyError:
        raise ConfigurationError(
            f"{key_setting}={keyfile or certfile}: the private key is encrypted; the HTTP "
            "servers take an unencrypted key in an owner-only file (decrypt it with "
            "`openssl pkey -in KEY -out KEY.plain`, then chmod 600)"
        ) from None
    except (OSError, ssl.SSLError) as exc:
        # The message names the files, never their contents.
        raise ConfigurationError(
            f"STREAMLEARN_HTTP_TLS_CERTFILE={certfile} / {key_setting}: not a PEM certificate "
            f"chain and its private key ({exc})"
        ) from exc
    return context


def _holds_a_key(path: Path) -> bool:
    """Whether a PEM file holds a private key (any kind: ``-----BEGIN ... PRIVATE KEY``);
    an unreadable file is left to the checks after (which name why)."""
    try:
        text = path.read_bytes()
    except OSError:
        return True
    return b"PRIVATE KEY-----" in text


class _EncryptedKeyError(Exception):
    """The key file asks for a pass phrase."""


def _encrypted_key() -> bytes:
    raise _EncryptedKeyError


def client_ssl_context(settings: Settings) -> ssl.SSLContext:
    """What streamlearn's HTTP clients verify servers with: the configured CA, else the
    system's (hostnames checked, TLS 1.2 or newer). Harmless for http:// URLs."""
    cafile = settings.http_tls_cafile
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"STREAMLEARN_HTTP_TLS_CAFILE={cafile}: {exc}") from exc
    context.minimum_version = MINIMUM_VERSION
    return context


def scheme(settings: Settings) -> str:
    """``https`` when the servers serve TLS, else ``http`` (for the URLs they announce)."""
    return "https" if settings.http_tls_certfile is not None else "http"
