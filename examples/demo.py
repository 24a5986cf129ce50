"""The one-command demo (scripts/demo): real servers, the shop app, traffic, the status page.

    scripts/demo [--port 9725] [--duration SECONDS]

Starts, on free local ports and in a temporary directory, whichever of Redis,
memcached, PostgreSQL (with pg_stat_statements) and PgBouncer are installed, then
the daemon on examples/demo.yaml (the targets of missing servers left out),
examples/shop.py with traffic, and a little extra traffic so that every concept
has data: queries through PgBouncer, a Redis list and stream, memcached lookups,
a second operation, a pool with waiters, a few bad StatsD lines. It prints the
status page's URL and runs until Ctrl-C (or --duration), then stops everything
it started, in reverse order, and removes the directory.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_and_tcp_port() -> int:
    """A port free for both UDP and TCP (StatsD listens on both)."""
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def which(name: str, *dirs: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *dirs, "/usr/sbin", "/usr/bin"]))


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except Exception:  # noqa: BLE001  (not up yet)
            pass
        time.sleep(0.1)
    return False


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Demo:
    def __init__(self, web_port: int, step: float) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="apm-demo-"))
        os.chmod(self.dir, 0o755)  # PostgreSQL and PgBouncer run as `postgres` under root
        self.web_port = web_port
        self.step = step
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.ports: dict[str, int] = {"statsd": free_udp_and_tcp_port(), "web": web_port}
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        user = pwd.getpwnam("postgres") if os.geteuid() == 0 and _has_user("postgres") else None
        self.service_user = user

    # --- servers ------------------------------------------------------------------------------

    def _start(self, name: str, cmd: list[str], as_service_user: bool = False, **kwargs: Any) -> None:
        log = open(self.dir / f"{name}.log", "ab")
        extra: dict[str, Any] = {}
        if as_service_user and self.service_user is not None:
            extra = {"user": self.service_user.pw_uid, "group": self.service_user.pw_gid, "extra_groups": []}
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.dir, **extra, **kwargs)
        log.close()
        self.procs.append((name, proc))

    def _own(self, path: Path) -> None:
        if self.service_user is not None:
            for p in [path, *path.rglob("*")]:
                os.chown(p, self.service_user.pw_uid, self.service_user.pw_gid)

    def redis(self) -> bool:
        binary = which("redis-server")
        if binary is None:
            return False
        port = self.ports["redis"] = free_port()
        self._start("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"])
        return wait_until(lambda: listening(port))

    def memcached(self) -> bool:
        binary = which("memcached")
        if binary is None:
            return False
        port = self.ports["memcached"] = free_port()
        self._start("memcached", [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "16",
                                  *(["-u", "nobody"] if os.geteuid() == 0 else [])])
        return wait_until(lambda: listening(port))

    def postgres(self) -> bool:
        initdb, postgres = which("initdb", *PG_BIN), which("postgres", *PG_BIN)
        if initdb is None or postgres is None:
            return False
        data = self.dir / "pg"
        data.mkdir()
        self._own(data)
        extra: dict[str, Any] = {}
        if self.service_user is not None:
            extra = {"user": self.service_user.pw_uid, "group": self.service_user.pw_gid, "extra_groups": []}
        subprocess.run([initdb, "-D", str(data / "data"), "-U", "postgres", "--auth=trust", "--no-sync",
                        "-E", "UTF8", "--locale=C"], check=True, capture_output=True, cwd=data, **extra)
        port = self.ports["postgres"] = free_port()
        self._start("postgres", [postgres, "-D", str(data / "data"), "-p", str(port),
                                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data}",
                                 "-c", "shared_preload_libraries=pg_stat_statements", "-c", "fsync=off",
                                 "-c", "max_connections=50"], as_service_user=True)

        def ready() -> bool:
            import psycopg

            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True,
                                 connect_timeout=2) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("CREATE TABLE IF NOT EXISTS payments (id serial PRIMARY KEY, amount numeric)")
            return True

        return wait_until(ready, 60)

    def pgbouncer(self) -> bool:
        binary = which("pgbouncer")
        if binary is None or "postgres" not in self.ports:
            return False
        work = self.dir / "pgbouncer"
        work.mkdir()
        port = self.ports["pgbouncer"] = free_port()
        (work / "users.txt").write_text('"postgres" ""\n')
        (work / "pgbouncer.ini").write_text(
            f"[databases]\napp = host=127.0.0.1 port={self.ports['postgres']} dbname=postgres\n\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {work / 'users.txt'}\nadmin_users = postgres\n"
            "stats_users = postgres\npool_mode = session\ndefault_pool_size = 2\nmax_client_conn = 100\n")
        self._own(work)
        self._start("pgbouncer", [binary, str(work / "pgbouncer.ini")], as_service_user=True)
        return wait_until(lambda: listening(port))

    # --- the daemon and the app -----------------------------------------------------------------

    def config(self) -> Path:
        """examples/demo.yaml without the targets of servers that did not start."""
        config = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
        probes = config["probes"]
        for name, port in (("redis", "redis"), ("memcached", "memcached"), ("postgres", "postgres"),
                           ("pgbouncer", "pgbouncer")):
            if port not in self.ports:
                del probes[name]
        path = self.dir / "demo.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def env(self) -> dict[str, str]:
        env = {**os.environ, "DEMO_DIR": str(self.dir), "APM_STATUS_STEP_SECONDS": f"{self.step:g}",
               "APM_STATSD_ADDRESS": f"127.0.0.1:{self.ports['statsd']}"}
        env.update({f"DEMO_{k.upper()}_PORT": str(v) for k, v in self.ports.items()})
        return env

    def daemon(self) -> bool:
        exe = which("apm-exporter") or sys.executable
        cmd = [exe] if exe.endswith("apm-exporter") else [exe, "-m", "exporter"]
        self._start("daemon", [*cmd, "--config.file", str(self.config()),
                               "--web.listen-address", f"127.0.0.1:{self.web_port}"], env=self.env())
        return wait_until(lambda: urllib.request.urlopen(f"{self.url}-/ready", timeout=1).status == 200, 30)

    def shop(self) -> None:
        if "redis" not in self.ports:
            return
        self._start("shop", [sys.executable, str(ROOT / "examples" / "shop.py"),
                             "--redis", f"redis://127.0.0.1:{self.ports['redis']}/0", "--db", str(self.dir / "shop.db"),
                             "--duration", "86400", "--rate", "25"], env=self.env())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/"

    # --- extra traffic -------------------------------------------------------------------------

    def traffic(self) -> None:
        for work in (self._statsd, self._postgres, self._redis, self._memcached):
            thread = threading.Thread(target=self._guard, args=(work,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _guard(self, work: Callable[[], None]) -> None:
        while not self.stopping.is_set():
            try:
                work()
            except Exception as err:  # noqa: BLE001  (a server restarting: try again shortly)
                print(f"demo traffic: {type(err).__name__}: {err}", file=sys.stderr)
                self.stopping.wait(2)

    def _statsd(self) -> None:
        r = random.Random()
        port = self.ports["statsd"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tick = 0
            while not self.stopping.is_set():
                lines = [f"apm.operation:{r.lognormvariate(1.5, 0.6):.2f}|ms|#operation:search,outcome:ok"
                         for _ in range(8)]
                if r.random() < 0.3:
                    lines.append(f"apm.operation:{r.uniform(300, 1500):.1f}|ms|#operation:payment,outcome:ok")
                if r.random() < 0.05:
                    lines.append(f"apm.operation:{r.uniform(1000, 3000):.1f}|ms|#operation:payment,outcome:error")
                lines += [f"apm.pool.active:{r.randint(3, 8)}|g|#pool:payments-api", "apm.pool.max:8|g|#pool:payments-api",
                          f"apm.pool.idle:{r.randint(0, 3)}|g|#pool:payments-api",
                          f"apm.pool.pending:{r.randint(0, 2)}|g|#pool:payments-api",
                          f"apm.pool.wait:{r.uniform(0.5, 40):.1f}|ms|#pool:payments-api"]
                if tick % 20 == 0:
                    lines += ["apm.pool.timeout:1|c|#pool:payments-api", "checkout took long",  # a parse error
                              "_e{4,5}:demo|hello", "legacy.page_views:1|c"]  # ignored, unmapped
                for line in lines:
                    udp.sendto(line.encode(), ("127.0.0.1", port))
                if tick % 40 == 0:
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as tcp:
                        tcp.sendall(b"apm.operation:2|ms|#operation:search,outcome:ok\nunterminated:1|c")
                tick += 1
                self.stopping.wait(0.25)

    def _postgres(self) -> None:
        if "pgbouncer" not in self.ports:
            self.stopping.wait()
            return
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.ports['pgbouncer']}/app", autocommit=True,
                             connect_timeout=5) as conn:
            while not self.stopping.is_set():
                conn.execute("INSERT INTO payments (amount) VALUES (%s)", (random.uniform(1, 500),))
                conn.execute("SELECT count(*), sum(amount) FROM payments").fetchone()
                self.stopping.wait(0.2)

    def _redis(self) -> None:
        if "redis" not in self.ports:
            self.stopping.wait()
            return
        import redis

        client = redis.Redis(port=self.ports["redis"])
        try:
            client.xgroup_create("events", "workers", id="0", mkstream=True)
        except redis.ResponseError:
            pass
        n = 0
        while not self.stopping.is_set():
            client.rpush("jobs", *range(random.randint(1, 4)))
            client.lpop("jobs", random.randint(1, 3))
            client.xadd("events", {"n": n}, maxlen=1000)
            if n % 3:
                client.xreadgroup("workers", "w1", {"events": ">"}, count=1)
            n += 1
            self.stopping.wait(0.5)

    def _memcached(self) -> None:
        if "memcached" not in self.ports:
            self.stopping.wait()
            return
        with socket.create_connection(("127.0.0.1", self.ports["memcached"]), timeout=5) as s:
            f = s.makefile("rwb")
            while not self.stopping.is_set():
                key = f"fragment:{random.randint(0, 40)}"
                f.write(f"get {key}\r\n".encode())
                f.flush()
                if f.readline().startswith(b"VALUE"):
                    f.readline()
                    f.readline()
                else:
                    f.write(f"set {key} 0 60 5\r\nhello\r\n".encode())
                    f.flush()
                    f.readline()
                self.stopping.wait(0.1)

    # --- lifecycle -------------------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                sig = signal.SIGINT if name in ("postgres", "pgbouncer") else signal.SIGTERM
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    continue
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9725, help="the daemon's port (default 9725)")
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: Ctrl-C)")
    parser.add_argument("--step", type=float, default=2.0, help="seconds between the status page's samples")
    args = parser.parse_args()
    if listening(args.port):
        print(f"port {args.port} is taken: scripts/demo --port N", file=sys.stderr)
        return 1
    demo = Demo(args.port, args.step)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        started = {name: start() for name, start in (("redis", demo.redis), ("memcached", demo.memcached),
                                                     ("postgres", demo.postgres), ("pgbouncer", demo.pgbouncer))}
        for name, ok in started.items():
            where = f"127.0.0.1:{demo.ports[name]}" if ok else "not installed or did not start (left out)"
            print(f"  {name:<10} {where}", flush=True)
        demo.shop()
        if not demo.daemon():
            print(f"the daemon did not start; its log: {demo.dir / 'daemon.log'}", file=sys.stderr)
            print((demo.dir / "daemon.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            return 1
        urllib.request.urlopen(urllib.request.Request(f"{demo.url}-/reload", method="POST"), timeout=10).read()
        demo.traffic()
        print(f"  statsd     udp+tcp 127.0.0.1:{demo.ports['statsd']}   (shop app: examples/shop.py)", flush=True)
        print(f"  directory  {demo.dir}", flush=True)
        print(f"\nStatus page: {demo.url}\nMetrics:     {demo.url}metrics\n"
              "Ctrl-C stops everything the demo started.", flush=True)
        stop.wait(args.duration or None)
    finally:
        demo.stop()
        print("demo stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
