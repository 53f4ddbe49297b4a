"""The command line's fatal errors as one line each: what happened and what to check."""

from __future__ import annotations

import errno
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka import KafkaError, KafkaException

from streamlearn.exceptions import StreamlearnError
from streamlearn.kafka_clients import SASL_HINT, login_failure
from streamlearn.serde import RegistryUnavailableError

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

BROKER_HINT = (
    "is the broker running, and STREAMLEARN_KAFKA_BOOTSTRAP (or --bootstrap-servers) its address?"
)
ACL_HINT = (
    "the broker answered and refused this Kafka user: it lacks the ACLs this command needs; "
    "`streamlearn acls plan` lists each part's, and `topics apply` runs as the ops user"
)
AUTHORIZATION_FAILURES = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.DELEGATION_TOKEN_AUTHORIZATION_FAILED,
    }
)
S3_HINT = (
    "credentials come from AWS's chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE "
    "or an instance role; --s3-endpoint-url (AWS_ENDPOINT_URL_S3) for an S3-compatible server"
)


REGISTRY_HINT = (
    "is a schema registry running there? `streamlearn registry serve` runs one (it rebuilds "
    "from the broker's _schemas; `up` stops the one it started when it stops); "
    "STREAMLEARN_SCHEMA_REGISTRY_URL names another"
)


def one_line_error(exc: BaseException) -> str | None:
    """The line ``streamlearn: error:`` is followed by for ``exc``; None for an error that
    keeps its traceback (a bug)."""
    if isinstance(exc, RegistryUnavailableError) and " unreachable: " in str(exc):
        return f"{exc} ({REGISTRY_HINT})"
    if isinstance(exc, StreamlearnError):
        return str(exc)
    # A broker that is not there (or not at that address) reaches the commands as the
    # client's exception or as an answer that never came.
    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is not None and error.code() == KafkaError._INVALID_ARG:
            return f"Kafka: {error.str()} ({_refused_setting(error.str())})"
        if error is not None and error.code() in AUTHORIZATION_FAILURES:
            return f"Kafka: {error.str()} ({ACL_HINT})"
        return _login_refused() or f"Kafka: {exc if error is None else error.str()} ({BROKER_HINT})"
    if isinstance(exc, TimeoutError):
        return _login_refused() or (
            f"timed out waiting for an answer (from Kafka, usually: {BROKER_HINT})"
        )
    return (
        _object_store_refusal(exc)
        or _port_in_use(exc)
        or _unusable_path(exc)
        or _unresolvable_host(exc)
    )


_CLIENT_SETTINGS = {
    "ssl.ca.location": "STREAMLEARN_KAFKA_SSL_CAFILE: a file of PEM certificates",
    "ssl.certificate.location": "STREAMLEARN_KAFKA_SSL_CERTFILE: a PEM certificate file",
    "ssl.key.location": (
        "STREAMLEARN_KAFKA_SSL_KEYFILE: a PEM key file, and STREAMLEARN_KAFKA_SSL_KEY_PASSWORD "
        "when the key is encrypted (a wrong or missing password fails the same way)"
    ),
    "sasl.username": "STREAMLEARN_KAFKA_SASL_USERNAME and STREAMLEARN_KAFKA_SASL_PASSWORD",
}


def _login_refused() -> str | None:
    """A broker that answers but refuses the login (a wrong SASL password) fails a call as
    "Broker transport failure", as one that is not there does: asked once more, to tell."""
    failure = login_failure()
    return None if failure is None else f"Kafka: authentication failed: {failure} ({SASL_HINT})"


def _refused_setting(message: str) -> str:
    """Which setting a Kafka client's refusal of its configuration is about."""
    for option, setting in _CLIENT_SETTINGS.items():
        if option in message:
            return f"check {setting}"
    return "a Kafka client setting was refused: check the STREAMLEARN_KAFKA_* settings"


