"""Real Redis, memcached, PostgreSQL, PgBouncer and RabbitMQ servers for tests, on free loopback ports.

Each server is an object with `.port`, `.start()`, `.stop()` (a real stop: the
process exits and the port refuses connections) and a way to talk to it
(`.client()`, `.dsn()`, `.command()`). Fixtures hand them out session-scoped;
fault tests stop and start the shared server and the fixtures put it back up
and reset its statistics before each test that asks for it.

A missing server binary skips the test locally and fails it under CI=true: CI
must never pass by not testing. Install them with
`apt-get install -y --no-install-recommends redis-server memcached postgresql pgbouncer rabbitmq-server`.

Use from a test module (or from tests/conftest.py with
`pytest_plugins = ["tests.support.servers"]`):

    from tests.support.servers import redis_server  # noqa: F401  (a fixture)
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.binaries import require
from tests.support.net import free_port

START_TIMEOUT = 30.0
# Debian keeps initdb and postgres off PATH; the newest major version wins.
_PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)


# --- helpers --------------------------------------------------------------------

def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None,
                  timeout: float = START_TIMEOUT, log: Path | None = None) -> None:
    """Return once 127.0.0.1:port accepts a connection; raise with the server's log if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g}s: {_tail(log)}")


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return "(no log)"
    return log.read_text(errors="replace")[-2000:]


