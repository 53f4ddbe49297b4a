"""HTTP requests whose headers are bytes as written: aiohttp's client sends text headers
only, and a header that is not UTF-8 is what a misbehaving client or proxy may send."""

from __future__ import annotations

import asyncio


async def post_raw(
    host: str, port: int, path: str, headers: bytes, body: bytes
) -> tuple[int, bytes]:
    """POST ``body`` as JSON with ``headers`` (``Name: value\\r\\n`` lines, each ending in
    CRLF) sent unchanged; the answer's status and body."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: collector\r\nConnection: close\r\n".encode()
        + headers
        + b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    answer = await reader.read()
    writer.close()
    head, _, rest = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest
