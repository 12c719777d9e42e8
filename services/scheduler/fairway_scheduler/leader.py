"""Active/standby schedulers: a Kubernetes Lease (coordination.k8s.io/v1) names the one
instance that consumes and decides. The scheduler's one adapter to the Kubernetes API, kept
apart from the service: it decides when the service runs, not what it decides.

Two schedulers deciding at once would each place workloads from their own picture of the
cluster and could hand one GPU to two workloads. So every instance runs a `LeaderElector`;
the holder of the Lease loads the state from its tables, starts its durable consumers and its
cycle (`Leadership.lead`); a standby does none of that and only watches the Lease, ready to
take over.

The protocol is client-go's (same fields, so `kubectl get lease` reads it):
- a standby takes the Lease when it is free (no holder: released by a leader that shut down
  cleanly) or when it has seen the same record, unrenewed, for `leaseDurationSeconds`. Time is
  measured on the standby's own monotonic clock from when it first saw that record, never by
  comparing `renewTime` with its clock, so clock skew between machines cannot make it early;
- every write is a replace with the read `resourceVersion`: of two standbys racing for it, the
  API server lets one win (409 for the other);
- the leader renews every `renew` seconds and gives up (stops deciding) when it could not
  renew for `renew_deadline` seconds, which is shorter than the lease duration: it has stopped
  before any standby may take over. Someone else holding the Lease ends leadership at once.

Worst case after a leader dies without releasing: a standby takes over within
lease + 2 * retry seconds (10 + 2 * 2 = 14 s by default): it may see the last renewal up to one
retry late and notice the expiry up to one retry late. A leader that stops cleanly releases
the Lease and a standby takes over at its next look (≤ retry seconds).

Fencing is by time, as in client-go: a leader whose whole process stalls for longer than the
renew deadline (and so cannot notice) may finish one more cycle after a standby took over. Its
decisions then carry the same deterministic ids as the new leader's for the same pods (JetStream
drops the repeat) and lifecycle binds a pod once; nothing in the database fences it.

The official client's own `kubernetes.leaderelection` runs a blocking loop in a thread and
cannot cancel the work of a leader that lost the Lease; this one is asyncio and cancels the
cycle at once.
"""

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from prometheus_client import Gauge

from fairway_kube import ThreadedCalls, api_client
from fairway_runtime import Service
from fairway_scheduler.service import SchedulerService

log = logging.getLogger("fairway.scheduler.leader")

LEADER = Gauge(
    "fairway_scheduler_leader",
    "1 while this scheduler instance leads (holds the Lease, or runs without leader election).",
)


class LeaseError(Exception):
    """The API server could not be asked (or answered with an unexpected status)."""


@dataclass(frozen=True)
class LeaseTimings:
    lease_seconds: float = 10.0
    renew_seconds: float = 2.0
    renew_deadline_seconds: float = 7.0
    retry_seconds: float = 2.0


class LeaseLock:
    """Get, create and replace one Lease with the official client, in a worker thread, as
    plain JSON (no model round trip: the record is compared and written back as read)."""

    def __init__(self, namespace: str, name: str, kubeconfig: str | None = None,
                 request_timeout: float = 5.0):
        self.namespace = namespace
        self.name = name
        self.api = client.CoordinationV1Api(api_client(kubeconfig))
        self.request_timeout = request_timeout
        # One thread: calls are sequential, and a hung call must not pile up more.
        self._calls = ThreadedCalls(1, "lease")

    async def _call(self, func, *args) -> tuple[int, Any]:
        try:
            return await self._calls.call(func, *args, _request_timeout=self.request_timeout)
        except Exception as exc:  # connection refused, timeout: the caller decides
            raise LeaseError(f"lease {self.namespace}/{self.name}: {exc!r}") from exc

    async def get(self) -> dict | None:
        status, body = await self._call(self.api.read_namespaced_lease, self.name,
                                        self.namespace)
        if status == 404:
            return None
        if status != 200:
            raise LeaseError(f"reading lease {self.namespace}/{self.name}: {status} {body}")
        return body

    async def create(self, spec: dict) -> bool:
        """True when created; False when someone else created it first."""
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
        status, body = await self._call(self.api.create_namespaced_lease, self.namespace,
                                        lease)
        if status == 409:
            return False
        if status not in (200, 201):
            raise LeaseError(f"creating lease {self.namespace}/{self.name}: {status} {body}")
        return True

    async def replace(self, lease: dict) -> bool:
        """True when written; False when the Lease changed since it was read (409)."""
        status, body = await self._call(self.api.replace_namespaced_lease, self.name,
                                        self.namespace, lease)
        if status == 409:
            return False
        if status != 200:
            raise LeaseError(f"updating lease {self.namespace}/{self.name}: {status} {body}")
        return True

    def close(self) -> None:
        self._calls.close()


