"""Queues: one per (project, node pool) under one per (department, node pool), per resource.

Amounts inside the core are whole base units (`units`): milli-GPUs, millicores, MiB. A queue
keeps its configuration (deserved, limit, over-quota weight), the fair share computed for this
cycle, and what it has allocated (all of it, and the non-preemptible part) and requested.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from fairway_scheduler.core.fairshare import fair_shares, water_fill
from fairway_scheduler.core.model import (
    NO_QUOTA,
    QueueSpec,
    QueueStatus,
    Quota,
    ResourceStatus,
    TimeAwareFairness,
)
from fairway_scheduler.core.usage import adjusted_weights

RESOURCES = ("gpu", "cpu", "memory")
GPU, CPU, MEMORY = 0, 1, 2
MILLI = 1000  # units per GPU
UNLIMITED = -1


def units(resource: int, amount: float) -> int:
    return round(amount * MILLI) if resource == GPU else round(amount)


def amount(resource: int, value: int) -> float:
    """Units back to the user's unit: GPUs as a float, others as whole numbers."""
    if resource == GPU:
        return value / MILLI
    return value


class Queue:
    """One queue in one pool; `parent` is the department's queue in the same pool, if any."""

    __slots__ = ("adjusted", "age", "allocated", "allocated_np", "deserved", "fair", "kind",
                 "limit", "managed", "name", "parent", "plain_fair", "pool", "quotas",
                 "requested", "usage", "weight")

    def __init__(self, name: str, kind: str, pool: str, quotas: tuple[Quota, Quota, Quota],
                 parent: "Queue | None", age: int = 0):
        self.name, self.kind, self.pool, self.parent, self.quotas = name, kind, pool, parent, quotas
        self.age = age  # rank by creation: smaller is older (ties go to the older queue)
        self.deserved = [units(r, max(q.deserved, 0)) for r, q in enumerate(quotas)]
        self.limit = [UNLIMITED if q.limit < 0 else units(r, q.limit)
                      for r, q in enumerate(quotas)]
        self.weight = [max(q.over_quota_weight, 0) for q in quotas]
        # Per resource, whether its deserved quota counts: GPUs always, CPU and memory where
        # the queue configures them (asked on every turn of allocation's walk: worked out once,
        # as comparing quotas costs a dataclass's equality)
        self.managed = [True, quotas[CPU] != NO_QUOTA, quotas[MEMORY] != NO_QUOTA]
        self.fair = [0, 0, 0]
        self.allocated = [0, 0, 0]
        self.allocated_np = [0, 0, 0]
        self.requested = [0, 0, 0]
        # Time-aware fairness on in the pool: usage in the window (resource-seconds), the
        # over-quota weight it corrects to (None: not a contender for over-quota, or nobody
        # used anything), and the fair share the weights as configured would have given.
        self.usage: list[float] | None = None
        self.adjusted: list[float | None] = [None, None, None]
        self.plain_fair: list[int] | None = None

    def chain(self) -> "list[Queue]":
        """This queue and the ones above it: every one of them must allow an allocation."""
        return [self] if self.parent is None else [self, self.parent]

    def allocatable(self, resource: int) -> int:
        """What the queue may hold before others may take from it: the larger of its fair
        share and its deserved quota, capped by its limit."""
        share = max(self.fair[resource], self.deserved[resource])
        cap = self.limit[resource]
        return share if cap == UNLIMITED else min(share, cap)

    def wanted(self, resource: int) -> int:
        cap = self.limit[resource]
        requested = self.requested[resource]
        return requested if cap == UNLIMITED else min(requested, cap)

    def status(self) -> QueueStatus:
        usage = self.usage

        def one(r: int) -> ResourceStatus:
            q = self.quotas[r]
            return ResourceStatus(
                deserved=q.deserved, limit=q.limit, over_quota_weight=q.over_quota_weight,
                fair_share=amount(r, self.fair[r]), allocated=amount(r, self.allocated[r]),
                allocated_non_preemptible=amount(r, self.allocated_np[r]),
                requested=amount(r, self.requested[r]),
                usage=None if usage is None else _seconds(r, usage[r]),
                adjusted_over_quota_weight=self.adjusted[r])

        return QueueStatus(self.name, self.kind, self.pool,
                           self.parent.name if self.parent else None, one(GPU), one(CPU),
                           one(MEMORY))


