"""A request's body, or why it cannot be read: a client's mistake (400), never a 500."""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

ENCODINGS = ("identity", "gzip", "deflate", "br", "zstd")
"""What aiohttp's parser decodes (``br`` with Brotli, ``zstd`` with backports.zstd: both
dependencies); it reads any other ``Content-Encoding`` as identity."""


class UnreadableBodyError(Exception):
    """The body does not decode as its ``Content-Encoding`` says (or was cut short: a 400
    naming ``body``), or is in an encoding the server does not decode (a 415 naming
    ``Content-Encoding``); the answer to such a request must close the connection
    (``Response.force_close``)."""

    def __init__(self, message: str, status: int = 400, field: str = "body") -> None:
        super().__init__(message)
        self.status = status
        self.field = field


async def read_body(request: web.Request) -> bytes:
    """The body of ``request``, decoded as its ``Content-Encoding`` says; a body over the
    app's ``client_max_size`` still raises aiohttp's 413."""
    encoding = request.headers.get("Content-Encoding", "identity")
    # One coding (aiohttp reads a list, "gzip, br", as identity too); empty is identity.
    if encoding.strip() and encoding.strip().lower() not in ENCODINGS:
        request.content.feed_eof()  # unread, as below
        raise UnreadableBodyError(
            f"Content-Encoding {encoding}: not one of {', '.join(ENCODINGS)}",
            415,
            "Content-Encoding",
        )
    try:
        return await request.read()
    except (RequestPayloadError, HttpProcessingError):
        # The rest of the body is unreadable too: marked as read, or aiohttp would try to
        # read past it after the answer (to reuse the connection), fail again and drop the
        # connection with the answer unsent. The caller's answer closes the connection.
        request.content.feed_eof()
        raise UnreadableBodyError(
            f"the body does not decode as its Content-Encoding {encoding} says"
        ) from None
