"""The collector's write keys: which app a post comes from, and posts without one refused.

Configured as ``{"key": "app id"}`` (``STREAMLEARN_COLLECTOR_WRITE_KEYS`` and
``STREAMLEARN_COLLECTOR_WRITE_KEYS_FILE``; several keys may name one app, for rotation).
Apps send the key as the ``X-Streamlearn-Write-Key`` header. The browser tag sends it as
the ``write_key`` query parameter: ``navigator.sendBeacon`` cannot set headers, and a
custom header on ``fetch`` would cost every cross-origin post a preflight. A key in a page
is public anyway (anyone can read the page); what it buys is attribution and revocation,
which is what Segment's and RudderStack's write keys do too.

The key's app is stamped on every item (``context.app`` of an event, ``properties.app`` of
feedback): the key, not the body, says which app sent it. An item that names another app
there is refused (403 naming the field) rather than silently rewritten, so a misconfigured
app hears about it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from aiohttp import web
from aiohttp.web_log import AccessLogger

from streamlearn.collector.mapping import Mapped
from streamlearn.exceptions import ConfigurationError
from streamlearn.http_auth import REALM, owner_of
from streamlearn.http_tls import check_private_file
from streamlearn.settings import Settings
from streamlearn.settings_values import credential_problem

HEADER = "X-Streamlearn-Write-Key"
QUERY = "write_key"
APP_FIELD = {"event": "context", "feedback": "properties"}
"""Where an item's app is stamped: this map of the record, key ``app``."""


class MissingWriteKeyError(Exception):
    """A post without a known write key (401); ``field``: where the key was (or goes)."""

    def __init__(self, message: str, field: str = "X-Streamlearn-Write-Key") -> None:
        super().__init__(message)
        self.field = field


class ForeignAppError(Exception):
    """An item naming another app than its key's (403)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _read_file(path: Path) -> dict[str, str]:
    setting = "STREAMLEARN_COLLECTOR_WRITE_KEYS_FILE"
    check_private_file(path, setting)
    try:
        loaded: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        # The parser's message gives a position, never the file's text.
        raise ConfigurationError(f"{setting}={path}: not a JSON object ({exc})") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
    ):
        raise ConfigurationError(f"{setting}={path}: must be a JSON object of strings")
    if not loaded:
        # The file was set for keys to be required; the last one removed (revoked) left it
        # empty, and the collector then took every post without a key.
        raise ConfigurationError(
            f"{setting}={path}: holds no write key, and without one anyone may post events: "
            f"add a key, or unset {setting} to run the collector without keys"
        )
    for key, app in loaded.items():
        problem = credential_problem(key) or (None if app.strip() else "an app id is not empty")
        if problem is not None:
            # Never the key itself: the app it is for says which entry.
            raise ConfigurationError(f"{setting}={path}: the entry of app {app!r}: {problem}")
    return loaded


def configured_write_keys(settings: Settings) -> dict[str, str]:
    """Each write key of ``settings`` (the setting and the file together) with its app."""
    keys = {k.get_secret_value(): app for k, app in settings.collector_write_keys.items()}
    if settings.collector_write_keys_file is not None:
        keys.update(_read_file(settings.collector_write_keys_file))
    return keys


class WriteKeys:
    """The configured keys, each with its app; compared in constant time."""

    def __init__(self, apps_by_key: Mapping[str, str]) -> None:
        for key, app in apps_by_key.items():
            if not key or not app:
                raise ConfigurationError("collector write keys and their app ids must not be empty")
        self._keys = [(key.encode(), app) for key, app in apps_by_key.items()]

    @classmethod
    def from_settings(cls, settings: Settings) -> WriteKeys | None:
        """The keys of ``settings`` (both settings together), or None when there are none."""
        keys = configured_write_keys(settings)
        return cls(keys) if keys else None

    @property
    def apps(self) -> list[str]:
        return sorted({app for _, app in self._keys})

    def app_of(self, request: web.Request) -> str:
        """The app whose key the request carries (header, else query parameter)."""
        headers, queried = request.headers.getall(HEADER, []), request.query.getall(QUERY, [])
        field = HEADER if headers else QUERY
        if len(headers) + len(queried) > 1:
            raise MissingWriteKeyError(
                f"send one write key: this request carries {len(headers) + len(queried)}", field
            )
        given = (headers or queried or [""])[0]
        if not given:
            raise MissingWriteKeyError(
                f"a write key is required: send it as the {HEADER} header "
                f"(or the {QUERY} query parameter)"
            )
        app = owner_of(given, self._keys)
        if app is None:
            raise MissingWriteKeyError("this write key is not one the collector knows", field)
        return app


def stamp_app(mapped: Mapped, app: str, index: int) -> None:
    """Put the key's ``app`` on the item, refusing an item that names another."""
    name = APP_FIELD[mapped.kind]
    stamped: dict[str, str] = mapped.record[name]
    claimed = stamped.get("app")
    if claimed is not None and claimed != app:
        raise ForeignAppError(
            f"[{index}].{name}.app",
            f"names app {claimed!r}, but the write key is {app!r}'s",
        )
    stamped["app"] = app


def challenge() -> dict[str, str]:
    """The ``WWW-Authenticate`` header of a 401 (RFC 9110 wants one on every 401)."""
    return {"WWW-Authenticate": f'WriteKey realm="{REALM}"'}


class _RedactedQuery:
    """A request as the access log sees it, the key's value replaced (a request whose
    body was read cannot be cloned)."""

    def __init__(self, request: web.BaseRequest) -> None:
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)

    @property
    def path_qs(self) -> str:
        query = [(k, "redacted" if names_the_key(k) else v) for k, v in self._request.query.items()]
        return str(self._request.rel_url.with_query(query))


def names_the_key(name: str) -> bool:
    """Whether a query parameter is the write key, whatever its case (``Write_Key``) or
    separator (``write-key``): the collector reads only ``write_key``, but a client's slip
    still puts a real key in the URL, and the log must not keep it."""
    return name.casefold().replace("-", "_") == QUERY


_KEY_IN_TEXT = re.compile(r"(write[_-]key=)[^&\s'\"]+", re.IGNORECASE)
"""A write key as a query parameter in logged text (a request line aiohttp quotes)."""


class RedactingServerLogFilter(logging.Filter):
    """Leaves the write key out of aiohttp's server log: a request line its parser refuses
    (a byte not allowed in a URL after the key) is logged whole, at ERROR, in the
    exception's text, so ``?write_key=<key>`` was in the collector's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _KEY_IN_TEXT.sub(r"\1redacted", record.exc_text)
        message = record.getMessage()
        redacted = _KEY_IN_TEXT.sub(r"\1redacted", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_keys_in_server_log() -> None:
    """Install :class:`RedactingServerLogFilter` on aiohttp's server log (once)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, RedactingServerLogFilter) for f in server_log.filters):
        server_log.addFilter(RedactingServerLogFilter())


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access log with the ``write_key`` query parameter's value left out."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if any(names_the_key(name) for name in request.query):
            request = cast(web.BaseRequest, _RedactedQuery(request))
        super().log(request, response, time)
