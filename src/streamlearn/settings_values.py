"""What a setting's value must be (the checks :class:`~streamlearn.settings.Settings`
runs on URLs, Kafka addresses, origins and credentials), and how ``config show`` prints one."""

from __future__ import annotations

import json
import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SecretStr,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


@dataclass(frozen=True)
class JsonPattern:
    """A setting's check as a JSON-schema ``pattern`` (RE2: Helm validates the chart's values
    with Go's regexp), so ``helm install`` refuses what the setting's validator would refuse
    at start; the validator stays the rule, the pattern at most as strict.

    ``refused=True`` states it as ``not: {pattern}`` (what a value must not match), for
    secrets: Helm's message for a failed ``pattern`` quotes the value, for a failed ``not``
    it does not."""

    pattern: str
    refused: bool = False
    min_length: int | None = None
    """Also a ``minLength``: Helm says what a short value lacks (``minLength: got 8, want
    16``) without quoting it, where a refused pattern says only ``'not' failed``."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema: dict[str, Any] = handler(core_schema)
        if self.min_length is not None:
            schema["minLength"] = self.min_length
        if self.refused:
            schema["not"] = {"pattern": self.pattern}
        else:
            schema["pattern"] = self.pattern
        return schema


_PORT = r"0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
"""1 to 65535, as text."""
_KAFKA_ITEM = rf"\s*([A-Za-z_]+://)?(\[[0-9A-Fa-f:.]+\]|[^\s:,/\[\]]+):{_PORT}\s*"


def http_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host (and a valid port), and no user or
    password in it, else why not."""
    try:
        authority = urlsplit(url).netloc
    except ValueError:
        authority = ""  # refused below, saying why
    if "@" in authority:
        # Never echoed: what is before the '@' may be a password. A URL is configuration
        # (a ConfigMap, `config show`, the notes); a password is a secret setting.
        raise ValueError(
            "holds a user or password before '@': give them as "
            "STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH (user:password, a secret), not in the URL"
        )
    problem = (
        f"{url!r} is not an http:// or https:// URL with a host and, if any, a port of 1 to "
        "65535, e.g. http://127.0.0.1:8081"
    )
    parts = _web_address(url, problem)
    if parts is None:
        raise ValueError(problem)
    return url


def _web_address(text: str, problem: str) -> SplitResult | None:
    """``text`` split, when it is http(s) with a host and a valid port if any (None when
    not; ``problem`` raised when it cannot be split: an unclosed IPv6 bracket, a port that
    is not a number)."""
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ValueError(problem) from None
    return parts if parts.scheme in ("http", "https") and parts.hostname and port_ok else None


_KAFKA_ADDRESS = re.compile(
    r"(?:[A-Za-z_]+://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:,/\[\]]+):(?P<port>\d+)"
)


def kafka_addresses(addresses: str) -> str:
    """``addresses`` if each comma-separated item is ``[protocol://]host:port`` with a port
    of 1 to 65535, as Kafka's clients take them; else why not (they were taken, and every
    command then waited for a broker it could never reach)."""
    for address in addresses.split(","):
        match = _KAFKA_ADDRESS.fullmatch(address.strip())
        if match is None or not 0 < int(match["port"]) < 65536:
            raise ValueError(
                f"{address.strip()!r} is not host:port (a port of 1 to 65535); "
                "comma-separated for several brokers, e.g. 127.0.0.1:9092"
            )
    return addresses


def port_range(text: str) -> str:
    """``text`` if it is ``LOW-HIGH``, two ports of 1024 to 65535 with LOW <= HIGH; else
    why not."""
    problem = f"{text!r} is not LOW-HIGH, two ports of 1024 to 65535, e.g. 22700-22799"
    low, sep, high = text.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError(problem)
    bounds = int(low), int(high)
    if not 1024 <= bounds[0] <= bounds[1] <= 65535:
        raise ValueError(problem)
    return text


def port_bounds(text: str | None) -> tuple[int, int] | None:
    """A :data:`PortRange` setting's (LOW, HIGH), or None when unset."""
    if text is None:
        return None
    low, _, high = text.partition("-")
    return int(low), int(high)


PortRange = Annotated[str, AfterValidator(port_range), JsonPattern(r"^\s*[0-9]+\s*-\s*[0-9]+\s*$")]

