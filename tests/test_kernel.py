"""The kernel's UDP socket table read as the drop counter needs it (statsd/kernel.py)."""

from __future__ import annotations

import socket

from exporter.statsd.kernel import parse_udp, read_drops, resolve, socket_drops

# Two sockets sharing 127.0.0.1:8125 (SO_REUSEPORT workers), one on 0.0.0.0:9125, from Linux 6.1.
UDP = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  412: 0100007F:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 91357 2 0000000000000000 17
  412: 0100007F:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 91358 2 0000000000000000 5
 1000: 00000000:23A5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 91359 2 0000000000000000 0
"""
UDP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  412: 00000000000000000000000001000000:1FBD 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 91360 2 0000000000000000 3
"""


def test_drops_are_summed_per_bound_address_and_port() -> None:
    assert parse_udp(UDP) == {("127.0.0.1", 8125): 22, ("0.0.0.0", 9125): 0}


def test_ipv6_addresses_are_decoded_word_by_word() -> None:
    assert parse_udp(UDP6) == {("::1", 8125): 3}


def test_a_line_of_another_shape_is_skipped_not_fatal() -> None:
    assert parse_udp(UDP + "  9: garbage\n  10: zz:zz 0 07 0 0 0 0 0 0 0 0 x\n") == parse_udp(UDP)


def test_a_real_socket_is_found_by_the_address_it_is_bound_to() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = resolve("127.0.0.1", sock.getsockname()[1])
        assert read_drops([local, ("127.0.0.1", 1)]) == {local: 0}


def test_only_the_ports_asked_for_are_decoded() -> None:
    assert parse_udp(UDP + UDP6.split("\n", 1)[1], ports={8125}) == {("127.0.0.1", 8125): 22, ("::1", 8125): 3}
    assert parse_udp(UDP, ports={9125}) == {("0.0.0.0", 9125): 0}
    assert parse_udp(UDP, ports=()) == {}


def test_our_own_socket_tells_the_same_drops_as_the_table() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        receiver.bind(("127.0.0.1", 0))
        local = resolve("127.0.0.1", receiver.getsockname()[1])
        for _ in range(200):  # nobody reads: the tiny buffer overflows
            sender.sendto(b"x" * 500, receiver.getsockname())
        drops = socket_drops(receiver)
        assert drops is not None and drops > 0
        assert read_drops([local]) == {local: drops}
    finally:
        sender.close()
        receiver.close()
