"""A request's body, or why it cannot be read: a client's mistake (400), never a 500."""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError


class UnreadableBodyError(Exception):
    """The body does not decode as its ``Content-Encoding`` says (or was cut short); the
    answer to such a request must close the connection (``Response.force_close``)."""


async def read_body(request: web.Request) -> bytes:
    """The body of ``request``, decoded as its ``Content-Encoding`` says; a body over the
    app's ``client_max_size`` still raises aiohttp's 413."""
    try:
        return await request.read()
    except (RequestPayloadError, HttpProcessingError) as exc:
        # The rest of the body is unreadable too: marked as read, or aiohttp would try to
        # read past it after the answer (to reuse the connection), fail again and drop the
        # connection with the answer unsent. The caller's answer closes the connection.
        request.content.feed_eof()
        encoding = request.headers.get("Content-Encoding", "identity")
        cause = exc.__cause__ or exc
        raise UnreadableBodyError(
            f"the body could not be read as Content-Encoding {encoding}: {cause}"
        ) from None
