"""The error of a server that cannot listen, in one wording whichever server it is."""

from __future__ import annotations

import os
import socket


def bind_error(exc: OSError, host: str, port: int) -> OSError:
    """``exc`` (a failed bind) naming the address, in asyncio's words, so that the command
    line's one-line error says which address (a plain socket's error does not)."""
    if isinstance(exc, socket.gaierror):
        # A host that does not resolve: its errno is a resolver code (EAI_*, negative),
        # which os.strerror reads as "unknown error -2".
        reason = f"{host!r} is not an address of this machine ({exc.strerror})"
    else:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return OSError(
        exc.errno, f"error while attempting to bind on address {(host, port)!r}: {reason}"
    )