def _service_user() -> pwd.struct_passwd | None:
    """PostgreSQL and PgBouncer refuse root: run them as `postgres` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root and there is no 'postgres' user to run PostgreSQL as")
        raise


def _own(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is None:
        return
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(name, user.pw_uid, user.pw_gid)


def _popen(args: list[str], log: Path, user: pwd.struct_passwd | None = None,
           cwd: Path | None = None) -> subprocess.Popen[bytes]:
    # Dropping privileges in the child (not through runuser) keeps the server itself
    # as our direct child, so stop() signals the real process and can wait for it.
    kwargs: dict[str, Any] = {}
    if user is not None:
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd, start_new_session=True, **kwargs)


class Server:
    """A server process on 127.0.0.1:port that a test can stop and start again."""

    name = "server"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.log = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop_signal = signal.SIGTERM

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command_line(self) -> list[str]:
        raise NotImplementedError

    def user(self) -> pwd.struct_passwd | None:
        return None

    def start(self) -> None:
        """Start (again, on the same port) and return once it accepts connections."""
        if self.running:
            return
        self.proc = _popen(self.command_line(), self.log, self.user(), cwd=self.workdir)
        wait_for_port(self.port, self.proc, log=self.log)
        self.ready()

    def ready(self) -> None:
        """Hook: wait until the server answers requests, not only accepts connections."""

    def stop(self) -> None:
        """Stop the process and wait until it has exited (its port then refuses connections)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(self._stop_signal)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def _tree(self) -> list[int]:
        """The server and every process under it (PostgreSQL's backends call setsid(), so a
        process group does not hold them)."""
        assert self.proc is not None
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                parents[int(entry)] = int(stat.rpartition(")")[2].split()[1])
        tree = [self.proc.pid]
        for pid in tree:
            tree += [child for child, parent in parents.items() if parent == pid]
        return tree

    def _signal_tree(self, sig: signal.Signals) -> None:
        for pid in self._tree():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def pause(self) -> None:
        """SIGSTOP the server and its children: connections are accepted (the kernel's backlog)
        and requests are read by nobody, the way a hung server behaves."""
        assert self.running
        self._signal_tree(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after pause(); harmless when it is not paused or not running."""
        if self.running:
            self._signal_tree(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the server and its children, no shutdown at all; start() brings it back on the same port."""
        if self.proc is None:
            return
        self._signal_tree(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- Redis ------------------------------------------------------------------------

class RedisServer(Server):
    """Redis on 127.0.0.1; `replica_of` makes it a replica of another RedisServer, `tls` serves
    TLS only (a (cert, key) pair; clients are not asked for certificates)."""

    name = "redis"

    def __init__(self, workdir: Path, port: int | None = None, replica_of: RedisServer | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        super().__init__(workdir, port)
        self.replica_of = replica_of
        self.tls = tls

    def command_line(self) -> list[str]:
        listen = ["--port", str(self.port)]
        if self.tls is not None:
            cert, key = self.tls
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                      "--tls-key-file", str(key), "--tls-auth-clients", "no"]
        replica = ["--replicaof", "127.0.0.1", str(self.replica_of.port)] if self.replica_of else []
        return [require("redis-server"), *listen, "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                # DEBUG SLEEP pauses the server: the slow-target tests use it.
                "--enable-debug-command", "local", *replica]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> Any:
        """A synchronous redis-py client (decode_responses=True) for the test to act with."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, **kwargs)

    def ready(self) -> None:
        if self.tls is not None:
            return  # the test's own client speaks TLS; accepting connections is enough here
        with contextlib.closing(self.client()) as client:
            client.ping()

    def wait_in_sync(self, timeout: float = START_TIMEOUT) -> None:
        """On a replica: return once its link is up and it has applied all of its primary's stream."""
        assert self.replica_of is not None
        deadline = time.monotonic() + timeout
        with contextlib.closing(self.client()) as mine, contextlib.closing(self.replica_of.client()) as theirs:
            while True:
                info = mine.info("replication")
                if (info.get("master_link_status") == "up"
                        and info["master_repl_offset"] == theirs.info("replication")["master_repl_offset"]):
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica not in sync after {timeout:g}s: {info}")
                time.sleep(0.05)

    def reset(self) -> None:
        """Empty every database and zero INFO stats (hits, misses, evictions …)."""
        with contextlib.closing(self.client()) as client:
            client.flushall()
            client.config_resetstat()
            client.config_set("maxmemory", 0)


# --- memcached ----------------------------------------------------------------------

class MemcachedServer(Server):
    name = "memcached"

    def __init__(self, workdir: Path, port: int | None = None, memory_mb: int = 64) -> None:
        super().__init__(workdir, port)
        self.memory_mb = memory_mb

    def command_line(self) -> list[str]:
        args = [require("memcached"), "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
                "-m", str(self.memory_mb)]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        return args

    def command(self, line: str, terminators: tuple[bytes, ...] = (b"END\r\n", b"OK\r\n", b"STORED\r\n",
                                                                     b"RESET\r\n", b"DELETED\r\n",
                                                                     b"NOT_FOUND\r\n", b"ERROR\r\n")) -> str:
        """Send one text-protocol command (with its data block if any) and return the reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(line.encode() + (b"" if line.endswith("\r\n") else b"\r\n"))
            data = b""
            while not data.endswith(terminators):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.decode()

    def set(self, key: str, value: str) -> None:
        reply = self.command(f"set {key} 0 0 {len(value.encode())}\r\n{value}\r\n")
        assert reply == "STORED\r\n", reply

    def get(self, key: str) -> str | None:
        reply = self.command(f"get {key}")
        if reply == "END\r\n":
            return None
        return reply.split("\r\n")[1]

    def stats(self) -> dict[str, str]:
        lines = self.command("stats").split("\r\n")
        return {p[1]: p[2] for p in (line.split(" ", 2) for line in lines) if len(p) == 3 and p[0] == "STAT"}

    def reset(self) -> None:
        """Empty and with zeroed stats. flush_all only marks items invalid (curr_items keeps
        counting them until each is touched), so a server that still holds items is restarted."""
        self.command("flush_all")
        if int(self.stats()["curr_items"]):
            self.stop()
            self.start()
        self.command("stats reset")


# --- PostgreSQL -----------------------------------------------------------------------

class PostgresServer(Server):
    """PostgreSQL 15 with pg_stat_statements loaded and created in database `postgres`.

    Trust authentication for the `postgres` role on 127.0.0.1; `password` is set on
    the role too, for tests that need a DSN with a password in it.
    """

    name = "postgres"
    password = "s3cret-pw"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.data = workdir / "data"
        self._stop_signal = signal.SIGINT  # "fast" shutdown: disconnect clients, exit promptly
        self._initdb()

    def user(self) -> pwd.struct_passwd | None:
        return _service_user()

    def _bin(self, name: str) -> str:
        return require(name, *_PG_BIN)

    def _initdb(self) -> None:
        user = self.user()
        _own(self.workdir, user)
        kwargs: dict[str, Any] = {}
        if user is not None:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        subprocess.run(self._init_command(), check=True, capture_output=True, cwd=self.workdir, **kwargs)

    def _init_command(self) -> list[str]:
        return [self._bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                "--no-sync", "-E", "UTF8", "--locale=C"]

    def command_line(self) -> list[str]:
        return [self._bin("postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.workdir}",
                "-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track=all",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=50"]

    def dsn(self, dbname: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> Any:
        """A synchronous psycopg connection in autocommit mode."""
        import psycopg

        return psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=5, **kwargs)

    def ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with self.connect() as conn:
                    self._prepare(conn)
                return
            except Exception:
                # "the database system is starting up" until recovery is done
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @contextlib.contextmanager
    def lock_held(self, key: int = 4242) -> Iterator[str]:
        """Hold advisory lock `key` for the block; yields a statement that waits on it.

        A client running that statement stays `active` (waiting on the lock) until the block
        ends, however long the machine takes to look at it: unlike pg_sleep's fixed window,
        a slow probe on a loaded machine cannot outlast it. The statement's lock is its
        transaction's, so it is gone when the statement returns."""
        with self.connect(application_name="t-lock-holder") as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (key,))
            yield f"SELECT pg_advisory_xact_lock_shared({key})"

    def wait_for_lock_waiters(self, n: int, key: int = 4242, timeout: float = START_TIMEOUT) -> None:
        """Return once `n` sessions wait on advisory lock `key` (lock_held's statement)."""
        deadline = time.monotonic() + timeout
        with self.connect() as conn:
            while True:
                waiting = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                       "AND objid = %s AND NOT granted", (key,)).fetchone()[0]
                if waiting == n:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{waiting} sessions wait on lock {key} after {timeout:g}s, not {n}")
                time.sleep(0.05)

    def _prepare(self, conn: Any) -> None:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute(f"ALTER ROLE postgres PASSWORD '{self.password}'")