class Queues:
    """Every queue of the cycle, created on first use (a project or a pool without a spec gets
    deserved 0, no limit, weight 1)."""

    def __init__(self, specs: Iterable[QueueSpec]):
        self.specs = {(spec.kind, spec.name, spec.pool): spec for spec in specs}
        # Older first: by creation time where the spec says, then by name (not by the order
        # given: a cycle decides the same whatever order its input comes in).
        order = sorted(self.specs.values(), key=lambda spec: (
            spec.created_at is None, spec.created_at or datetime.min, spec.name, spec.kind))
        self.age: dict[tuple[str, str], int] = {}
        for rank, spec in enumerate(order):
            self.age.setdefault((spec.kind, spec.name), rank)
        self.department_of: dict[str, str | None] = {}
        for spec in self.specs.values():
            if spec.kind == "project":
                self.department_of.setdefault(spec.name, spec.parent)
        self.queues: dict[tuple[str, str, str], Queue] = {}

    def _get(self, kind: str, name: str, pool: str, parent: Queue | None) -> Queue:
        key = (kind, name, pool)
        queue = self.queues.get(key)
        if queue is None:
            spec = self.specs.get(key)
            quotas = (spec.gpu, spec.cpu, spec.memory) if spec else (NO_QUOTA,) * 3
            queue = self.queues[key] = Queue(name, kind, pool, quotas, parent,
                                             self.age.get((kind, name), len(self.age)))
        return queue

    def project(self, name: str, pool: str) -> Queue:
        queue = self.queues.get(("project", name, pool))
        if queue is not None:
            return queue
        department = self.department_of.get(name)
        parent = self._get("department", department, pool, None) if department else None
        return self._get("project", name, pool, parent)

    def materialise(self) -> None:
        """Create the queue of every spec, so that configured queues show even when idle."""
        for kind, name, pool in list(self.specs):
            if kind == "project":
                self.project(name, pool)
            else:
                self._get("department", name, pool, None)

    def compute_fair_shares(self, capacity: dict[str, list[int]],
                            time_aware: Mapping[str, TimeAwareFairness] | None = None) -> None:
        """Departments' requests are their projects'; then water-fill level by level.

        `time_aware`: the pools where time-aware fairness is on, with their settings (their
        queues' `usage` set): over-quota goes by weights corrected by usage, and `plain_fair`
        keeps what the weights as configured would have given."""
        for queue in self.queues.values():
            if queue.kind == "department":
                queue.requested = [0, 0, 0]
        for queue in self.queues.values():
            if queue.parent is not None:
                for r in range(3):
                    queue.parent.requested[r] += queue.requested[r]
        by_pool: dict[str, list[Queue]] = {}
        for queue in self.queues.values():
            by_pool.setdefault(queue.pool, []).append(queue)
        for pool, queues in by_pool.items():
            top = [q for q in queues if q.parent is None]
            departments = [(d, [q for q in queues if q.parent is d])
                           for d in top if d.kind == "department"]
            totals = capacity.get(pool, [0, 0, 0])
            settings = time_aware.get(pool) if time_aware else None
            if settings is not None:
                for q in queues:
                    q.plain_fair = [0, 0, 0]
            for r in range(3):
                if settings is not None:
                    # first the division as configured, for the reasons to compare with
                    _fill_level(totals[r], top, r, into="plain_fair")
                    for department, children in departments:
                        plain = department.plain_fair
                        assert plain is not None  # (set above, for every queue)
                        _fill_level(plain[r], children, r, into="plain_fair")
                _fill_level(totals[r], top, r, settings)
                for department, children in departments:
                    _fill_level(department.fair[r], children, r, settings)

    def status(self) -> tuple[QueueStatus, ...]:
        ordered = sorted(self.queues.values(), key=lambda q: (q.kind != "department", q.name,
                                                               q.pool))
        return tuple(queue.status() for queue in ordered)


def _fill_level(total: int, queues: list[Queue], r: int,
                time_aware: TimeAwareFairness | None = None, into: str = "fair") -> None:
    if not queues:
        return
    keyed = {f"{q.kind}/{q.name}": q for q in queues}
    step = MILLI if r == GPU else 1  # whole GPUs; base units otherwise
    deserved = {key: q.deserved[r] for key, q in keyed.items()}
    wanted = {key: q.wanted(r) for key, q in keyed.items()}
    weights = {key: q.weight[r] for key, q in keyed.items()}
    age = {key: q.age for key, q in keyed.items()}
    adjusted = _adjusted(keyed, r, time_aware) if time_aware is not None else None
    if adjusted is None:
        shares = fair_shares(total, deserved, wanted, weights, step, age)
    else:
        shares = fair_shares(total, deserved, wanted, adjusted, step, age)
        # What the corrected weights left unclaimed (every queue they favour had all it
        # asked for) goes by the weights as configured: over-quota is never left idle.
        left = total - sum(shares.values())
        more = water_fill(left, {key: wanted[key] - shares[key] for key in keyed}, weights,
                          step, age)
        shares = {key: shares[key] + more[key] for key in keyed}
    for key, q in keyed.items():
        getattr(q, into)[r] = shares[key]