class Attempt(enum.Enum):
    LEADING = "leading"  # we hold the Lease (taken or renewed just now)
    HELD = "held"  # someone else holds it and it has not expired
    RACED = "raced"  # it changed between our read and our write: look again


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Runs for the life of the service: waits for the Lease, leads while it holds it, and
    goes back to waiting when it loses it. `on_started` runs when leadership begins;
    `on_stopped` when it ends (lost, or the elector stopped)."""

    def __init__(self, lock: LeaseLock, identity: str, timings: LeaseTimings, *,
                 on_started: Callable[[], Awaitable[None]],
                 on_stopped: Callable[[], Awaitable[None]],
                 clock: Callable[[], float] = time.monotonic):
        self.lock = lock
        self.identity = identity
        self.timings = timings
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.clock = clock
        self.is_leader = False
        self._observed: dict | None = None  # the last Lease spec seen
        self._observed_at = 0.0  # when (our clock) it was first seen

    async def run(self) -> None:
        try:
            while True:
                await self._acquire()
                try:
                    await self._start_leading()
                    await self._lead()
                finally:
                    await self._stop_leading()
        finally:
            LEADER.set(0)

    async def release(self) -> None:
        """Give the Lease up (a clean shutdown), so a standby takes over at its next look
        instead of waiting for the lease to expire. Call after `on_stopped` has run."""
        with contextlib.suppress(Exception):
            lease = await self.lock.get()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            # As client-go releases: no holder, a one-second duration.
            lease["spec"] = {**lease["spec"], "holderIdentity": None,
                             "leaseDurationSeconds": 1, "renewTime": _now()}
            if await self.lock.replace(lease):
                log.info("lease released", extra={"fields": {"identity": self.identity}})

    # the protocol -------------------------------------------------------------------------
    async def try_acquire_or_renew(self) -> Attempt:
        lease = await self.lock.get()
        duration = max(1, round(self.timings.lease_seconds))
        now = _now()
        if lease is None:
            spec = {"holderIdentity": self.identity, "leaseDurationSeconds": duration,
                    "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
            if not await self.lock.create(spec):
                return Attempt.RACED
            self._saw(spec)
            return Attempt.LEADING
        spec = lease.get("spec") or {}
        self._saw(spec)
        holder = spec.get("holderIdentity")
        if holder and holder != self.identity and not self._expired(spec):
            return Attempt.HELD
        ours = holder == self.identity
        new_spec = {
            **spec,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": duration,
            "acquireTime": spec.get("acquireTime") if ours else now,
            "renewTime": now,
            "leaseTransitions": (spec.get("leaseTransitions") or 0) + (0 if ours else 1),
        }
        # The read resourceVersion travels in metadata: a concurrent writer makes this a 409.
        if not await self.lock.replace({**lease, "spec": new_spec}):
            return Attempt.RACED
        self._saw(new_spec)
        if not ours:
            log.info("lease taken over", extra={"fields": {
                "identity": self.identity, "previous_holder": holder}})
        return Attempt.LEADING

    def _saw(self, spec: dict) -> None:
        if spec != self._observed:
            self._observed = spec
            self._observed_at = self.clock()

    def _expired(self, spec: dict) -> bool:
        duration = spec.get("leaseDurationSeconds") or self.timings.lease_seconds
        return self.clock() >= self._observed_at + duration

    # the states ---------------------------------------------------------------------------
    async def _acquire(self) -> None:
        """Return once this instance holds the Lease."""
        waiting_logged = False
        while True:
            try:
                attempt = await self.try_acquire_or_renew()
            except LeaseError as exc:
                log.warning("cannot read the lease; standing by: %s", exc)
                await asyncio.sleep(self.timings.retry_seconds)
                continue
            if attempt is Attempt.LEADING:
                return
            if attempt is Attempt.HELD and not waiting_logged:
                log.info("standing by: another scheduler leads", extra={"fields": {
                    "identity": self.identity,
                    "holder": (self._observed or {}).get("holderIdentity")}})
                waiting_logged = True
            # Lost a race: look again soon (the winner's record decides), not at once.
            await asyncio.sleep(self.timings.retry_seconds if attempt is Attempt.HELD
                                else min(0.1, self.timings.retry_seconds))

    async def _lead(self) -> None:
        """Renew until the Lease is lost; return at once when it is."""
        renewed = self.clock()
        while True:
            deadline = renewed + self.timings.renew_deadline_seconds
            await asyncio.sleep(max(0.0, min(self.timings.renew_seconds,
                                             deadline - self.clock())))
            try:
                # A renewal that hangs must not carry us past the deadline.
                attempt = await asyncio.wait_for(self.try_acquire_or_renew(),
                                                 max(0.0, deadline - self.clock()))
            except (TimeoutError, LeaseError) as exc:
                log.warning("lease renewal failed: %r", exc)
                attempt = Attempt.RACED
            if attempt is Attempt.LEADING:
                renewed = self.clock()
                continue
            if attempt is Attempt.HELD:
                log.warning("lease lost: another scheduler holds it", extra={"fields": {
                    "holder": (self._observed or {}).get("holderIdentity")}})
                return
            if self.clock() >= deadline:
                log.warning("lease lost: not renewed for %.1fs",
                            self.timings.renew_deadline_seconds)
                return

    async def _start_leading(self) -> None:
        self.is_leader = True
        LEADER.set(1)
        log.info("leading: this scheduler decides", extra={"fields": {
            "identity": self.identity}})
        await self.on_started()

    async def _stop_leading(self) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        LEADER.set(0)
        log.info("no longer leading: stopped deciding", extra={"fields": {
            "identity": self.identity}})
        await self.on_stopped()


class GatedConsumer:
    """Stands in for one durable consumer in the broker's list: the broker starts and stops it
    with the service (so a shutdown still finishes the batch in hand before the connection
    closes), and it fetches only while this instance leads. A standby leaves every message to
    the leader, whose state in memory must see them all."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.spec = inner.spec
        self._js = None
        self._leading = False
        self._running = False
        self._lock = asyncio.Lock()

    async def start(self, js) -> None:  # the broker started
        async with self._lock:
            self._js = js
            await self._settle()

    async def stop(self) -> None:  # the broker stops
        async with self._lock:
            self._js = None
            await self._settle()

    async def lead(self, leading: bool) -> None:
        async with self._lock:
            self._leading = leading
            await self._settle()

    async def _settle(self) -> None:
        want = self._leading and self._js is not None
        if want and not self._running:
            await self.inner.start(self._js)
            self._running = True
        elif not want and self._running:
            self._running = False
            await self.inner.stop()


