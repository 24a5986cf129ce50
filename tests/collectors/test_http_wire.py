"""The HTTP probe's connection (_Wire): bytes that arrive while no read waits are kept.

The socket stays registered with the loop from the first read that waits to close, so
the loop can read bytes when no read is waiting (a cancelled read, the time between
two reads): the next read must return them, in order, before what follows.
"""

from __future__ import annotations

import asyncio
import socket

from exporter.collectors.http import _Wire


async def _bytes_after_a_cancelled_read() -> list[bytes]:
    loop = asyncio.get_running_loop()
    ours, peer = socket.socketpair()
    mark, mark_peer = socket.socketpair()
    for sock in (ours, mark):
        sock.setblocking(False)
    wire = _Wire(ours)
    try:
        waiting = asyncio.create_task(wire.recv())
        await asyncio.sleep(0)  # it waits: the socket is registered now
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        # The loop reads "first" with no read waiting: both sockets are ready at the same
        # poll, so the mark's read ends only after the wire's reader has run.
        marked = asyncio.create_task(loop.sock_recv(mark, 1))
        await asyncio.sleep(0)
        peer.send(b"first")
        mark_peer.send(b"m")
        await marked
        peer.send(b"second")
        peer.close()
        got = [await wire.recv()]
        while got[-1]:
            got.append(await wire.recv())
        return got
    finally:
        wire.close()
        for sock in (peer, mark, mark_peer):
            sock.close()


def test_bytes_read_while_no_read_waits_come_first() -> None:
    assert b"".join(asyncio.run(_bytes_after_a_cancelled_read())) == b"firstsecond"
