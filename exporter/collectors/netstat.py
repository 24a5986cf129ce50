"""Parsers of the kernel's network counters: /proc/net/snmp, snmp6, netstat and softnet_stat.

All of them count for the network namespace of whoever reads them: the exporter's own
unless `proc_root` points at the host's procfs from a pod with host networking.
"""

from __future__ import annotations

from typing import NamedTuple


def parse_snmp(text: str, protocols: frozenset[str] | None = None) -> dict[str, dict[str, int]]:
    """/proc/net/snmp or /proc/net/netstat: for each protocol a line of field names, then a line of values.

    With `protocols`, only those are split (netstat's TcpExt alone is a hundred-odd fields of
    the few the scrape wants, and its other lines are as long).
    """
    out: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        proto, _, header = names.partition(":")
        if protocols is not None and proto not in protocols:
            continue
        if values.partition(":")[0] == proto:
            out[proto] = dict(zip(header.split(), map(int, values.partition(":")[2].split())))
    return out


def parse_snmp6(text: str, wanted: frozenset[str] | None = None) -> dict[str, int]:
    """/proc/net/snmp6: one `Name value` pair a line (Udp6RcvbufErrors, ...); with `wanted`, only those names."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and (wanted is None or parts[0] in wanted):
            out[parts[0]] = int(parts[1])
    return out


class Softnet(NamedTuple):
    """The softirq network receive path, summed over CPUs."""

    processed: int  # packets taken off the per-CPU backlog
    dropped: int  # packets dropped because the backlog (net.core.netdev_max_backlog) was full
    squeezed: int  # times the budget (net.core.netdev_budget) ran out with work left


def parse_softnet(text: str) -> Softnet:
    """/proc/net/softnet_stat: one line per online CPU of hexadecimal columns; the first three are kept."""
    processed = dropped = squeezed = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            processed += int(fields[0], 16)
            dropped += int(fields[1], 16)
            squeezed += int(fields[2], 16)
    return Softnet(processed, dropped, squeezed)