class Leadership:
    """What leading means for the scheduler: state loaded from the tables (a standby's memory
    is stale by design), consumers fetching, the cycle running. Losing the Lease cancels the
    cycle first (a commit in flight rolls back), then stops the consumers."""

    def __init__(self, service: SchedulerService, lock: LeaseLock, timings: LeaseTimings):
        self.service = service
        runtime = service.runtime
        broker = runtime.broker
        self.consumers = [GatedConsumer(c) for c in broker.durable_consumers]
        broker.durable_consumers[:] = self.consumers
        self.lock = lock
        self.elector = LeaderElector(lock, runtime.instance, timings,
                                     on_started=self._lead, on_stopped=self._follow)
        self._cycle: asyncio.Task | None = None
        self._elector: asyncio.Task | None = None

    async def start(self, runtime: Service) -> None:
        """on_start hook: stand for election in the background."""
        self._elector = asyncio.create_task(self.elector.run(), name="leader-election")
        self._elector.add_done_callback(self._elector_ended)

    async def stop(self, runtime: Service) -> None:
        """on_stop hook (after the broker stopped): stop deciding, then hand the Lease on."""
        if self._elector is not None:
            self._elector.remove_done_callback(self._elector_ended)
            self._elector.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._elector
        await self.elector.release()
        self.lock.close()

    def _elector_ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("leader election failed; stopping the service",
                      exc_info=task.exception())
            self.service.runtime.request_stop()

    async def _lead(self) -> None:
        try:
            await self.service.load()
        except Exception as exc:
            # The Lease can fall to this instance while the database is away (a leader that
            # died during an outage): lead anyway, and let the cycle load the state when the
            # database is back. No cycle decides before a load has succeeded; leaving the
            # Lease instead would only hand the same outage to the next standby.
            log.warning("state not loaded (%r); the cycle loads it when it can", exc)
            self.service.reload_before_next_cycle()
        for consumer in self.consumers:
            await consumer.lead(True)
        # The service's cycle loop: cancelled, not signalled, when leadership ends, so that no
        # cycle commits after this instance stopped leading.
        self._cycle = self.service.runtime.background(self.service.run_cycles(),
                                                      "scheduling-cycle")

    async def _follow(self) -> None:
        if self._cycle is not None:
            self._cycle.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._cycle
            self._cycle = None
        for consumer in self.consumers:
            await consumer.lead(False)