class PostgresReplicaServer(PostgresServer):
    """A hot standby of a running PostgresServer: pg_basebackup -R (streaming), cluster_name
    `apm-replica` (its application_name in the primary's pg_stat_replication)."""

    name = "postgres-replica"
    application_name = "apm-replica"

    def __init__(self, workdir: Path, primary: PostgresServer, port: int | None = None) -> None:
        self.primary = primary
        super().__init__(workdir, port)

    def _init_command(self) -> list[str]:
        return [self._bin("pg_basebackup"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.primary.port),
                "-U", "postgres", "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"]

    def command_line(self) -> list[str]:
        return [*super().command_line(), "-c", f"cluster_name={self.application_name}"]

    def _prepare(self, conn: Any) -> None:
        conn.execute("SELECT 1")  # read-only: nothing to create; answering queries is enough

    def wait_replayed(self, timeout: float = START_TIMEOUT) -> None:
        """Return once the replica streams and has replayed all WAL the primary has written so far."""
        with self.primary.connect() as conn:
            # The insert position: with synchronous_commit off, a commit may not be written out yet.
            target = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        with self.connect() as conn:
            while True:
                row = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn, "
                    "EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')", (target,)).fetchone()
                if row[0] and row[1]:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica has not replayed up to {target} after {timeout:g}s")
                time.sleep(0.05)


# --- PgBouncer -----------------------------------------------------------------------