_PATH_HINTS = {
    errno.EEXIST: "a directory is expected there, not a file",
    errno.ENOTDIR: "a directory is expected there, not a file",
    errno.EISDIR: "a file is expected there, not a directory",
    errno.EACCES: "this user may not write there",
    errno.EROFS: "that file system is read-only",
    errno.ENOSPC: "the disk is full",
    errno.ENOENT: "a directory on the way is missing",
}


def _unusable_path(exc: BaseException) -> str | None:
    """A file or directory the command cannot use as it must: a data directory that is a
    file, one it may not write, a full disk."""
    if not isinstance(exc, OSError) or exc.filename is None or exc.errno not in _PATH_HINTS:
        return None
    if exc.errno == errno.ENOTDIR:
        # The path named is under the file in the way (`afile/kafka/kafka.pid`): name it.
        in_the_way = next((p for p in Path(str(exc.filename)).parents if p.is_file()), None)
        if in_the_way is not None:
            return (
                f"{exc.strerror}: {in_the_way} is a file, where a directory is expected "
                f"(for {exc.filename})"
            )
    return f"{exc.strerror}: {exc.filename} ({_PATH_HINTS[exc.errno]})"


def _unresolvable_host(exc: BaseException) -> str | None:
    """An interface to listen on, or a server to reach, whose name or address does not
    resolve (``--host 999.1.1.1``)."""
    if not isinstance(exc, socket.gaierror):
        return None
    return (
        f"{exc.strerror}: a host name or address that does not resolve "
        "(--host, or an address setting)"
    )


def _port_in_use(exc: BaseException) -> str | None:
    """A server whose address another process holds."""
    if not isinstance(exc, OSError) or exc.errno != errno.EADDRINUSE:
        return None
    # asyncio's and uvloop's own words (and listen_errors.bind_error's) name the address.
    return f"{exc.strerror or exc} (another process listens there: stop it, or choose another port)"


def _object_store_refusal(exc: BaseException) -> str | None:
    """An S3 refusal: botocore's own error, or the OSError s3fs makes of the server's
    answer (``NoSuchBucket``, ``AccessDenied``)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - s3fs (a dependency) brings botocore
        return None
    if isinstance(exc, BotoCoreError):
        # No credentials, no endpoint, a bad region: what to set.
        return f"S3: {_without_credentials(str(exc))} ({S3_HINT})"
    if isinstance(exc, ClientError):
        return _client_refusal(exc)
    if isinstance(exc, OSError) and isinstance(exc.__cause__, BotoCoreError):
        return f"S3: {_without_credentials(str(exc.__cause__))} ({S3_HINT})"
    if isinstance(exc, OSError) and isinstance(exc.__cause__, ClientError):
        return _client_refusal(exc.__cause__)
    return None


S3_KEY_REFUSALS = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
     "ExpiredToken", "AllAccessDisabled"}
)  # fmt: skip
"""Codes of a server that refused the request's key: a HEAD (how a bucket is checked) has
no body, so a wrong key or secret is a bare ``(403) ... HeadBucket operation: Forbidden``."""

S3_KEY_HINT = (
    "the server refused this key: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
    "AWS_PROFILE, AWS_SESSION_TOKEN), and the key's permissions on the bucket (list, read; "
    "write and delete for archive run)"
)


def _client_refusal(exc: ClientError) -> str:
    """The server's answer, and what to check when it refused the credentials."""
    line = f"S3: {_without_credentials(str(exc))}"
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return f"{line} ({S3_KEY_HINT})" if code in S3_KEY_REFUSALS else line


_USER_INFO = re.compile(r"[^\s\"'/@:]+:[^\s\"'/@]+@")
"""``key:secret@`` of a URL (``s3://key:secret@bucket``), which botocore quotes back as
part of a bucket name it refuses."""


def _without_credentials(text: str) -> str:
    return _USER_INFO.sub("***@", text)
