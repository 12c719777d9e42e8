"""The skeleton every Fairway service runs on.

`Service` owns the process's connections and background tasks: the asyncpg pool on the
service's schema (migrated under an advisory lock), the FastStream broker (subscribers are
registered by the service's handlers module), the outbox relay, core-NATS heartbeats that
submission's /healthz aggregates, and a small HTTP server with /healthz, /readyz and
/metrics. `run()` starts them in order, waits for SIGINT/SIGTERM and stops them in reverse,
letting in-flight messages finish.

Liveness (/healthz) fails when the service has been cut off from NATS for longer than
`broker_liveness_grace_seconds`: the client reconnects by itself after an outage, so only a
connection that stays down is worth a restart. A connection the server closed for good (nats-py
never reopens one closed after a protocol error) is not waited for: the service stops and
`main` builds it again on a fresh connection, with back-off.

Readiness (/readyz, the heartbeat's `ready`, `fairway_service_ready`) is false until the
service has started, while the broker connection is down (the client reconnects on its own)
and while the database does not answer a probe query (checked every
`readiness_probe_seconds`): an orchestrator then stops routing to the instance, and the
aggregated /healthz of submission shows which service is missing what.
"""

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import uvicorn
import uvloop
from faststream.nats import NatsBroker
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fairway_bus import connection, jetstream, make_broker
from fairway_contracts import subjects
from fairway_contracts.events import Heartbeat
from fairway_contracts.workloads import utcnow
from fairway_runtime import gc_tuning
from fairway_runtime.settings import ServiceSettings
from fairway_store import OutboxRelay, create_pool, migrate_dsn
from fairway_telemetry import setup_logging, setup_tracing, shutdown_tracing

log = logging.getLogger("fairway.runtime")

Hook = Callable[["Service"], Awaitable[None]]

SERVICE_UP = Gauge("fairway_service_ready",
                   "1 when the service is ready: started, broker and database reachable",
                   ["service"])


