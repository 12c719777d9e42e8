"""Run kubesim: `KubeSim` inside a running asyncio loop, `KubeSimThread` in its own thread.

    async with KubeSim(DEFAULT_PROFILE, port=0) as sim:
        write_kubeconfig(path, sim.url)

    with KubeSimThread(DEFAULT_PROFILE) as sim:   # from synchronous code
        client = kubernetes.config.new_client_from_config(config_file=sim.kubeconfig(path))
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Self, TypeVar

import yaml
from aiohttp import web

from .admin import Faults, add_admin_routes
from .api import COORDINATION, COORDINATION_V1, Api
from .controllers import Controllers
from .default_scheduler import DefaultScheduler
from .events import DEFAULT_MAX_EVENTS, EventLog
from .kubelet import Kubelet
from .load import LoadModel, add_load_routes
from .logs import LogApi
from .network_api import NetworkApi
from .objects import build_namespace, build_node, now_rfc3339
from .profile import Profile, load_profile
from .profiles import DEFAULT_PROFILE
from .services import EndpointsController, add_resources
from .store import DEFAULT_HISTORY, DEFAULT_WATCH_QUEUE, Store
from .workloads import KINDS, add_workload_resources
from .workloads_api import WorkloadsApi

T = TypeVar("T")

# What a snapshot keeps: events are transient, as in Kubernetes.
SNAPSHOT_KINDS = ("namespaces", "nodes", "pods", "leases", "services", "endpoints",
                  "endpointslices", "configmaps", *KINDS)
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
DEFAULT_TOKEN = "kubesim"

ProfileSource = Profile | str | Path | Mapping[str, Any] | None


def _as_profile(profile: ProfileSource) -> Profile:
    if profile is None:
        return load_profile(DEFAULT_PROFILE)
    if isinstance(profile, Profile):
        return profile
    return load_profile(profile)


class KubeSim:
    """A simulated cluster served over HTTP from the current asyncio loop.

    Args:
        profile: a `Profile`, a profile file, a parsed mapping, or None for the default.
        host, port: where to listen; port 0 picks a free port (see `.port` / `.url`).
        history: watch events kept per resource kind; older resourceVersions answer 410.
        bookmark_interval: seconds between BOOKMARK events on watches that allow them.
        watch_queue: events buffered per watcher before a slow watcher is closed.
        seed: seeds the timing jitter, for reproducible runs.
        admin: serve the fault-injection endpoint under /admin (see `fairway_kubesim.admin`).
        max_events: core/v1 Events kept (the oldest leave first); 0 also stops the kubelets
            from recording events.
        default_scheduler: bind pods whose schedulerName is `default-scheduler` to nodes with
            room, as kube-scheduler would (see `fairway_kubesim.default_scheduler`).
    """

    def __init__(self, profile: ProfileSource = None, *, host: str = "127.0.0.1",
                 port: int = 0, history: int = DEFAULT_HISTORY,
                 bookmark_interval: float = 10.0, watch_queue: int = DEFAULT_WATCH_QUEUE,
                 seed: int | None = None, admin: bool = False,
                 max_events: int = DEFAULT_MAX_EVENTS, snapshot: str | Path | None = None,
                 snapshot_seconds: float = 2.0, default_scheduler: bool = False) -> None:
        self.profile = _as_profile(profile)
        self.snapshot_path = Path(snapshot) if snapshot is not None else None
        self.snapshot_seconds = snapshot_seconds
        self._snapshot_task: asyncio.Task | None = None
        self._restored_pods: list[Any] = []
        self.restored = False
        self.admin = admin
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self.store = Store(history=history)
        self.store.add("namespaces", "Namespace", namespaced=False)
        self.store.add("nodes", "Node", namespaced=False)
        self.store.add("pods", "Pod", namespaced=True)
        self.store.add("events", "Event", namespaced=True)
        self.store.add("leases", "Lease", namespaced=True, api_version=COORDINATION_V1,
                       group=COORDINATION)
        add_resources(self.store)
        add_workload_resources(self.store)
        EndpointsController(self.store)  # it lives on as a listener of the store
        self.event_log = EventLog(self.store["events"], max_events)
        self.kubelet = Kubelet(self.store, self.profile.timings, seed=seed,
                               events=self.event_log)
        self.api = Api(self.store, bookmark_interval=bookmark_interval,
                       watch_queue=watch_queue)
        self.api.event_log = self.event_log
        # the workload controllers (Jobs, Deployments, ...) and, when asked, kube-scheduler
        self.controllers = Controllers(self.store, self.api._delete_pod, self.event_log)
        self.default_scheduler = (DefaultScheduler(self.store, self.api.bind)
                                  if default_scheduler else None)
        self.api.extra_routes += (NetworkApi(self.api).routes() + LogApi(self.api).routes()
                                  + WorkloadsApi(self.api, self.controllers).routes())
        self.load = LoadModel(self.store)  # request load on inference servers (load.py)
        self.faults: Faults | None = None
        self._runner: web.AppRunner | None = None
        if self.snapshot_path is not None and self.snapshot_path.exists():
            self._restore(self.snapshot_path)
        else:
            self._populate()

    def _restore(self, path: Path) -> None:
        """The cluster as the last snapshot left it: nodes (with their kubelets), namespaces,
        pods and leases. A restored pod bound to a node starts again on it, as after a reboot
        of the node: its containers are created again (the pod itself is the same)."""
        loaded = self.store.restore(path.read_bytes())
        self.restored = True
        for index, node in enumerate(loaded.get("nodes", [])):
            self.kubelet.add_node(node.obj, index)
        self._restored_pods = loaded.get("pods", [])

    def save_snapshot(self) -> None:
        """Write the snapshot file now (atomically: a crash leaves the previous one)."""
        if self.snapshot_path is None:
            return
        data = self.store.snapshot(SNAPSHOT_KINDS)
        self.snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.snapshot_path.with_name(f".{self.snapshot_path.name}.{os.getpid()}")
        scratch.write_bytes(data)
        os.replace(scratch, self.snapshot_path)

    async def _snapshot_loop(self) -> None:
        written = -1
        while True:
            await asyncio.sleep(self.snapshot_seconds)
            if self.store.rv != written:
                written = self.store.rv
                self.save_snapshot()

    def _populate(self) -> None:
        created = now_rfc3339()
        for name in SYSTEM_NAMESPACES:
            self.store["namespaces"].create(build_namespace(name, created))
        for index, spec in enumerate(self.profile.nodes):
            stored = self.store["nodes"].create(build_node(spec, index, created))
            self.kubelet.add_node(stored.obj, index)

    # lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("kubesim is already running")
        loop = asyncio.get_running_loop()
        sock = _bind(self.host, self._requested_port)
        self.port = sock.getsockname()[1]
        app = self.api.app()
        if self.admin:
            self.faults = add_admin_routes(app, self.api, self.kubelet)
        add_load_routes(app, self.load, admin=self.admin)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                               shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.SockSite(runner, sock, backlog=1024).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner = runner
        self.kubelet.start(loop)
        self.controllers.start(loop)
        if self.default_scheduler is not None:
            self.default_scheduler.start(loop)
        for pod in self._restored_pods:
            self.kubelet.adopt(pod)
        self._restored_pods = []
        if self.snapshot_path is not None:
            self.save_snapshot()
            self._snapshot_task = loop.create_task(self._snapshot_loop())

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()
            self._snapshot_task = None
            self.save_snapshot()
        self.kubelet.stop()
        self.controllers.stop()
        if self.default_scheduler is not None:
            self.default_scheduler.stop()
        self.store.close_watchers()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("kubesim is not running")
        return f"http://{_url_host(self.host)}:{self.port}"

    def write_kubeconfig(self, path: str | Path, token: str | None = DEFAULT_TOKEN) -> Path:
        return write_kubeconfig(path, self.url, token=token)


def _bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    return host


def write_kubeconfig(path: str | Path, url: str, token: str | None = DEFAULT_TOKEN,
                     namespace: str = "default", name: str = "kubesim") -> Path:
    """Write a kubeconfig for a plain-HTTP server at `url` (a bearer token user, or none).

    kubesim accepts any token; `token=None` writes a user without credentials.
    The file is replaced atomically and readable by its owner only.
    """
    user: dict[str, Any] = {"token": token} if token else {}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": url,
                                                "insecure-skip-tls-verify": True}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name,
                                                "namespace": namespace}}],
        "current-context": name,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kubeconfig-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(config, fh, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


class KubeSimThread:
    """Runs a `KubeSim` on its own event loop in a daemon thread, for synchronous callers.

    `call(fn)` runs `fn(sim)` on the simulator's loop and returns its result, which is the
    safe way to look at `sim.store` or `sim.kubelet` from another thread.
    """

    def __init__(self, profile: ProfileSource = None, **kwargs: Any) -> None:
        self._args = (profile, kwargs)
        self.sim: KubeSim | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    def start(self, timeout: float = 30.0) -> Self:
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="kubesim",
                                        daemon=True)
        self._thread.start()
        ready.result(timeout)
        return self

    def _run(self, ready: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.close()

    async def _main(self, ready: Future[None]) -> None:
        try:
            profile, kwargs = self._args
            self.sim = KubeSim(profile, **kwargs)
            self._stopped = asyncio.Event()
            await self.sim.start()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            await self._stopped.wait()
        finally:
            await self.sim.stop()

    def stop(self, timeout: float = 10.0) -> None:
        loop, stopped, thread = self._loop, self._stopped, self._thread
        if loop is not None and stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopped.set)
        if thread is not None:
            thread.join(timeout)
        self._thread = None

    def call(self, fn: Callable[[KubeSim], T], timeout: float = 10.0) -> T:
        if self._loop is None or self.sim is None:
            raise RuntimeError("kubesim is not running")
        sim = self.sim

        async def run() -> T:
            return fn(sim)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    @property
    def url(self) -> str:
        if self.sim is None:
            raise RuntimeError("kubesim is not running")
        return self.sim.url

    def write_kubeconfig(self, path: str | Path, token: str | None = DEFAULT_TOKEN) -> Path:
        return write_kubeconfig(path, self.url, token=token)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
