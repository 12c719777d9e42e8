"""Lifecycle replicas share the work by shards (see core/shards.py for the rules): each replica
holds the Kubernetes Leases of some shards, drives only the workloads of those, and hands a
work message for a shard it does not hold on to the shard's holder.

Why Leases and not JetStream KV: lifecycle acts on Kubernetes, and a Lease is the API server's
own lock, with the protocol the scheduler already runs (fairway_kube.lease): a replica cut off
from the API server cannot renew and stops driving before anyone may take over, which is the
partition that matters for the pods it would otherwise create or delete. A KV bucket would
fence against the NATS cluster instead, and a replica that could reach NATS but not the API
server would keep shards it cannot serve. `kubectl get leases` shows who holds what.

Membership: each replica also holds a Lease of its own (label fairway.io/lifecycle-member);
the live ones (renewed within the lease duration, on this replica's clock) are the replicas a
fair share is counted over.

Handing on (`ShardRouter`): every replica reads the shared durable consumers as before. A
message for a shard this replica holds is handled here; any other is published to
fairway.lifecycle.shard.<shard>.<kind>.<workload id> (FAIRWAY_LIFECYCLE_SHARDS) and acked once
the stream has it, where the shard's own durable consumer keeps it for whoever holds the shard,
now or after a takeover. Correct under redelivery: nothing is acked before it is handled or
stored for the holder; a message handed on twice (a redelivery) is handled twice, which every
handler is built for (idempotent by state). A nak to let another replica try would not do:
each nak spends one of the consumer's deliveries, so a message could be dead-lettered only
because it kept landing on replicas that do not hold its shard, and while a shard has no
holder (a takeover) there is nobody to land on.
"""

import asyncio
import contextlib
import logging
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes import client
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, RootModel

from fairway_bus import Delivery, publish_model
from fairway_bus.bootstrap import consumer_config
from fairway_bus.broker import DurableConsumer, FairwayBroker, jetstream
from fairway_contracts import streams, subjects
from fairway_kube import ThreadedCalls, api_client
from fairway_kube.lease import Attempt, LeaderElector, LeaseError, LeaseLock, LeaseTimings
from fairway_lifecycle.core.shards import Look, moves, shard_of

log = logging.getLogger("fairway.lifecycle.shards")

SHARDS_HELD = Gauge("fairway_lifecycle_shards_held",
                    "Lifecycle shards whose Lease this replica holds (drives their workloads).")
HANDED_ON = Counter("fairway_lifecycle_handed_on",
                    "Work messages a lifecycle replica received for a shard it does not hold and "
                    "handed on to the shard's holder, by consumer kind.", ["kind"])
LABEL_MEMBER = "fairway.io/lifecycle-member"
STALE_MEMBER_LEASES = 30  # lease periods unrenewed before a member Lease is deleted


def _lease_name(identity: str) -> str:
    """A Kubernetes name (lower case, digits, '-') from a replica's identity."""
    return re.sub(r"[^a-z0-9-]+", "-", identity.lower()).strip("-")[:50] or "replica"


async def _nothing(*_: Any) -> None:
    return None