class Service:
    def __init__(self, name: str, settings: ServiceSettings, *, migrations: Path | None,
                 schema: str | None = None, http_app: Starlette | None = None):
        self.name = name
        self.settings = settings
        self.schema = schema or name
        self.migrations = migrations
        self.instance = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.broker: NatsBroker = make_broker(settings.nats_url, name,
                                              security=settings.nats_security())
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self.http_port: int | None = None
        self.ready = False
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self._http: uvicorn.Server | None = None
        self._extra_checks: list[Callable[[], bool]] = []
        self.database_reachable = False
        self.broker_down_since: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.reopen = False  # set when the broker connection was closed for good: build anew
        # A service with an HTTP API of its own serves the probes on it (see probe_routes).
        self.http_app = http_app

    # wiring -----------------------------------------------------------------------------
    def on_start(self, hook: Hook) -> Hook:
        self._on_start.append(hook)
        return hook

    def on_stop(self, hook: Hook) -> Hook:
        self._on_stop.append(hook)
        return hook

    def add_readiness_check(self, check: Callable[[], bool]) -> None:
        self._extra_checks.append(check)

    def background(self, coro: Awaitable[None], name: str) -> asyncio.Task:
        task = asyncio.create_task(self._guard(coro, name), name=name)
        self._tasks.append(task)
        return task

    @property
    def js(self):
        return jetstream(self.broker)

    def is_ready(self) -> bool:
        return (self.ready and self.broker_connected and self.database_reachable
                and all(check() for check in self._extra_checks))

    def is_alive(self) -> tuple[bool, str]:
        """False, and why, when only a restart can help (see the module's docstring)."""
        if self.reopen:
            return False, "the NATS connection was closed for good"
        down = self.broker_down_since
        grace = self.settings.broker_liveness_grace_seconds
        if down is not None and time.monotonic() - down > grace:
            return False, f"cut off from NATS for more than {grace:g} s"
        return True, "ok"

    @property
    def broker_connected(self) -> bool:
        nc = connection(self.broker)
        return nc is not None and nc.is_connected

    # lifecycle --------------------------------------------------------------------------
    async def start(self, *, serve_http: bool = True) -> None:
        setup_tracing(f"fairway-{self.name}", self.settings.tracing())
        await migrate_dsn(self.settings.database_url, self.schema, self.migrations)
        self.pool = await create_pool(self.settings.database_url, self.schema,
                                      max_size=self.settings.db_pool_size)
        self.database_reachable = True
        await self.broker.connect()
        self.relay = OutboxRelay(self.settings.database_url, self.pool, self.schema, self.js)
        await self.relay.start()
        for hook in self._on_start:
            await hook(self)
        await self.broker.start()  # subscribers begin consuming only now
        if serve_http:
            await self._serve_http()
        self.background(self._heartbeat(), "heartbeat")
        self.background(self._probe_database(), "database-probe")
        self.background(self._watch_broker(), "broker-watch")
        self.ready = True
        gc_tuning.freeze()  # what start-up loaded stays: out of every later collection's way
        # read at scrape time: the gauge can never disagree with /readyz
        SERVICE_UP.labels(self.name).set_function(lambda: 1.0 if self.is_ready() else 0.0)
        log.info("service ready", extra={"fields": {"instance": self.instance,
                                                     "http_port": self.http_port}})

    async def stop(self) -> None:
        self.ready = False
        # Stop taking messages first; FastStream waits for the handler in flight.
        with contextlib.suppress(Exception):
            await self.broker.stop()
        for hook in reversed(self._on_stop):
            with contextlib.suppress(Exception):
                await hook(self)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.relay is not None:
            await self.relay.stop()
        if self._http is not None:
            self._http.should_exit = True
        if self.pool is not None:
            await self.pool.close()
        shutdown_tracing()
        log.info("service stopped")

    async def run(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._stopping.set)
        try:
            await self.start()
            await self._stopping.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        """Stop the service; callable from any thread."""
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._stopping.set)
        else:
            self._stopping.set()

    # internals --------------------------------------------------------------------------
    async def _guard(self, coro: Awaitable[None], name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s crashed; stopping the service", name)
            self._stopping.set()

    async def _probe_database(self) -> None:
        """Keep `database_reachable` current: a query with a deadline, every few seconds. The
        pool reconnects by itself; this only says whether it can now."""
        interval = self.settings.readiness_probe_seconds
        while True:
            try:
                await asyncio.wait_for(self.pool.fetchval("SELECT 1"), timeout=interval)
                reachable = True
            except asyncio.CancelledError:
                raise
            except Exception:
                reachable = False
            if reachable != self.database_reachable:
                log.warning("database %s", "reachable again" if reachable else "unreachable")
            self.database_reachable = reachable
            await asyncio.sleep(interval)

    async def _watch_broker(self) -> None:
        """Keep `broker_down_since` current; stop the service (to be built again on a fresh
        connection) when the server closed the connection for good."""
        while not self._stopping.is_set():
            nc = connection(self.broker)
            if nc is not None and nc.is_closed:
                log.error("NATS closed the connection for good (%s); starting the service "
                          "again on a new connection", nc.last_error)
                self.reopen = True
                self._stopping.set()
                return
            if nc is not None and nc.is_connected:
                self.broker_down_since = None
            elif self.broker_down_since is None:
                self.broker_down_since = time.monotonic()
            await asyncio.sleep(0.5)

    async def _heartbeat(self) -> None:
        while True:
            nc = connection(self.broker)
            beat = Heartbeat(service=self.name, instance=self.instance, ready=self.is_ready(),
                             time=utcnow())
            with contextlib.suppress(Exception):
                await nc.publish(subjects.health(self.name), beat.to_json())
            await asyncio.sleep(self.settings.heartbeat_seconds)

    def probe_routes(self) -> list[Route]:
        async def healthz(_: Request) -> Response:
            alive, why = self.is_alive()
            return JSONResponse({"status": "ok" if alive else why, "service": self.name},
                                status_code=200 if alive else 503)

        async def readyz(_: Request) -> Response:
            ready = self.is_ready()
            return JSONResponse({"ready": ready, "service": self.name},
                                status_code=200 if ready else 503)

        async def metrics(_: Request) -> Response:
            return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

        # /livez is /healthz under a name of its own, for submission, whose /healthz is the
        # whole platform's health
        return [Route("/healthz", healthz), Route("/livez", healthz), Route("/readyz", readyz),
                Route("/metrics", metrics)]

    async def _serve_http(self) -> None:
        app = self.http_app or Starlette(routes=self.probe_routes())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.http_host, self.settings.http_port))
        self.http_port = sock.getsockname()[1]
        # proxy_headers off: uvicorn would take X-Forwarded-For from any local peer as the
        # client's address; the API decides whom to believe (its trusted proxies setting)
        # http: the C parser named, not left to "auto", so a missing wheel is an error at
        # install rather than a quietly slower API
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5, proxy_headers=False,
                                http="httptools")
        self._http = uvicorn.Server(config)
        self.background(self._http.serve(sockets=[sock]), "http")


def main(build: Callable[[], Service]) -> None:
    """Entry point of `python -m fairway_<service>`."""
    service = build()
    gc_tuning.configure(service.settings.gc_thresholds)
    setup_logging(service.name, service.settings.log_level)
    run_until_stopped(build, service)


def run_until_stopped(build: Callable[[], Service], service: Service | None = None) -> None:
    """Run the service until it is told to stop; when its NATS connection was closed for
    good, build and run it again (back-off up to 30 s), so a new connection replaces the dead
    one with every subscription on it."""
    service = service or build()
    for attempt in itertools.count():
        try:
            # libuv's loop: the same asyncio, about 2 % less CPU per workload end to end
            asyncio.run(service.run(), loop_factory=uvloop.new_event_loop)
        except KeyboardInterrupt:
            return
        if not service.reopen:
            return
        delay = min(30.0, 0.5 * 2 ** attempt)
        log.warning("building the service again in %.1f s", delay)
        time.sleep(delay)
        service = build()