KafkaAddresses = Annotated[
    str, AfterValidator(kafka_addresses), JsonPattern(rf"^{_KAFKA_ITEM}(,{_KAFKA_ITEM})*$")
]
# The scheme in any case: urlsplit (the validator's) lowercases it.
HttpUrl = Annotated[
    str,
    AfterValidator(http_url),
    JsonPattern(r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@]+([/?#][^\s]*)?$"),
]


class PromotionGate(BaseModel):
    """A model's promotion gate, as ``STREAMLEARN_MODEL_PROMOTION`` gives it (the spec's
    ``promotion_margin``, ``promotion_window``, ``promotion_judge``,
    ``promotion_after_examples`` and ``promotion_auc_margin``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    margin: float = Field(ge=0, strict=True)  # strict: `true` is not a margin of 1.0
    """A version is promoted when its held-out log loss is at most the promoted one's plus
    this."""
    window: int = Field(default=2000, ge=1)
    """Examples it is judged on."""
    judge: Literal["trainee", "candidate"] = "trainee"
    """"trainee": the model being trained since the last promotion; "candidate": each
    version itself, frozen when cut and published once judged."""
    after_examples: int = Field(default=0, ge=0)
    """Versions are judged once the promoted one has learned this many examples (before,
    each is promoted as it is cut)."""
    auc_margin: float | None = Field(default=None, ge=-1, le=1, strict=True)
    """With judge "candidate": its AUC over the window must also be at least the promoted
    one's less this (none: log loss alone decides)."""

    @model_validator(mode="after")
    def _auc_needs_candidate(self) -> PromotionGate:
        if self.auc_margin is not None and self.judge != "candidate":
            raise ValueError(
                'auc_margin needs judge "candidate" (the trainee judge keeps losses only)'
            )
        return self


CREDENTIAL_MIN_CHARS = 16
"""The shortest API token or write key taken: a signing key's floor (a one-character token
opened the prediction API to a guess)."""
MAKE_A_CREDENTIAL = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"


def credential_problem(value: str) -> str | None:
    """Why ``value`` is no token or write key a client can send and no one can guess; None
    when it is one (an empty one let ``Authorization: Bearer`` with nothing after it
    through). Never says the value."""
    if len(value) < CREDENTIAL_MIN_CHARS or any(c.isspace() for c in value):
        return (
            f"a token or write key has at least {CREDENTIAL_MIN_CHARS} characters and no "
            f"whitespace (make one: `{MAKE_A_CREDENTIAL}`)"
        )
    return None


def credential(secret: SecretStr) -> SecretStr:
    """A token or write key (:func:`credential_problem`)."""
    problem = credential_problem(secret.get_secret_value())
    if problem is not None:
        raise ValueError(problem)
    return secret


def user_password(secret: SecretStr) -> SecretStr:
    """A ``user:password`` pair (HTTP basic auth): a user without whitespace, a colon, a
    password that is not empty, nothing around them (``alice:`` let an empty password in,
    ``nocolon`` locked every writer out, and a client given one crashed)."""
    value = secret.get_secret_value()
    user, colon, password = value.partition(":")
    if (
        not colon
        or not user
        or not password
        or any(c.isspace() for c in user)
        or value != value.strip()
    ):
        raise ValueError(
            "not user:password (a user without whitespace, a colon, a password that is not "
            "empty, nothing before or after)"
        )
    return secret


UserPassword = Annotated[
    SecretStr,
    AfterValidator(user_password),
    JsonPattern(r"^[^:]*$|^:|^[^:]*:$|^\s|\s$|^[^:]*\s[^:]*:", refused=True),
]


SIGNING_KEY_MIN_CHARS = 16
ROTATING_AWAY: ContextVar[bool] = ContextVar("rotating_away", default=False)
"""Set by ``keys rotate`` only: it reads a current key that is too short in order to
replace it (the key becomes the previous one, which verifies until its grace ends)."""


def signing_key(secret: SecretStr) -> SecretStr:
    """A key that signs model snapshots: the HMAC between ``model.state`` and the workers'
    unpickler, so not a guessable one (a single character or ``" "`` was taken), and without
    whitespace around it (a key read from a file with its newline on one side only would
    verify nothing the other side signed)."""
    if ROTATING_AWAY.get():
        return secret
    return _hmac_key(secret, "signing key", "; to replace a shorter one, `streamlearn keys rotate`")


def pseudonymisation_key(secret: SecretStr) -> SecretStr:
    """The HMAC key of IP pseudonyms: not a guessable one either (``x`` was taken, and
    trying every short key turns each pseudonym in events.clean back into its IP)."""
    return _hmac_key(secret, "pseudonymisation key", "")


def _hmac_key(secret: SecretStr, what: str, hint: str) -> SecretStr:
    """``secret`` if it is an HMAC key of at least :data:`SIGNING_KEY_MIN_CHARS` characters
    without whitespace around it (never says the value)."""
    value = secret.get_secret_value()
    if len(value.strip()) < SIGNING_KEY_MIN_CHARS:
        raise ValueError(
            f"a {what} has at least {SIGNING_KEY_MIN_CHARS} characters (make one: "
            f"`openssl rand -base64 48`{hint})"
        )
    if value != value.strip():
        raise ValueError(f"a {what} has no whitespace before or after it")
    return secret


def app_id(app: str) -> str:
    if not app.strip():
        raise ValueError("a write key's app id is not empty")
    return app


Credential = Annotated[
    SecretStr,
    AfterValidator(credential),
    JsonPattern(r"\s", refused=True, min_length=CREDENTIAL_MIN_CHARS),
]
SigningKey = Annotated[
    SecretStr, AfterValidator(signing_key), JsonPattern(r"^\s|\s$", refused=True)
]
PseudonymisationKey = Annotated[
    SecretStr, AfterValidator(pseudonymisation_key), JsonPattern(r"^\s|\s$", refused=True)
]


def origin(origin: str) -> str:
    """``origin`` if it is one as a browser sends it (``scheme://host[:port]``: no path, no
    trailing slash, which no ``Origin`` header ever matches), else why not."""
    problem = (
        f"{origin!r} is not an origin as browsers send it: scheme://host[:port], "
        "e.g. https://shop.example (no path, no trailing slash)"
    )
    if "*" in origin:
        raise ValueError(
            f"{origin!r} has a wildcard, and origins are matched exactly: list each origin "
            "whose pages post events (e.g. https://shop.example)"
        )
    parts = _web_address(origin, problem)
    if parts is None or f"{parts.scheme}://{parts.netloc}" != origin:
        raise ValueError(problem)
    if parts.port == DEFAULT_PORTS[parts.scheme]:
        raise ValueError(
            f"{origin!r} names its scheme's default port, which browsers leave out of the "
            f"Origin header: write {origin.rsplit(':', 1)[0]}"
        )
    port = "" if parts.port is None else f":{parts.port}"
    written = parts.netloc[: len(parts.netloc) - len(port)]
    sent = written.lower() if written.startswith("[") else _host_as_sent(written)
    if sent != written:
        raise ValueError(
            f"{origin!r} is not how browsers send its host (lower case, a name in other "
            f"scripts in punycode): write {parts.scheme}://{sent}{port}"
        )
    return origin


def _host_as_sent(host: str) -> str:
    """``host`` as a browser's Origin header has it: lower case, punycode."""
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return host.lower()


DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = Annotated[str, AfterValidator(origin), JsonPattern(r"^https?://[a-z0-9._~%:\[\]-]+$")]


def shown_setting(value: object) -> str:
    """A setting's value as ``config show`` prints it: secrets masked, lists and maps as
    the JSON the variables take (not Python's ``[SecretStr('**********')]``)."""

    def plain(item: object) -> object:
        if isinstance(item, SecretStr):
            return str(item)  # pydantic's mask
        if isinstance(item, list | tuple):
            return [plain(i) for i in item]
        if isinstance(item, dict):
            # Masked keys are numbered, or two secret keys would show as one entry.
            return {
                f"{plain(k)} ({n})" if isinstance(k, SecretStr) else str(plain(k)): plain(v)
                for n, (k, v) in enumerate(item.items(), 1)
            }
        if isinstance(item, BaseModel):  # a gate: its fields, as the variable takes them
            return item.model_dump(mode="json")
        return item

    if isinstance(value, list | tuple | dict):
        return json.dumps(plain(value))
    return str(plain(value))