class PgBouncerServer(Server):
    """PgBouncer in front of a PostgresServer: database `app` → postgres, admin console `pgbouncer`."""

    name = "pgbouncer"

    def __init__(self, workdir: Path, postgres: PostgresServer, pool_size: int = 2,
                 pool_mode: str = "session", port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.postgres = postgres
        self.pool_size = pool_size
        self.pool_mode = pool_mode
        self._stop_signal = signal.SIGINT  # immediate shutdown (SIGTERM waits for clients)
        self._write_config()

    def user(self) -> pwd.struct_passwd | None:
        return _service_user()

    def _write_config(self) -> None:
        (self.workdir / "users.txt").write_text('"postgres" ""\n')
        (self.workdir / "pgbouncer.ini").write_text(f"""\
[databases]
app = host=127.0.0.1 port={self.postgres.port} dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.workdir / "users.txt"}
admin_users = postgres
stats_users = postgres
pool_mode = {self.pool_mode}
default_pool_size = {self.pool_size}
max_client_conn = 200
logfile = {self.workdir / "pgbouncer-file.log"}
""")
        _own(self.workdir, self.user())

    def command_line(self) -> list[str]:
        return [require("pgbouncer", "/usr/sbin"), str(self.workdir / "pgbouncer.ini")]

    def dsn(self, dbname: str = "app", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "app", **kwargs: Any) -> Any:
        """A synchronous psycopg connection through the pooler (autocommit)."""
        import psycopg

        if dbname == "pgbouncer":
            kwargs.setdefault("cursor_factory", psycopg.ClientCursor)  # admin console: simple protocol
        return psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=5, **kwargs)

    def show(self, what: str) -> list[dict[str, Any]]:
        """Rows of `SHOW <what>` on the admin console, as dicts."""
        from psycopg.rows import dict_row

        with self.connect("pgbouncer", row_factory=dict_row) as conn:
            return list(conn.execute(f"SHOW {what}").fetchall())



# --- RabbitMQ -----------------------------------------------------------------------------

class RabbitMQServer(Server):
    """RabbitMQ with the management plugin: AMQP on `.port`, the management API on `.api_port`.

    Its own node name, Erlang distribution port, data and cookie (HOME) under the workdir, so
    it runs beside any other node; the epmd daemon Erlang starts on 4369 is shared, as it is
    meant to be. Statistics refresh every 500 ms (5 s by default) so tests wait less.
    """

    name = "rabbitmq"
    user, password = "guest", "guest"  # guest may log in from loopback only, which is where we are

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.api_port = free_port()
        self.dist_port = free_port()
        (workdir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.api_port}\n"
            "collect_statistics_interval = 500\nlog.console = true\nlog.file = false\n")

    def command_line(self) -> list[str]:
        # The server itself, not Debian's /usr/sbin wrapper (which changes to the rabbitmq user
        # and its fixed directories).
        direct = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        return [direct if os.path.exists(direct) else require("rabbitmq-server")]

    def start(self) -> None:
        if self.running:
            return
        env = {**os.environ, "HOME": str(self.workdir), "RABBITMQ_NODENAME": f"apm-test-{self.port}@localhost",
               "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
               "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
               "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq"),
               "RABBITMQ_PID_FILE": str(self.workdir / "rabbitmq.pid")}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command_line(), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir, env=env, start_new_session=True)
        wait_for_port(self.api_port, self.proc, timeout=120, log=self.log)
        self.ready()

    def ready(self) -> None:
        deadline = time.monotonic() + 120
        while True:
            try:
                self.api("/api/overview")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM reaches the launcher script's Erlang VM through the session; wait for the group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    @property
    def url(self) -> str:
        """The management API with credentials, as the probe's `url`."""
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.api_port}"

    def api(self, path: str) -> Any:
        """GET a management API path, decoded from JSON."""
        import base64
        import json
        import urllib.request

        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}",
                                         headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.load(reply)

    def channel(self) -> tuple[Any, Any]:
        """(connection, channel) of a pika BlockingConnection for the test to publish and consume with."""
        import pika

        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.port))
        return conn, conn.channel()


# --- a socket that accepts and never answers ----------------------------------------------

class BlackHole:
    """A listening socket that accepts connections and never sends a byte: the slow target."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self._accepted: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="blackhole", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        return len(self._accepted)

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._accepted.append(conn)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        for conn in self._accepted:
            conn.close()
        self._sock.close()


# --- fixtures ---------------------------------------------------------------------------

def workdir(prefix: str) -> Path:
    # Not pytest's tmp_path: PostgreSQL (as user postgres) must traverse every parent.
    path = Path(tempfile.mkdtemp(prefix=f"apm-{prefix}-"))
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def _redis_session() -> Iterator[RedisServer]:
    require("redis-server")
    with running(RedisServer(workdir("redis"))) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def redis_server(_redis_session: RedisServer) -> RedisServer:
    """The session's Redis, running, empty, with zeroed stats."""
    _redis_session.start()
    _redis_session.reset()
    return _redis_session


