"""What the kernel dropped before our UDP listeners read it: the `drops` column of /proc/net/udp.

A datagram that arrives while a socket's receive buffer is full never reaches
the daemon, so nothing on the ingest path can count it. The kernel counts it
per socket; reading that at scrape time costs the hot path nothing (SO_RXQ_OVFL
would need recvmsg and ancillary data on every packet). Sockets are matched by
their bound address and port, so the SO_REUSEPORT workers' sockets (in other
processes) count towards their listener too.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Collection, Iterable

SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)  # Linux's number; the socket module may not name it
SK_MEMINFO_DROPS = 8  # the index of sk_drops in what SO_MEMINFO returns

Local = tuple[str, int]  # (IP address as inet_ntop writes it, port)


def _address(hex_ip: str) -> str:
    """/proc/net/udp writes each 32-bit word of the address in host (little-endian) order."""
    raw = bytes.fromhex(hex_ip)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(words) == 4 else socket.AF_INET6, words)


def parse_udp(text: str, ports: Collection[int] | None = None) -> dict[Local, int]:
    """Drops per local (address, port), summed over the sockets bound there; only `ports` if given.

    Lines of other ports are passed over before their address is decoded: a host's table
    holds every process's sockets, and decoding all of it cost about a millisecond a scrape.
    """
    wanted = None if ports is None else {f"{port:04X}" for port in ports}
    out: dict[Local, int] = {}
    for line in text.splitlines()[1:]:
        if wanted is not None:
            head = line.split(None, 2)
            if len(head) < 2 or head[1][-4:] not in wanted:
                continue
        fields = line.split()
        if len(fields) < 13:
            continue
        try:
            hex_ip, hex_port = fields[1].split(":")
            local = (_address(hex_ip), int(hex_port, 16))
            drops = int(fields[-1])
        except ValueError:
            continue  # a line of another shape: skip it, never the whole table
        out[local] = out.get(local, 0) + drops
    return out


def read_drops(locals_: Iterable[Local], proc: str = "/proc") -> dict[Local, int]:
    """Kernel drops of each of these local endpoints; an endpoint with no socket is left out."""
    wanted = list(locals_)
    if not wanted:
        return {}
    ports = {port for _, port in wanted}
    table: dict[Local, int] = {}
    for name in ("udp", "udp6"):
        try:
            with open(f"{proc}/net/{name}") as f:
                parsed = parse_udp(f.read(), ports)
        except OSError:
            continue  # no IPv6, or no procfs: nothing to report from that table
        for local, drops in parsed.items():
            table[local] = table.get(local, 0) + drops
    return {local: table[local] for local in wanted if local in table}


def socket_drops(sock: socket.socket) -> int | None:
    """The kernel's drop count of one of our sockets; None where SO_MEMINFO does not report it."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * (SK_MEMINFO_DROPS + 1))
    except OSError:
        return None
    if len(raw) < 4 * (SK_MEMINFO_DROPS + 1):
        return None  # a kernel older than 4.7 stops before the drops
    return int.from_bytes(raw[4 * SK_MEMINFO_DROPS:4 * (SK_MEMINFO_DROPS + 1)], sys.byteorder)


def resolve(host: str, port: int) -> Local:
    """The address a listener's socket is bound to, as /proc/net/udp shows it."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]  # as listener.datagram_socket binds
    address = info[4]
    return str(address[0]), int(address[1])