def _used(queue: Queue, r: int) -> float:
    """The queue's usage of resource `r` over the window (0 when none was recorded)."""
    usage = queue.usage
    return usage[r] if usage else 0.0


def _adjusted(keyed: dict[str, Queue], r: int, settings: TimeAwareFairness
              ) -> dict[str, float] | None:
    """The over-quota weights corrected by usage among the queues that ask for more than
    their deserved quota (the ones over-quota is divided between); None: nothing to correct
    (fewer than two of them, or none used anything)."""
    contenders = [key for key, q in keyed.items()
                  if q.wanted(r) > q.deserved[r] and q.weight[r] > 0]
    for q in keyed.values():
        q.adjusted[r] = None
    if len(contenders) < 2:
        return None
    corrected = adjusted_weights([keyed[key].weight[r] for key in contenders],
                                 [_used(keyed[key], r) for key in contenders], settings.k_value)
    if corrected is None:
        return None
    out = dict.fromkeys(keyed, 0.0)
    for key, weight in zip(contenders, corrected, strict=True):
        out[key] = weight
        keyed[key].adjusted[r] = weight
    return out


def _seconds(resource: int, value: float) -> float:
    """Resource-seconds (GPU-seconds, millicore-, MiB-seconds) rounded to what a person reads."""
    return round(value, 3) if resource == GPU else round(value)


def order_key(queues: list[Queue], need: Sequence[int], capacity: list[int]) -> tuple:
    """Which queue (or queues of one unit across pools, summed) goes first with `need` as its
    next job: those at or below their fair share before those above it; those that stay within
    their deserved quota with the job before those that would not; the smaller dominant share
    counting the job, then without it; then the smaller share of the cluster; then the older.
    Deserved quota counts in GPUs and in the resources the queue configures.

    Written out per resource: the allocation walk asks it after every attempt."""
    if len(queues) == 1:
        q = queues[0]
        a0, a1, a2 = q.allocated
        f0, f1, f2 = q.fair
        d0, d1, d2 = q.deserved
        _, cpu_managed, memory_managed = q.managed
        age = q.age
    else:
        a0 = a1 = a2 = f0 = f1 = f2 = d0 = d1 = d2 = 0
        cpu_managed = memory_managed = False
        ages = []
        for q in queues:
            allocated, fair, deserved, managed = q.allocated, q.fair, q.deserved, q.managed
            a0 += allocated[0]
            a1 += allocated[1]
            a2 += allocated[2]
            f0 += fair[0]
            f1 += fair[1]
            f2 += fair[2]
            d0 += deserved[0]
            d1 += deserved[1]
            d2 += deserved[2]
            cpu_managed = cpu_managed or managed[CPU]
            memory_managed = memory_managed or managed[MEMORY]
            ages.append(q.age)
        age = min(ages, default=0)
    n0, n1, n2 = need
    over = a0 > f0 or a1 > f1 or a2 > f2
    starved = ((not n0 or a0 + n0 <= d0)
               and (not n1 or not cpu_managed or a1 + n1 <= d1)
               and (not n2 or not memory_managed or a2 + n2 <= d2))
    c0, c1, c2 = capacity
    dominant = max(a0 / c0, a1 / c1, a2 / c2)
    return (over, not starved, _ratio3(a0 + n0, a1 + n1, a2 + n2, f0, f1, f2),
            _ratio3(a0, a1, a2, f0, f1, f2), dominant, age)


def _ratio3(a0: int, a1: int, a2: int, f0: int, f1: int, f2: int) -> float:
    """How far a queue is through its fair share: its dominant resource's allocated / fair."""
    worst = 0.0
    if a0:
        worst = max(worst, a0 / f0 if f0 else math.inf)
    if a1:
        worst = max(worst, a1 / f1 if f1 else math.inf)
    if a2:
        worst = max(worst, a2 / f2 if f2 else math.inf)
    return worst