@pytest.fixture(scope="session")
def _redis_replica_session(_redis_session: RedisServer) -> Iterator[RedisServer]:
    with running(RedisServer(workdir("redis-replica"), replica_of=_redis_session)) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def redis_replica(redis_server: RedisServer, _redis_replica_session: RedisServer) -> RedisServer:
    """A second Redis replicating from `redis_server`, running and in sync with it."""
    _redis_replica_session.start()
    _redis_replica_session.wait_in_sync()
    return _redis_replica_session


@pytest.fixture(scope="session")
def _memcached_session() -> Iterator[MemcachedServer]:
    require("memcached")
    with running(MemcachedServer(workdir("memcached"))) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def memcached_server(_memcached_session: MemcachedServer) -> MemcachedServer:
    """The session's memcached, running, empty, with zeroed stats."""
    _memcached_session.start()
    _memcached_session.reset()
    return _memcached_session


@pytest.fixture(scope="session")
def _postgres_session() -> Iterator[PostgresServer]:
    require("postgres", *_PG_BIN)
    with running(PostgresServer(workdir("postgres"))) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def postgres_server(_postgres_session: PostgresServer) -> PostgresServer:
    """The session's PostgreSQL (15, pg_stat_statements created in `postgres`), running."""
    _postgres_session.start()
    return _postgres_session


@pytest.fixture(scope="session")
def _postgres_replica_session(_postgres_session: PostgresServer) -> Iterator[PostgresReplicaServer]:
    _postgres_session.start()
    with running(PostgresReplicaServer(workdir("postgres-replica"), _postgres_session)) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def postgres_replica(postgres_server: PostgresServer,
                     _postgres_replica_session: PostgresReplicaServer) -> PostgresReplicaServer:
    """A hot standby of `postgres_server` (pg_basebackup -R), streaming from it."""
    _postgres_replica_session.start()
    return _postgres_replica_session


@pytest.fixture(scope="session")
def _pgbouncer_session(_postgres_session: PostgresServer) -> Iterator[PgBouncerServer]:
    require("pgbouncer", "/usr/sbin")
    with running(PgBouncerServer(workdir("pgbouncer"), _postgres_session, pool_size=2)) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def pgbouncer_server(_pgbouncer_session: PgBouncerServer) -> PgBouncerServer:
    """The session's PgBouncer (session pooling, default_pool_size 2, database `app`), running."""
    _pgbouncer_session.postgres.start()
    _pgbouncer_session.start()
    return _pgbouncer_session


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitMQServer]:
    """One RabbitMQ (management plugin on) for the session: about 10 s to start."""
    require("rabbitmq-server", "/usr/lib/rabbitmq/bin", "/usr/sbin")
    with running(RabbitMQServer(workdir("rabbitmq"))) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    """A port that accepts connections and never answers."""
    hole = BlackHole()
    yield hole
    hole.close()


# --- a filesystem whose statfs hangs -----------------------------------------------------------

