"""The whole platform on one machine, as separate OS processes.

    with Stack(StackConfig(state_dir=tmp, api_port=0, fast_storage=True)) as stack:
        httpx.get(f"{stack.api_url}/healthz")
        stack.restart_service("scheduler")

Start order: NATS, PostgreSQL, kubesim (each skipped when `NATS_URL`, `DATABASE_URL` or
`KUBECONFIG` points at an existing one), the bus bootstrap (`python -m fairway_bus.bootstrap`,
once), then the five services (`python -m fairway_<name>`). `start()` returns when the API's
`/healthz` answers 200, which submission does only once all five services are ready. `stop()`
goes the other way: services, kubesim, then the servers. In between, `supervise()` (called in
a loop by `fairway up`) restarts whatever crashed, with back-off.

Files under the state directory (default `.fairway/`):

    nats/  postgres/          embedded server data (kept between runs)
    kubeconfig                written by kubesim
    logs/<name>.log           stdout+stderr of every process, appended
    logs/supervisor.log       what the supervisor saw and did (crashes, restarts)
    kubesim/cluster.json      kubesim's cluster (nodes, namespaces, pods, leases)
    stack.json                what runs where (pids, ports, URLs) while the stack runs; 0600
    admin-token               written by submission (the bootstrap administrator's token)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from fairway_devstack._process import (
    ManagedProcess,
    ProcessExited,
    pid_alive,
    start_ticks,
    stop_all,
    terminate_pid,
    wait_until,
)
from fairway_devstack._supervision import RestartPolicy, RestartTracker
from fairway_devstack.servers import (
    LOCALHOST,
    EmbeddedNats,
    EmbeddedNatsCluster,
    EmbeddedPostgres,
    ServerError,
    free_port,
    port_in_use,
)

__all__ = [
    "SERVICES", "RestartPolicy", "Stack", "StackConfig", "StackError", "SupervisionEvent",
    "read_stack_info",
]

SERVICES = ("submission", "policy", "scheduler", "lifecycle", "metrics")
"""The five services, in start order; each runs as `python -m fairway_<name>`."""

API_SERVICE = "submission"
STACK_FILE = "stack.json"
KUBESIM_SNAPSHOT = Path("kubesim", "cluster.json")
# Variables we set for every child; inherited values of these are never passed on.
_MANAGED_ENV = (
    "FAIRWAY_API_PORT",
    "FAIRWAY_HTTP_PORT",
    "FAIRWAY_STATE_DIR",
)


class StackError(RuntimeError):
    """The stack could not start (the message names the process and quotes its log)."""


@dataclass(frozen=True)
class SupervisionEvent:
    """Something `Stack.supervise()` saw or did: a crash (with its exit status), a restart."""

    process: str
    text: str
    loud: bool = False
    """A crash loop: the process keeps crashing; it is still restarted at the back-off cap."""


@dataclass
class StackConfig:
    """What to run and where. `StackConfig.from_env()` fills it from the environment."""

    state_dir: Path = Path(".fairway")
    api_port: int = 8080
    """Port of the public API (submission); 0 picks a free port."""
    nats_url: str | None = None
    """An existing NATS (with JetStream) to use instead of starting one."""
    nats_replicas: int = 1
    """Embedded NATS servers: 1, or 3 or 5 forming one JetStream cluster whose every stream
    keeps that many copies (FAIRWAY_NATS_REPLICAS), so the loss of a server loses nothing."""
    database_url: str | None = None
    """An existing PostgreSQL database to use instead of starting one."""
    kubeconfig: str | None = None
    """An existing cluster's kubeconfig to use instead of starting kubesim."""
    kubesim_profile: str | None = None
    """kubesim's `--profile`; None means `fairway_kubesim.profiles.DEFAULT_PROFILE`."""
    kubesim_args: tuple[str, ...] = ()
    """Extra command-line arguments for kubesim."""
    kubesim_default_scheduler: bool = True
    """kubesim plays kube-scheduler for `default-scheduler` pods (`--default-scheduler`), so a
    pod another scheduler places holds its GPUs as on a cluster
    (FAIRWAY_KUBESIM_DEFAULT_SCHEDULER=false: such pods stay unbound)."""
    kubesim_snapshot: bool = True
    """kubesim keeps its cluster in `kubesim/cluster.json` in the state directory, so a
    restart of kubesim or of the whole stack keeps pods, nodes, namespaces and leases."""
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    """How `Stack.supervise()` backs off restarting a crashed process."""
    services: tuple[str, ...] = SERVICES
    replicas: Mapping[str, int] = field(default_factory=dict)
    """Processes per service (FAIRWAY_REPLICAS, e.g. `submission=2,policy=2,scheduler=2`); 1
    when not given. The first is named after its service, the others `<service>-2` …; the
    first submission serves the API port, the others their own ports. Schedulers beyond one
    stand by for the leader's Lease. lifecycle replicas split the workloads by shards (each
    holds the Leases of some, FAIRWAY_LIFECYCLE_SHARDING); metrics replicas share the events
    and each reads the whole projection from the tables (FAIRWAY_METRICS_REFRESH_SECONDS)."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for every child process (kubesim, bootstrap, services); wins over ours."""
    fast_storage: bool = False
    """Embedded PostgreSQL without fsync: for tests, a crash can lose data."""
    startup_timeout: float = 120.0
    stop_timeout: float = 15.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> StackConfig:
        """Read FAIRWAY_STATE_DIR, FAIRWAY_API_PORT, NATS_URL, FAIRWAY_NATS_REPLICAS,
        DATABASE_URL, KUBECONFIG, FAIRWAY_KUBESIM_PROFILE and
        FAIRWAY_KUBESIM_DEFAULT_SCHEDULER; keyword arguments override them."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if state_dir := env.get("FAIRWAY_STATE_DIR"):
            values["state_dir"] = Path(state_dir)
        if api_port := env.get("FAIRWAY_API_PORT"):
            try:
                values["api_port"] = int(api_port)
            except ValueError:
                raise StackError(f"FAIRWAY_API_PORT is not a port number: {api_port!r}") from None
        if replicas := env.get("FAIRWAY_REPLICAS"):
            values["replicas"] = parse_replicas(replicas)
        if replicas := env.get("FAIRWAY_NATS_REPLICAS"):
            values["nats_replicas"] = _nats_replicas(replicas)
        if stand_in := env.get("FAIRWAY_KUBESIM_DEFAULT_SCHEDULER"):
            if stand_in.strip().lower() not in ("true", "false", "1", "0"):
                raise StackError("FAIRWAY_KUBESIM_DEFAULT_SCHEDULER must be true or false, not "
                                 f"{stand_in!r}")
            values["kubesim_default_scheduler"] = stand_in.strip().lower() in ("true", "1")
        for key, name in [
            ("nats_url", "NATS_URL"),
            ("database_url", "DATABASE_URL"),
            ("kubeconfig", "KUBECONFIG"),
            ("kubesim_profile", "FAIRWAY_KUBESIM_PROFILE"),
        ]:
            if value := env.get(name):
                values[key] = value
        return cls(**(values | overrides))


# What a service's replicas need beyond the shared settings to run side by side: lifecycle
# shards the workloads (Leases), metrics reads its projection from the tables (each replica
# applies only part of the events).
REPLICATED_ENV: dict[str, dict[str, str]] = {
    "lifecycle": {"FAIRWAY_LIFECYCLE_SHARDING": "true"},
    "metrics": {"FAIRWAY_METRICS_REFRESH_SECONDS": "1"},
}


def parse_replicas(value: str) -> dict[str, int]:
    replicas: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, _, count = part.partition("=")
        name = name.strip()
        if name not in SERVICES:
            raise StackError(f"FAIRWAY_REPLICAS: {name!r} is not a service (one of "
                             f"{', '.join(SERVICES)})")
        if not count.strip().isdigit() or not 1 <= int(count) <= 9:
            raise StackError(f"FAIRWAY_REPLICAS: {name}={count.strip()!r}: a count from 1 to 9")
        replicas[name] = int(count)
    return replicas


def service_of(process: str) -> str:
    """The service a process runs: `submission-2` runs submission."""
    name, _, number = process.rpartition("-")
    return name if name in SERVICES and number.isdigit() else process


def _nats_replicas(value: str) -> int:
    if value.strip() not in ("1", "3", "5"):
        raise StackError(
            f"FAIRWAY_NATS_REPLICAS must be 1, 3 or 5 (a JetStream cluster needs a majority of "
            f"its servers to keep a stream), not {value!r}")
    return int(value)


def _default_kubesim_profile() -> str | None:
    try:
        from fairway_kubesim.profiles import DEFAULT_PROFILE  # type: ignore[import-not-found]
    except ImportError:
        return None  # kubesim then uses its own default
    return str(DEFAULT_PROFILE)


def _http_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        with httpx.Client(trust_env=False, timeout=timeout, verify=False) as client:
            return client.get(url).status_code
    except httpx.HTTPError:
        return None


def _kube_server(kubeconfig: Path) -> str | None:
    """The API server URL of the current context of a kubeconfig (None if not readable yet)."""
    try:
        doc = yaml.safe_load(kubeconfig.read_text())
        clusters = {c["name"]: c["cluster"] for c in doc["clusters"]}
        contexts = {c["name"]: c["context"] for c in doc.get("contexts") or []}
        current = contexts.get(doc.get("current-context") or "")
        cluster = clusters[current["cluster"]] if current else next(iter(clusters.values()))
        return str(cluster["server"]).rstrip("/")
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration, AttributeError):
        return None


def read_stack_info(state_dir: Path = Path(".fairway")) -> dict[str, Any] | None:
    """The contents of `state_dir/stack.json` when the stack that wrote it is still running
    (its owner process is alive), else None. Keys: state, pid, started_at, state_dir, logs_dir,
    api_url, nats_url, database_url, kubeconfig, admin_token_file, processes (name → pid, port,
    url, log, …)."""
    try:
        info = json.loads((Path(state_dir) / STACK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if _owner_alive(info) else None


def _owner_alive(info: Mapping[str, Any]) -> bool:
    pid = info.get("pid")
    return isinstance(pid, int) and pid_alive(pid) and start_ticks(pid) == info.get("pid_ticks")


class Stack:
    """Starts NATS, PostgreSQL, kubesim, the bus bootstrap and the five services; stops them.

    A context manager (`start()` on enter, `stop()` on exit). Every child runs in its own
    process group with stdin closed, so it works under pytest and without a terminal.
    `progress`, if given, is called with a line of text after each step.
    """

    def __init__(
        self,
        config: StackConfig | None = None,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config if config is not None else StackConfig.from_env()
        self.state_dir = Path(self.config.state_dir).absolute()
        self.logs_dir = self.state_dir / "logs"
        self.admin_token_file = self.state_dir / "admin-token"
        self._progress = progress or (lambda _line: None)
        self._instance = uuid.uuid4().hex
        self._started_at: str | None = None
        self._nats: list[EmbeddedNats] = []  # one server, or the members of a cluster
        self._postgres: EmbeddedPostgres | None = None
        self._kubesim: ManagedProcess | None = None
        self._kubesim_port: int | None = None
        self._services: dict[str, ManagedProcess] = {}
        self._ports: dict[str, int] = {}
        self._trackers: dict[str, RestartTracker] = {}
        self._held_down: set[str] = set()  # stopped on purpose (kill_service): not healed
        self.nats_url: str | None = None
        self.database_url: str | None = None
        self.kubeconfig: str | None = None
        self.api_port: int | None = None

    # ---------------------------------------------------------------------------- public API

    @property
    def api_url(self) -> str:
        """`http://127.0.0.1:API_PORT`."""
        return f"http://{LOCALHOST}:{self.api_port}"

    def service_url(self, name: str) -> str:
        """Base URL of a service's /healthz, /readyz and /metrics (the API for submission)."""
        return f"http://{LOCALHOST}:{self._ports[name]}"

    def log_path(self, name: str) -> Path:
        """`logs/<name>.log` for a service, kubesim, bootstrap, nats or postgres."""
        return self.logs_dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        """The pid of a running service (or "kubesim"), None when it is not running."""
        proc = self._kubesim if name == "kubesim" else self._services.get(name)
        return proc.pid if proc is not None and proc.alive() else None

    def processes(self) -> list[str]:
        """Every service process by name, in start order: `submission`, `submission-2`, …"""
        return [name if i == 1 else f"{name}-{i}"
                for name in self.config.services
                for i in range(1, self.config.replicas.get(name, 1) + 1)]

    def start(self) -> Self:
        """Start everything and wait until the API is healthy; on failure stop what started
        and raise StackError."""
        if self._services:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        self._claim_state_dir()
        self._started_at = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            self.api_port = self._choose_api_port()
            self._write_info("starting")  # from now on a second stack here is refused
            self._start_nats()
            self._start_postgres()
            self._start_kubesim()
            self._write_info("starting")
            self._bootstrap_bus()
            for name in self.processes():
                self._start_service(name)
            self._write_info("starting")
            self.wait_ready(self.config.startup_timeout)
            self._trackers.clear()
            self._write_info("running")
            self._progress(
                f"API          {self.api_url} (all {len(self._services)} services ready)"
            )
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every service's /readyz and the API's /healthz (which submission answers
        with 200 only once all five services are ready) answer 200. StackError names the process
        that exited or, on timeout, the services that are not ready, with their logs' tails."""
        urls = [
            f"{self.service_url(name)}/readyz" for name in self._services if name != API_SERVICE
        ]
        if API_SERVICE in self._services:
            urls.append(f"{self.api_url}/healthz")
        try:
            wait_until(
                lambda: all(_http_status(url) == 200 for url in urls),
                timeout=timeout,
                what="the services to be ready (" + ", ".join(urls) + ")",
                watch=self._watched(),
                interval=0.2,
            )
        except ProcessExited as exc:
            raise StackError(str(exc)) from None
        except TimeoutError as exc:
            raise StackError(f"{exc}\n{self._readiness_report()}") from None

    def check_processes(self) -> None:
        """Raise StackError if kubesim or a service has exited (`supervise` restarts it
        instead)."""
        try:
            for proc in self._watched():
                proc.check_running()
        except ProcessExited as exc:
            raise StackError(str(exc)) from None

    def supervise(self, now: float | None = None) -> list[SupervisionEvent]:
        """One round of supervision, for a loop that calls it every fraction of a second: a
        crashed service, NATS, PostgreSQL or kubesim is restarted (same ports, data and
        environment) after an exponential back-off, without waiting for it to be ready;
        a crash or failed restart is reported on the next round. kubesim is restarted only when
        it crashed itself, so it keeps its cluster while services come and go. Processes
        stopped with `kill_service` stay down. Returns what it saw and did; each event is also
        appended to logs/supervisor.log."""
        now = time.monotonic() if now is None else now
        events: list[SupervisionEvent] = []
        for name, proc in self._supervised():
            if name in self._held_down:
                continue
            tracker = self._trackers.setdefault(
                name, RestartTracker(self.config.restart_policy, started_at=now)
            )
            if tracker.restart_at is None and not proc.alive():
                delay = tracker.crashed(now)
                events.append(self._crash_event(name, proc, tracker, delay))
            if tracker.due(now):
                events.append(self._restart_crashed(name, tracker, now))
        if events:
            self._log_supervision(events)
            self._write_info("running")
        return events

    def restart_service(self, name: str, *, timeout: float = 60.0) -> None:
        """Stop a service (SIGTERM, then SIGKILL) if it runs, start it again on the same port
        with the same environment, and wait until its /readyz answers 200 and, when no other
        service is down, until the whole stack is ready again (`wait_ready`)."""
        self._require_service(name)
        proc = self._services.get(name)
        if proc is not None:
            proc.stop(self.config.stop_timeout)
        self._held_down.discard(name)
        self._trackers.pop(name, None)
        self._start_service(name)
        self._write_info("running")
        try:
            wait_until(
                lambda: _http_status(f"{self.service_url(name)}/readyz") == 200,
                timeout=timeout,
                what=f"{name} /readyz to answer 200",
                watch=[self._services[name]],
                interval=0.1,
            )
        except ProcessExited as exc:
            raise StackError(str(exc)) from None
        except TimeoutError as exc:
            raise StackError(f"{exc}\n{self._services[name].exit_report()}") from None
        if all(p.alive() for p in self._watched()):
            self.wait_ready(timeout)

    def kill_service(self, name: str, sig: int = signal.SIGKILL) -> int | None:
        """Send `sig` (default SIGKILL) to a service's process group and wait for it to exit
        (SIGKILL after the stop timeout); returns its exit code. It stays down until
        `restart_service(name)`."""
        self._require_service(name)
        self._held_down.add(name)
        return self._services[name].stop(self.config.stop_timeout, sig)

    def stop(self) -> None:
        """Stop services (SIGTERM, together), then kubesim, then PostgreSQL and NATS; SIGKILL
        whatever does not exit within the stop timeout. Safe to call more than once."""
        timeout = self.config.stop_timeout
        stop_all(list(reversed(self._services.values())), timeout)
        self._services.clear()
        if self._kubesim is not None:
            self._kubesim.stop(timeout)
            self._kubesim = None
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None
        for server in self._nats:
            server.stop(timeout)
        self._nats = []
        self._release_state_dir()

    def info(self) -> dict[str, Any]:
        """What stack.json holds: URLs, ports, pids and log paths."""
        processes: dict[str, dict[str, Any]] = {}
        for name, server in self._nats_servers():
            processes[name] = {
                "pid": server.pid, "port": server.port, "url": server.url,
                "monitor_url": server.monitor_url, "log": str(server.log_path),
                "data_dir": str(server.data_dir),
            }  # fmt: skip
        if self._postgres is not None:
            processes["postgres"] = {
                "pid": self._postgres.pid, "port": self._postgres.port,
                "url": self._postgres.url, "log": str(self._postgres.log_path),
                "data_dir": str(self._postgres.data_dir),
            }  # fmt: skip
        managed = ([("kubesim", self._kubesim)] if self._kubesim else []) + list(
            self._services.items()
        )
        for name, proc in managed:
            port = self._kubesim_port if name == "kubesim" else self._ports[name]
            processes[name] = {
                "pid": proc.pid, "pid_ticks": start_ticks(proc.pid) if proc.pid else None,
                "port": port, "url": f"http://{LOCALHOST}:{port}", "log": str(proc.log_path),
            }  # fmt: skip
        return {
            "state": "stopped",
            "pid": os.getpid(),
            "pid_ticks": start_ticks(os.getpid()),
            "instance": self._instance,
            "started_at": self._started_at,
            "state_dir": str(self.state_dir),
            "logs_dir": str(self.logs_dir),
            "api_url": self.api_url if self.api_port else None,
            "nats_url": self.nats_url,
            "database_url": self.database_url,
            "kubeconfig": self.kubeconfig,
            "admin_token_file": str(self.admin_token_file),
            "processes": processes,
        }

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------- steps

    def _choose_api_port(self) -> int:
        port = self.config.api_port
        if port == 0:
            return free_port()
        if port_in_use(port):
            raise StackError(
                f"port {port} for the API is already in use; stop what uses it or choose "
                "another port with FAIRWAY_API_PORT"
            )
        return port

    def _start_nats(self) -> None:
        if self.config.nats_url:
            self.nats_url = self.config.nats_url
            self._progress(f"NATS         {self.nats_url} (external, from NATS_URL)")
            return
        replicas = self.config.nats_replicas
        if replicas == 1:
            nats = EmbeddedNats(self.state_dir / "nats", log_path=self.log_path("nats"))
            self._nats = [nats]
            try:
                nats.start()
            except ServerError as exc:
                raise StackError(str(exc)) from None
            self.nats_url = nats.url
            self._progress(f"NATS         {nats.url} (JetStream, data {nats.data_dir})")
            return
        # A cluster keeps its own data: a single server's streams do not become a cluster's.
        cluster = EmbeddedNatsCluster(self.state_dir / "nats" / f"cluster-{replicas}", replicas,
                                      log_dir=self.logs_dir,
                                      startup_timeout=self.config.startup_timeout)
        self._nats = cluster.servers
        try:
            cluster.start()
        except ServerError as exc:
            raise StackError(str(exc)) from None
        self.nats_url = cluster.url
        self._progress(f"NATS         {replicas} servers, one JetStream cluster, every stream "
                       f"{replicas} copies ({cluster.url}; data {cluster.data_dir})")

    def _start_postgres(self) -> None:
        if self.config.database_url:
            self.database_url = self.config.database_url
            self._progress("PostgreSQL   external, from DATABASE_URL")
            return
        pg = EmbeddedPostgres(
            self.state_dir / "postgres",
            log_path=self.log_path("postgres"),
            fast=self.config.fast_storage,
        )
        self._postgres = pg
        try:
            pg.start()
        except ServerError as exc:
            raise StackError(str(exc)) from None
        self.database_url = pg.url
        self._progress(f"PostgreSQL   {pg.url} (data {pg.data_dir})")

    def _start_kubesim(self) -> None:
        if self.config.kubeconfig:
            self.kubeconfig = self.config.kubeconfig
            self._progress(f"Kubernetes   {self.kubeconfig} (external, from KUBECONFIG)")
            return
        kubeconfig = self.state_dir / "kubeconfig"
        kubeconfig.unlink(missing_ok=True)  # so we wait for the new one, not last run's
        self.kubeconfig = str(kubeconfig)
        self._kubesim_port = free_port()
        profile = self.config.kubesim_profile or _default_kubesim_profile()
        proc = self._spawn_kubesim()

        def ready() -> bool:
            server = _kube_server(kubeconfig) if kubeconfig.exists() else None
            return server is not None and _http_status(f"{server}/readyz") == 200

        try:
            wait_until(
                ready,
                timeout=self.config.startup_timeout,
                what=f"kubesim to write {kubeconfig} and answer /readyz",
                watch=[proc],
                interval=0.1,
            )
        except ProcessExited as exc:
            raise StackError(str(exc)) from None
        except TimeoutError as exc:
            raise StackError(f"{exc}\n{proc.exit_report()}") from None
        self._progress(
            f"Kubernetes   kubesim {_kube_server(kubeconfig)} (kubeconfig {kubeconfig}"
            + (f", profile {profile})" if profile else ")")
        )

    def _spawn_kubesim(self) -> ManagedProcess:
        """kubesim on its port (the same after a restart: the services' kubeconfig stays
        true), with its snapshot file when the configuration keeps the cluster."""
        profile = self.config.kubesim_profile or _default_kubesim_profile()
        argv = [sys.executable, "-m", "fairway_kubesim"]
        argv += ["--profile", profile] if profile else []
        argv += ["--kubeconfig", str(self.kubeconfig), "--port", str(self._kubesim_port)]
        if self.config.kubesim_snapshot:
            argv += ["--snapshot", str(self.state_dir / KUBESIM_SNAPSHOT)]
        if self.config.kubesim_default_scheduler:
            argv.append("--default-scheduler")
        argv += list(self.config.kubesim_args)
        proc = ManagedProcess("kubesim", argv, self.log_path("kubesim"), env=self._env()).start()
        self._kubesim = proc
        return proc

    def _bootstrap_bus(self) -> None:
        """Create streams and consumers once, before any service starts."""
        argv = [sys.executable, "-m", "fairway_bus.bootstrap"]
        proc = ManagedProcess("bus bootstrap", argv, self.log_path("bootstrap"), env=self._env())
        proc.start()
        if not proc.wait(self.config.startup_timeout):
            proc.kill()
            raise StackError(
                f"bus bootstrap did not finish within {self.config.startup_timeout:.0f}s\n"
                + proc.exit_report()
            )
        if proc.returncode != 0:
            raise StackError(proc.exit_report())
        self._progress("Bus          streams and consumers in place (fairway_bus.bootstrap)")

    def _start_service(self, name: str) -> None:
        if name not in self._ports:
            assert self.api_port is not None
            self._ports[name] = self.api_port if name == API_SERVICE else free_port()
        port = self._ports[name]
        env = {"FAIRWAY_HTTP_PORT": str(port)}
        service = service_of(name)
        if service == API_SERVICE:  # every replica of the API serves it on its own port
            env["FAIRWAY_API_PORT"] = str(port)
        if self.config.replicas.get(service, 1) > 1:
            env |= REPLICATED_ENV.get(service, {})
        argv = [sys.executable, "-m", f"fairway_{service}"]
        self._services[name] = ManagedProcess(
            name, argv, self.log_path(name), env=self._env(env)
        ).start()

    # --------------------------------------------------------------------------- internals

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The caller's environment (OTEL_* and all) plus the endpoints of the stack."""
        env = {k: v for k, v in os.environ.items() if k not in _MANAGED_ENV}
        endpoints = {
            "NATS_URL": self.nats_url,
            "FAIRWAY_STREAM_REPLICAS": (str(self.config.nats_replicas)
                                        if self.config.nats_replicas > 1 else None),
            "DATABASE_URL": self.database_url,
            "KUBECONFIG": self.kubeconfig,
        }
        env |= {k: v for k, v in endpoints.items() if v is not None}
        if self._kubesim_port is not None:
            # kubesim simulates inference servers' load: lifecycle's autoscaler reads it there.
            env["FAIRWAY_LIFECYCLE_SERVING_METRICS_URL"] = (
                f"http://127.0.0.1:{self._kubesim_port}/metrics/serving")
        env |= {"FAIRWAY_STATE_DIR": str(self.state_dir), "PYTHONUNBUFFERED": "1"}
        env |= dict(extra or {})
        return env | self.config.env

    def _supervised(self) -> list[tuple[str, ManagedProcess]]:
        """What `supervise` looks after, servers first: a service restarted before its broker
        would only crash again."""
        found: list[tuple[str, ManagedProcess | None]] = [
            *((name, server.process) for name, server in self._nats_servers()),
            ("postgres", self._postgres.process if self._postgres else None),
            ("kubesim", self._kubesim),
            *self._services.items(),
        ]
        return [(name, proc) for name, proc in found if proc is not None]

    def _nats_servers(self) -> list[tuple[str, EmbeddedNats]]:
        """(name, server): "nats" alone, or "nats-1" … "nats-N" in a cluster."""
        if len(self._nats) == 1:
            return [("nats", self._nats[0])]
        return [(f"nats-{i}", server) for i, server in enumerate(self._nats, 1)]

    def _crash_event(
        self, name: str, proc: ManagedProcess, tracker: RestartTracker, delay: float
    ) -> SupervisionEvent:
        status = proc.exit_report(0).split(" (log:")[0]  # "policy was killed by signal …"
        text = f"{status}; restarting in {delay:g}s (log: {proc.log_path})"
        if not tracker.crash_looping:
            return SupervisionEvent(name, text)
        window = tracker.policy.crash_loop_window
        return SupervisionEvent(
            name,
            f"{text}\n{name} KEEPS CRASHING: {len(tracker.crashes)} times in the last "
            f"{window / 60:g} minutes; still retried every {delay:g}s. Its last lines:\n"
            + proc.output(15),
            loud=True,
        )

    def _restart_crashed(self, name: str, tracker: RestartTracker, now: float) -> SupervisionEvent:
        try:
            if (server := dict(self._nats_servers()).get(name)) is not None:
                server.restart()
            elif name == "postgres" and self._postgres is not None:
                self._postgres.restart()
            elif name == "kubesim":
                self._spawn_kubesim()
            else:
                self._start_service(name)
        except ServerError as exc:
            delay = tracker.restart_failed(now)
            return SupervisionEvent(
                name, f"{name} did not restart; trying again in {delay:g}s: {exc}",
                loud=tracker.crash_looping,
            )  # fmt: skip
        tracker.restarted(now)
        proc = dict(self._supervised())[name]
        text = f"{name} restarted (pid {proc.pid}, restart {tracker.restarts})"
        return SupervisionEvent(name, text)

    def _log_supervision(self, events: list[SupervisionEvent]) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with contextlib.suppress(OSError), self.log_path("supervisor").open("a") as log:
            for event in events:
                log.write(f"{stamp} {'CRASH LOOP ' if event.loud else ''}{event.text}\n")

    def _watched(self) -> list[ManagedProcess]:
        return ([self._kubesim] if self._kubesim else []) + list(self._services.values())

    def _require_service(self, name: str) -> None:
        if name not in self._ports:
            raise KeyError(f"unknown service {name!r}; running: {', '.join(self._ports)}")

    def _readiness_report(self) -> str:
        lines = []
        for name, proc in self._services.items():
            path = "/healthz" if name == API_SERVICE else "/readyz"
            status = _http_status(f"{self.service_url(name)}{path}")
            state = "exited" if not proc.alive() else f"{path} → {status or 'no answer'}"
            lines.append(f"  {name:<11} port {self._ports[name]:<6} {state}")
            if status != 200:
                lines.append(f"--- last lines of {proc.log_path} ---\n{proc.output(15)}")
        return "services:\n" + "\n".join(lines)

    def _write_info(self, state: str) -> None:
        path = self.state_dir / STACK_FILE
        scratch = path.with_name(f".{STACK_FILE}.{os.getpid()}")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.info() | {"state": state}, f, indent=2)
            f.write("\n")
        os.replace(scratch, path)

    def _claim_state_dir(self) -> None:
        """Refuse to share the state directory with a running stack; clear up after a stack
        whose owner was killed (its kubesim and services may still run; the servers clear up
        after themselves on start)."""
        try:
            info = json.loads((self.state_dir / STACK_FILE).read_text())
        except (OSError, ValueError):
            return
        if _owner_alive(info) and info.get("instance") != self._instance:
            raise StackError(
                f"a Fairway stack is already running from {self.state_dir} "
                f"(pid {info['pid']}, API {info.get('api_url')}); stop it first"
            )
        leftovers = [
            (name, entry) for name, entry in (info.get("processes") or {}).items()
            if name not in ("nats", "postgres") and entry.get("pid")
        ]  # fmt: skip
        for name, entry in reversed(leftovers):
            pid = entry["pid"]
            ticks = entry.get("pid_ticks")
            if ticks is not None and pid_alive(pid) and start_ticks(pid) == ticks:
                self._progress(f"stopping {name} (pid {pid}) left over from an earlier run")
                terminate_pid(pid, timeout=self.config.stop_timeout)
        (self.state_dir / STACK_FILE).unlink(missing_ok=True)

    def _release_state_dir(self) -> None:
        path = self.state_dir / STACK_FILE
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("instance") == self._instance:
                path.unlink()
