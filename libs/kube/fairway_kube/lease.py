"""Kubernetes Leases (coordination.k8s.io/v1) as client-go uses them: one holder at a time,
renewed, taken over once unrenewed for the lease duration. The scheduler elects its one
active instance with a `LeaderElector`; lifecycle holds one Lease per shard with the same
protocol (`try_acquire_or_renew`, `release`).

The protocol is client-go's (same fields, so `kubectl get lease` reads it):
- a Lease is taken when it is free (no holder: released by a holder that shut down cleanly)
  or when the same record has been seen, unrenewed, for `leaseDurationSeconds`. Time is
  measured on the taker's own monotonic clock from when it first saw that record, never by
  comparing `renewTime` with its clock, so clock skew between machines cannot make it early;
- every write is a replace with the read `resourceVersion`: of two racing takers the API
  server lets one win (409 for the other);
- the holder renews every `renew` seconds and gives up when it could not renew for
  `renew_deadline` seconds, shorter than the lease duration: it has stopped before anyone
  else may take over.

Worst case after a holder dies without releasing: another takes over within
lease + 2 * retry seconds (10 + 2 * 2 = 14 s by default).
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

from fairway_kube.calls import ThreadedCalls
from fairway_kube.client import api_client

log = logging.getLogger("fairway.lease")


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
                 request_timeout: float = 5.0, *, api: Any = None,
                 calls: ThreadedCalls | None = None, labels: dict[str, str] | None = None):
        self.namespace = namespace
        self.name = name
        self.api = api or client.CoordinationV1Api(api_client(kubeconfig))
        self.request_timeout = request_timeout
        self.labels = labels or {}
        # One thread: calls are sequential, and a hung call must not pile up more. Locks of
        # many Leases (lifecycle's shards) share the caller's threads, closed by the caller.
        self._own_calls = calls is None
        self._calls = calls or ThreadedCalls(1, "lease")

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
                 "metadata": {"name": self.name, "namespace": self.namespace,
                              **({"labels": self.labels} if self.labels else {})},
                 "spec": spec}
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
        if self._own_calls:
            self._calls.close()


class Attempt(enum.Enum):
    LEADING = "leading"  # we hold the Lease (taken or renewed just now)
    HELD = "held"  # someone else holds it and it has not expired
    RACED = "raced"  # it changed between our read and our write: look again
    FREE = "free"  # nobody holds it (or the holder let it expire); not taken (take=False)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Runs for the life of the service: waits for the Lease, leads while it holds it, and
    goes back to waiting when it loses it. `on_started` runs when leadership begins;
    `on_stopped` when it ends (lost, or the elector stopped)."""

    def __init__(self, lock: LeaseLock, identity: str, timings: LeaseTimings, *,
                 on_started: Callable[[], Awaitable[None]],
                 on_stopped: Callable[[], Awaitable[None]],
                 clock: Callable[[], float] = time.monotonic,
                 gauge: Any = None, what: str = "instance"):
        self.lock = lock
        self.identity = identity
        self.timings = timings
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.clock = clock
        self.gauge = gauge  # a prometheus Gauge set to 1 while leading, if given
        self.what = what  # what leads, in log lines ("scheduler")
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
            self._show(0)

    def _show(self, value: int) -> None:
        if self.gauge is not None:
            self.gauge.set(value)

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
    async def try_acquire_or_renew(self, take: bool = True) -> Attempt:
        """Renew the Lease if held, else take it if free or expired (`take=False`: only say
        it is, FREE, without writing)."""
        lease = await self.lock.get()
        duration = max(1, round(self.timings.lease_seconds))
        now = _now()
        if lease is None:
            if not take:
                return Attempt.FREE
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
        if not ours and not take:
            return Attempt.FREE
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
                log.info("standing by: another %s leads", self.what, extra={"fields": {
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
                log.warning("lease lost: another %s holds it", self.what, extra={"fields": {
                    "holder": (self._observed or {}).get("holderIdentity")}})
                return
            if self.clock() >= deadline:
                log.warning("lease lost: not renewed for %.1fs",
                            self.timings.renew_deadline_seconds)
                return

    async def _start_leading(self) -> None:
        self.is_leader = True
        self._show(1)
        log.info("leading: this %s decides", self.what, extra={"fields": {
            "identity": self.identity}})
        await self.on_started()

    async def _stop_leading(self) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        self._show(0)
        log.info("no longer leading: stopped deciding (%s)", self.what, extra={"fields": {
            "identity": self.identity}})
        await self.on_stopped()