class ShardKeeper:
    """Takes, renews and lets go of shard Leases; tells the service which shards it gained
    and lost (lost first, and before the Lease can be taken by anyone else)."""

    def __init__(self, shards: int, identity: str, namespace: str, timings: LeaseTimings, *,
                 kubeconfig: str | None = None,
                 on_gained: Callable[[set[int]], Awaitable[None]] = _nothing,
                 on_lost: Callable[[set[int]], Awaitable[None]] = _nothing,
                 clock: Callable[[], float] = time.monotonic):
        self.shards = shards
        self.identity = identity
        self.namespace = namespace
        self.timings = timings
        self.on_gained, self.on_lost = on_gained, on_lost
        self.clock = clock
        self.api = client.CoordinationV1Api(api_client(kubeconfig))
        self._calls = ThreadedCalls(4, "shard-leases")
        self.electors = [
            LeaderElector(LeaseLock(namespace, f"fairway-lifecycle-shard-{i}", api=self.api,
                                    calls=self._calls), identity, timings,
                          on_started=_nothing, on_stopped=_nothing, clock=clock,
                          what="lifecycle shard")
            for i in range(shards)]
        self.member = LeaderElector(
            LeaseLock(namespace, f"fairway-lifecycle-member-{_lease_name(identity)}",
                      api=self.api, calls=self._calls, labels={LABEL_MEMBER: "true"}),
            identity, timings, on_started=_nothing, on_stopped=_nothing, clock=clock,
            what="lifecycle member")
        self.held: set[int] = set()
        self._renewed: dict[int, float] = {}
        self._free_since: dict[int, float] = {}
        self._over_since: float | None = None
        self._members_seen: dict[str, tuple[Any, float]] = {}  # name → (spec, first seen)
        self.replicas = 1
        self._rounds = 0
        self._start = zlib.crc32(identity.encode()) % shards
        self._task: asyncio.Task | None = None

    @property
    def orphan_seconds(self) -> float:
        # A shard free this long is nobody's: one more look than a member's expiry needs.
        return self.timings.retry_seconds * 1.5

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="shard-leases")

    async def stop(self) -> None:
        """Stop driving every shard, then hand their Leases (and membership) on at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        held, self.held = set(self.held), set()
        SHARDS_HELD.set(0)
        if held:
            await self.on_lost(held)
        await asyncio.gather(*(self.electors[s].release() for s in held),
                             self.member.release(), return_exceptions=True)
        self._calls.close()

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next round looks again
                log.exception("shard lease round failed")
            await asyncio.sleep(self.timings.retry_seconds)

    async def round(self) -> None:
        """One look at every Lease: renew the held, take or let go per the rules."""
        with contextlib.suppress(LeaseError):
            await self.member.try_acquire_or_renew()
        with contextlib.suppress(LeaseError):
            self.replicas = await self._live_members()
        lost = await self._renew()
        if lost:
            await self._lose(lost)
        attempts = await asyncio.gather(
            *(self.electors[s].try_acquire_or_renew(take=False)
              for s in range(self.shards) if s not in self.held), return_exceptions=True)
        now = self.clock()
        for s, attempt in zip([s for s in range(self.shards) if s not in self.held], attempts,
                              strict=True):
            if attempt is Attempt.FREE:
                self._free_since.setdefault(s, now)
            else:
                self._free_since.pop(s, None)
        share_over = len(self.held) > -(-self.shards // max(1, self.replicas))
        self._over_since = (self._over_since or now) if share_over else None
        self._rounds += 1
        if self._rounds == 1:
            return  # first, be counted: replicas starting together then share at once
        planned = moves(Look(frozenset(self.held), dict(self._free_since), self.replicas,
                             self.shards, self._over_since, now, self._start),
                        orphan_seconds=self.orphan_seconds,
                        settle_seconds=self.timings.lease_seconds)
        gained = set()
        for s in planned.take:
            try:
                attempt = await self.electors[s].try_acquire_or_renew(take=True)
            except LeaseError as exc:
                log.warning("taking shard %d failed: %s", s, exc)
                continue
            if attempt is Attempt.LEADING:
                gained.add(s)
                self._free_since.pop(s, None)
                self._renewed[s] = self.clock()
        if gained:
            self.held |= gained
            SHARDS_HELD.set(len(self.held))
            log.info("shards taken: %s (holding %d of %d, %d replicas)", sorted(gained),
                     len(self.held), self.shards, self.replicas)
            await self.on_gained(gained)
        if planned.release:
            log.info("letting shards %s go (holding %d, fair share over %d replicas)",
                     list(planned.release), len(self.held), self.replicas)
            await self._lose(set(planned.release))
            await asyncio.gather(*(self.electors[s].release() for s in planned.release),
                                 return_exceptions=True)
            self._over_since = None

    async def _renew(self) -> set[int]:
        """Renew every held shard; the ones lost (held by another now, or not renewed within
        the renew deadline: stop before anyone may take them)."""
        held = sorted(self.held)
        results = await asyncio.gather(
            *(asyncio.wait_for(self.electors[s].try_acquire_or_renew(),
                               self.timings.renew_deadline_seconds) for s in held),
            return_exceptions=True)
        lost = set()
        now = self.clock()
        for s, result in zip(held, results, strict=True):
            if result is Attempt.LEADING:
                self._renewed[s] = now
            elif result is Attempt.HELD:
                lost.add(s)
            elif now - self._renewed.get(s, now) >= self.timings.renew_deadline_seconds:
                lost.add(s)
        return lost

    async def _lose(self, shards: set[int]) -> None:
        self.held -= shards
        for s in shards:
            self._renewed.pop(s, None)
        SHARDS_HELD.set(len(self.held))
        log.warning("shards lost: %s", sorted(shards))
        await self.on_lost(shards)

    async def _live_members(self) -> int:
        """The replicas alive: member Leases renewed within their duration (on our clock),
        ours included."""
        try:
            status, body = await self._calls.call(
                self.api.list_namespaced_lease, self.namespace, label_selector=LABEL_MEMBER,
                _request_timeout=5.0)
        except Exception as exc:
            raise LeaseError(f"listing lifecycle members: {exc!r}") from exc
        if status != 200:
            raise LeaseError(f"listing lifecycle members: {status}")
        now = self.clock()
        alive = {self.identity}
        for lease in body.get("items") or []:
            name, spec = lease["metadata"]["name"], lease.get("spec") or {}
            seen = self._members_seen.get(name)
            if seen is None or seen[0] != spec:
                seen = self._members_seen[name] = (spec, now)
            holder = spec.get("holderIdentity")
            duration = spec.get("leaseDurationSeconds") or self.timings.lease_seconds
            if holder and now < seen[1] + duration:
                alive.add(holder)
            elif now - seen[1] > STALE_MEMBER_LEASES * self.timings.lease_seconds:
                # A replica gone for good (every restart is a new identity): its member
                # Lease goes, so the list stays as long as the replicas.
                self._members_seen.pop(name, None)
                with contextlib.suppress(Exception):
                    await self._calls.call(self.api.delete_namespaced_lease, name,
                                           self.namespace, _request_timeout=5.0)
        return len(alive)


class Forwarded(RootModel[dict[str, Any]]):
    """A handed-on message before its kind's model reads it."""