class FuseFilesystem:
    """A FUSE filesystem served from this process over /dev/fuse (the kernel protocol, no libfuse).

    statfs answers with fixed figures (BLOCKS blocks of BLOCK_SIZE bytes, FREE free), or, while
    `hanging` is set, is held unanswered, the way a dead NFS server leaves a statfs. Where it is
    mounted is up to the caller: `mount_in_namespace_script()` mounts it, from an fd received
    over a unix socket, in a private mount namespace, so nothing else on the machine stats it.
    """

    BLOCKS, FREE, BLOCK_SIZE = 1000, 250, 4096

    def __init__(self, name: str, hang: bool = False) -> None:
        self.name = name
        self.fd = os.open("/dev/fuse", os.O_RDWR)
        self.statfs_calls = 0
        self.hanging = threading.Event()
        if hang:
            self.hanging.set()
        self._held: list[int] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, name=f"fuse-{name}", daemon=True).start()

    def release(self) -> None:
        """Answer every held statfs and stop holding new ones."""
        with self._lock:
            self.hanging.clear()
            held, self._held = self._held, []
        for unique in held:
            self._statfs_reply(unique)

    def _reply(self, unique: int, body: bytes = b"", error: int = 0) -> None:
        import struct

        try:
            os.write(self.fd, struct.pack("<IiQ", 16 + len(body), -error, unique) + body)
        except OSError:  # the requester gave up (interrupted) or the mount is gone
            pass

    def _statfs_reply(self, unique: int) -> None:
        import struct

        self._reply(unique, struct.pack("<QQQQQIIII24x", self.BLOCKS, self.FREE, self.FREE, 100, 50,
                                        self.BLOCK_SIZE, 255, self.BLOCK_SIZE, 0))

    def _serve(self) -> None:
        import errno
        import struct

        while True:
            try:
                data = os.read(self.fd, 1 << 20)
            except OSError as err:
                if err.errno == errno.EPERM:  # not mounted yet
                    time.sleep(0.01)
                    continue
                return  # ENODEV once unmounted: the filesystem is gone
            _, opcode, unique = struct.unpack_from("<IIQ", data)
            if opcode == 26:  # INIT: protocol 7.x, whatever minor the kernel speaks up to 31
                minor = min(struct.unpack_from("<II", data, 40)[1], 31)
                self._reply(unique, struct.pack("<IIIIHHIIHHI28x", 7, minor, 65536, 0, 16, 12, 65536, 1, 1, 0, 0))
            elif opcode == 17:  # STATFS
                with self._lock:
                    self.statfs_calls += 1
                    if self.hanging.is_set():
                        self._held.append(unique)
                        continue
                self._statfs_reply(unique)
            elif opcode == 3:  # GETATTR of the root: a directory
                attr = struct.pack("<QQQQQQIIIIIIIIII", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0o40755, 2, 0, 0, 0, 4096, 0)
                self._reply(unique, struct.pack("<QII", 0, 0, 0) + attr)
            elif opcode in (36, 38):  # INTERRUPT, DESTROY: no reply
                continue
            else:
                self._reply(unique, error=errno.ENOSYS)


_MOUNT_AND_EXEC = """\
import ctypes, json, os, socket, sys
libc = ctypes.CDLL("libc.so.6", use_errno=True)
for path, point, name in json.loads(sys.argv[1]):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        fd = socket.recv_fds(s, 1, 1)[1][0]
    options = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
    if libc.mount(name.encode(), point.encode(), f"fuse.{name}".encode(), 0, options) != 0:
        raise OSError(ctypes.get_errno(), f"mount {point}")
    os.close(fd)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def fuse_namespace_wrapper(folder: Path, mounts: dict[Path, FuseFilesystem], program: str) -> Path:
    """An executable `folder/<program's name>` that runs `program` as pid 1 of its own pid and
    mount namespaces, with each FuseFilesystem mounted at its path there (and nowhere else).

    Each filesystem's fd is handed over once through a unix socket this process serves.
    """
    import json
    import stat

    unshare = require("unshare")
    handoffs = []
    for point, fs in mounts.items():
        path = str(folder / f"{fs.name}.sock")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(1)

        def hand_over(server: socket.socket = server, fd: int = fs.fd) -> None:
            with server:
                conn, _ = server.accept()
                with conn:
                    socket.send_fds(conn, [b"f"], [fd])

        threading.Thread(target=hand_over, daemon=True).start()
        handoffs.append((path, str(point), fs.name))
    helper = folder / "mount_and_exec.py"
    helper.write_text(_MOUNT_AND_EXEC)
    wrapper = folder / os.path.basename(program)
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec {unshare} --mount --pid --fork --kill-child=SIGTERM --mount-proc --propagation private "
        f"{sys.executable} {helper} '{json.dumps(handoffs)}' {program} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper
