"""Opening a probe's stream connection, with one error form for every cause of failure."""

from __future__ import annotations

import asyncio
import ssl


async def open_stream(socket: str, host: str, port: int, context: ssl.SSLContext | None = None,
                      limit: int = 2 ** 16) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A unix socket when `socket` is set, else TCP (TLS with `context`).

    A failed connect (refused, unreachable, TLS rejected) is a ConnectionError naming the
    address, so a probe's errors read the same whatever the cause; a timeout stays a timeout.
    """
    try:
        if socket:
            return await asyncio.open_unix_connection(socket, limit=limit)
        return await asyncio.open_connection(host, port, ssl=context, limit=limit)
    except TimeoutError:
        raise
    except OSError as err:
        raise ConnectionError(f"cannot connect to {socket or f'{host}:{port}'}: {err}") from None
