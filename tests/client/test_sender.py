"""The wire: compact multi-value lines, datagrams under the size limit, gauges as deltas,
and nothing ever raised into the app when the daemon is not there."""

from __future__ import annotations

import gc
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.client import Telemetry
from exporter.client._sender import UDP_PAYLOAD, pack, parse_address
from tests.client.conftest import Receiver, samples, total
from tests.support.net import free_port


class TestWireFormat:
    def test_timer_values_share_one_line_and_read_back_exactly(self, tm: Telemetry, receiver: Receiver) -> None:
        """Values in one flush go out as `name:v1:v2:...|ms|#tags`; each reads back as the exact ms."""
        for seconds in (0.001, 0.0025, 1.5):
            tm.record("op", seconds)
        tm.flush()
        lines = receiver.lines()

        assert ["apm.operation:1000000e-6:2500000e-6:1500000000e-6|ms|#operation:op,outcome:ok"] == lines
        assert [1.0, 2.5, 1500.0] == [s.value for s in samples(lines)]

    def test_many_values_split_into_lines_and_datagrams_under_the_limit(self, tm: Telemetry,
                                                                          receiver: Receiver) -> None:
        """5000 values: every datagram fits 1432 bytes, every line is whole, no value is lost."""
        for i in range(5000):
            tm.record("bulk", i / 1e6)
        tm.flush()
        datagrams = receiver.datagrams()
        lines = [line for d in datagrams for line in d.decode().split("\n")]
        values = sorted(s.value for s in samples(lines))

        assert all(len(d) <= UDP_PAYLOAD for d in datagrams)
        assert len(datagrams) > 1
        assert all(line.endswith("|ms|#operation:bulk,outcome:ok") for line in lines)
        assert [i / 1000 for i in range(5000)] == pytest.approx(values)

    def test_several_lines_share_a_datagram(self, tm: Telemetry, receiver: Receiver) -> None:
        cache = tm.cache("users")
        cache.hit()
        cache.miss()
        tm.record("op", 0.001)
        tm.flush()

        (datagram,) = receiver.datagrams()
        assert 4 == len(datagram.split(b"\n"))  # hit, miss, eviction (announced at 0), the timer

    def test_counters_are_summed_per_flush(self, tm: Telemetry, receiver: Receiver) -> None:
        cache = tm.cache("users", level="l1")
        for _ in range(1000):
            cache.hit()
        cache.miss(3)
        tm.flush()
        lines = receiver.lines()

        assert "apm.cache.hit:1000|c|#cache:users,level:l1" in lines
        assert "apm.cache.miss:3|c|#cache:users,level:l1" in lines

    def test_counters_are_announced_at_zero_once(self, tm: Telemetry, receiver: Receiver) -> None:
        """A new counter goes out at 0 so its series exists before the first event; then only changes."""
        tm.pool("db")
        tm.flush()
        first = receiver.lines()
        tm.flush()
        second = receiver.lines(quiet=0.1)

        assert "apm.pool.timeout:0|c|#pool:db" in first
        assert [] == [line for line in second if "|c" in line]  # gauges are resent; counters are not

    def test_pack_keeps_lines_whole(self) -> None:
        lines = [f"x.{i}:{'1' * 100}|c" for i in range(40)]
        datagrams = pack(lines, 1432)

        assert lines == [line for d in datagrams for line in d.decode().split("\n")]
        assert all(len(d) <= 1432 for d in datagrams)


class TestGauges:
    def test_gauges_are_absolute_shares_resent_every_flush(self, tm: Telemetry, receiver: Receiver) -> None:
        """set(5), set(7), 7 again, set(2): each flush sends the value itself with this process's
        instance, unchanged ones too (the daemon forgets an instance it stops hearing from)."""
        pool = tm.pool("db")
        me = tm._sender.instance
        sent = []
        for active in (5, 7, 7, 2):
            pool.set(active=active)
            tm.flush()
            sent.append([line for line in receiver.lines(quiet=0.1) if line.startswith("apm.pool.active")])

        assert [[f"apm.pool.active:{n}|g|#pool:db,apm_instance:{me}"] for n in (5, 7, 7, 2)] == sent

    def test_close_takes_the_contribution_back(self, make_tm: Callable[..., Telemetry],
                                               receiver: Receiver) -> None:
        """A process leaving cleanly reports a share of 0, so the daemon's sum drops it at once."""
        tm = make_tm(receiver.address)
        tm.queue("emails").depth(42)
        tm.flush()
        tm.close()
        lines = receiver.lines()

        assert 0 == total(lines, "apm.queue.depth", queue="emails")
        assert f"apm.queue.depth:0|g|#queue:emails,apm_instance:{tm._sender.instance}" == lines[-1]

    def test_new_gauges_are_announced_at_zero(self, tm: Telemetry, receiver: Receiver) -> None:
        tm.pool("db")
        tm.flush()

        assert f"apm.pool.pending:0|g|#pool:db,apm_instance:{tm._sender.instance}" in receiver.lines()

    def test_negative_shares_are_sent_as_they_are(self, tm: Telemetry, receiver: Receiver) -> None:
        tm.queue("credit").depth(-3)
        tm.flush()

        assert f"apm.queue.depth:-3|g|#queue:credit,apm_instance:{tm._sender.instance}" in receiver.lines()

    def test_relative_updates(self, tm: Telemetry, receiver: Receiver) -> None:
        q = tm.queue("jobs")
        q.add(3)
        q.add(-1)
        tm.flush()

        assert 2 == total(receiver.lines(), "apm.queue.depth", queue="jobs")


class TestDaemonDown:
    def test_nothing_listening_never_raises_and_is_counted(self, make_tm: Callable[..., Telemetry]) -> None:
        """Sends to a closed port fail quietly; the buffers are empty afterwards (bounded memory)."""
        tm = make_tm(f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}")

        @tm.timed("op")
        def op() -> None:
            pass

        for _ in range(20):
            for _ in range(100):
                op()
            tm.flush()
        sender = tm._sender

        assert all(len(s.values) == 0 for s in sender.series_by_key.values())
        assert tm.stats()["send_errors"] + tm.stats()["datagrams_sent"] == 20
        assert tm.stats()["send_errors"] > 0  # ICMP port unreachable comes back on loopback

    def test_unresolvable_host_is_counted_not_raised(self, make_tm: Callable[..., Telemetry]) -> None:
        tm = make_tm("no-such-host.invalid:8125")
        tm.record("op", 0.001)
        tm.flush()

        assert 1 == tm.stats()["send_errors"]

    def test_missing_unix_socket_is_counted_not_raised(self, make_tm: Callable[..., Telemetry]) -> None:
        tm = make_tm("unixgram:///nonexistent/apm.sock")
        tm.record("op", 0.001)
        tm.flush()

        assert 1 == tm.stats()["send_errors"]

    def test_unixgram_daemon_not_reading_is_waited_for_then_counted(
            self, make_tm: Callable[..., Telemetry]) -> None:
        """A full unix socket makes the flush thread wait briefly, then give up on that flush
        (counted); nothing is raised, and the next flush goes through once the daemon reads."""
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "apm.sock")
            rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            rx.bind(path)
            tm = make_tm(f"unixgram://{path}")
            for i in range(20_000):
                tm.record("stuck", i / 1e6)
            tm.flush()
            dropped = tm.stats()["send_errors"]
            rx.settimeout(0.5)
            while True:
                try:
                    rx.recv(65535)
                except TimeoutError:
                    break
            tm.record("later", 0.001)
            tm.flush()

            assert dropped > 0
            assert b"apm.operation:1000000e-6|ms|#operation:later,outcome:ok" == rx.recv(65535)
            rx.close()

    def test_past_max_samples_a_subset_goes_out_with_its_rate(self, make_tm: Callable[..., Telemetry],
                                                              receiver: Receiver) -> None:
        """The flush cost per series is bounded; the rate lets the daemon scale counts back."""
        tm = make_tm(receiver.address, max_samples=100)
        for _ in range(1000):
            tm.record("hot", 0.001)
        tm.flush()
        found = samples(receiver.lines())

        assert 100 == len(found)
        assert 1000 == pytest.approx(sum(1 / s.rate for s in found))

    def test_records_after_close_are_discarded(self, make_tm: Callable[..., Telemetry],
                                               receiver: Receiver) -> None:
        tm = make_tm(receiver.address)
        tm.close()
        tm.record("late", 0.001)
        tm.flush()

        assert [] == receiver.lines(quiet=0.1)
        assert all(len(s.values) == 0 for s in tm._sender.series_by_key.values())


class TestAddress:
    @pytest.mark.parametrize(("raw", "parsed"), [
        ("127.0.0.1:8125", ("127.0.0.1", 8125)),
        ("udp://statsd:9125", ("statsd", 9125)),
        ("[::1]:8125", ("::1", 8125)),
    ], ids=["host-port", "udp-url", "ipv6"])
    def test_udp_forms(self, raw: str, parsed: tuple[str, int]) -> None:
        assert parsed == parse_address(raw)[1]

    @pytest.mark.parametrize("raw", ["8125", "host:", "host:99999", "unixgram://", "tcp//x"])
    def test_bad_address_is_a_clear_error(self, raw: str) -> None:
        with pytest.raises(ValueError, match="address"):
            parse_address(raw)

    def test_environment_variable(self, monkeypatch: pytest.MonkeyPatch, receiver: Receiver,
                                  make_tm: Callable[..., Telemetry]) -> None:
        monkeypatch.setenv("APM_STATSD_ADDRESS", receiver.address)
        tm = make_tm()
        tm.record("env", 0.001)
        tm.flush()

        assert 1 == total(receiver.lines(), "apm.operation", operation="env")

    def test_bad_environment_variable_names_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("APM_STATSD_ADDRESS", "nonsense")
        with pytest.raises(ValueError, match="APM_STATSD_ADDRESS"):
            Telemetry()

    def test_unixgram(self, make_tm: Callable[..., Telemetry]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "apm.sock"
            rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            rx.bind(str(path))
            rx.settimeout(2)
            tm = make_tm(f"unixgram://{path}")
            tm.record("unix", 0.002)
            tm.flush()

            assert b"apm.operation:2000000e-6|ms|#operation:unix,outcome:ok" == rx.recv(65535)
            rx.close()


class TestLifetime:
    def test_instrumented_object_collected_takes_its_gauges_back(self, tm: Telemetry,
                                                                 receiver: Receiver) -> None:
        import queue

        q: queue.Queue[int] = queue.Queue()
        for i in range(5):
            q.put(i)
        tm.instrument_queue(q, "jobs")
        tm.flush()
        del q
        gc.collect()
        tm.flush()
        lines = receiver.lines()

        me = tm._sender.instance
        assert [f"apm.queue.depth:5|g|#queue:jobs,apm_instance:{me}", f"apm.queue.depth:0|g|#queue:jobs,apm_instance:{me}"] == \
            [line for line in lines if line.startswith("apm.queue.depth")]
        assert not tm._sender.gauges_by_key  # the orphaned gauge is gone too