type KindHandler = Callable[[BaseModel, Delivery], Awaitable[None]]


class ShardRouter:
    """Which shard a message is for, whether this replica holds it, handing it on if not,
    and the durable consumers of the shards held."""

    def __init__(self, broker: FairwayBroker, shards: int, identity: str):
        self.broker = broker
        self.shards = shards
        self.identity = identity
        # Shards driven (their workloads loaded or loading) and held (their messages handled
        # here: only once loaded).
        self.driving: set[int] = set()
        self.held: set[int] = set()
        self.kinds: dict[str, tuple[type[BaseModel], KindHandler]] = {}
        self._consumers: dict[int, DurableConsumer] = {}

    def shard(self, project: str) -> int:
        return shard_of(project, self.shards)

    def holds(self, project: str) -> bool:
        """Whether this replica handles the project's messages."""
        return self.shard(project) in self.held

    def drives(self, project: str) -> bool:
        """Whether this replica drives the project's workloads."""
        return self.shard(project) in self.driving

    def kind(self, name: str, model: type[BaseModel], handler: KindHandler) -> None:
        """How the holder handles a handed-on message of this kind."""
        self.kinds[name] = (model, handler)

    async def hand_on(self, kind: str, project: str, workload_id: str, payload: BaseModel,
                      delivery: Delivery) -> None:
        """Store the message for its shard's holder (raises if the stream does not take it:
        the message is then naked and comes again)."""
        shard = self.shard(project)
        await publish_model(
            jetstream(self.broker), subjects.lifecycle_shard(shard, kind, workload_id), payload,
            msg_id=f"{kind}:{delivery.msg_id}:{self.identity}",
            headers={k: v for k, v in delivery.headers.items() if k != "Nats-Msg-Id"})
        HANDED_ON.labels(kind).inc()

    async def gained(self, shards: set[int]) -> None:
        """Read the shards' handed-on messages (their workloads are loaded by now)."""
        js = jetstream(self.broker)
        for s in sorted(shards):
            if s in self._consumers or s not in self.driving:
                continue
            spec = streams.lifecycle_shard(s)
            # The shard's consumer is made by whoever takes the shard first (idempotent).
            await js.add_consumer(spec.stream, consumer_config(spec))
            consumer = DurableConsumer(self.broker, spec, Forwarded, self._handle,
                                       fetch_timeout=2.0)
            await consumer.start(js)
            if s not in self.driving:  # lost while it started
                await consumer.stop()
                continue
            self._consumers[s] = consumer
            self.held.add(s)

    async def lost(self, shards: set[int]) -> None:
        self.held -= shards
        await asyncio.gather(*(c.stop() for s in shards
                               if (c := self._consumers.pop(s, None)) is not None),
                             return_exceptions=True)

    # In the broker's list of durable consumers: stopped with them, before the connection
    # closes (a shard consumer must finish the batch in hand, acks included).
    async def start(self, js: Any) -> None:
        return None

    async def stop(self) -> None:
        await self.lost(set(self._consumers))

    async def _handle(self, payload: Forwarded, delivery: Delivery) -> None:
        kind = delivery.subject.split(".")[4]
        model, handler = self.kinds[kind]
        await handler(model.model_validate(payload.root), delivery)
