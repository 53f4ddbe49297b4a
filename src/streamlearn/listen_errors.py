"""The error of a server that cannot listen, in one wording whichever server it is."""

from __future__ import annotations

import os


def bind_error(exc: OSError, host: str, port: int) -> OSError:
    """``exc`` (a failed bind) naming the address, in asyncio's words, so that the command
    line's one-line error says which address (a plain socket's error does not)."""
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return OSError(
        exc.errno, f"error while attempting to bind on address {(host, port)!r}: {reason}"
    )
