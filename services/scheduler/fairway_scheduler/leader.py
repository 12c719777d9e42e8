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
import logging
from typing import Any

from prometheus_client import Gauge

# The Lease protocol is generic (lifecycle's shards use it too): it lives in fairway_kube.
from fairway_kube.lease import Attempt, LeaderElector, LeaseError, LeaseLock, LeaseTimings
from fairway_runtime import Service
from fairway_scheduler.service import SchedulerService

log = logging.getLogger("fairway.scheduler.leader")

__all__ = [
    "LEADER",
    "Attempt",
    "GatedConsumer",
    "LeaderElector",
    "Leadership",
    "LeaseError",
    "LeaseLock",
    "LeaseTimings",
]

LEADER = Gauge(
    "fairway_scheduler_leader",
    "1 while this scheduler instance leads (holds the Lease, or runs without leader election).",
)


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
                                     on_started=self._lead, on_stopped=self._follow,
                                     gauge=LEADER, what="scheduler")
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
