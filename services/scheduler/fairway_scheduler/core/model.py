"""The core's vocabulary: what a cycle sees (`ClusterSnapshot`) and what it decides (`CycleResult`).

Plain frozen values, no I/O types: the service shell, the simulator and the benchmarks build
snapshots from whatever they hold. (A result's `PendingReasons` is written while its cycle
runs, and only read after.)
"""

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, Protocol, overload

from fairway_scheduler.core.swap import GpuSwap


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    pool: str
    ready: bool
    gpus: int
    gpu_product: str | None = None
    gpu_memory_mib: int | None = None
    cpu_millis: int = 0
    memory_mib: int = 0
    max_pods: int = 110  # the kubelet refuses pods beyond this many on the node
    node_type: str | None = None  # its fairway.io/node-type label
    # Its labels that name a topology level of its pool (label key, value): where it sits in
    # the network (zone, block, rack, ...); other labels are not carried.
    labels: tuple[tuple[str, str], ...] = ()
    # Labelled fairway.io/gpu-swap=true: its GPU memory may be swapped to host memory (used
    # when its pool has swap on).
    gpu_swap: bool = False


@dataclass(frozen=True, slots=True)
class Allocation:
    """GPUs one pod holds on a node.

    `unknown_devices` counts GPUs of a pod found bound without a decision of ours (its device
    indices unknown): that many of the node's lowest free devices count as taken.
    """

    workload_id: str
    pod: str
    node: str
    gpu_devices: tuple[int, ...] = ()
    unknown_devices: int = 0
    portion: float | None = None  # a fraction: this portion of each device in gpu_devices
    gpu_memory_mib: int | None = None  # a memory-sized fraction: this much of each device
    cpu_millis: int = 0
    memory_mib: int = 0


@dataclass(frozen=True, slots=True)
class PodSize:
    """What one pod asks for when it is not sized like the others (a distributed workload's
    master: an MPI launcher typically asks for no GPU and little CPU), in the terms of
    `Workload`'s per-pod fields."""

    gpus_per_pod: int = 0
    gpu_portion: float | None = None
    gpu_memory_mib: int | None = None
    cpu_millis: int = 0
    memory_mib: int = 0


@dataclass(frozen=True, slots=True)
class Workload:
    """A workload the scheduler knows both the request and the pods of, and that is not over."""

    id: str
    project: str
    priority: int  # higher goes first
    submitted_at: datetime
    gpus_per_pod: int
    min_pods: int = 1  # the gang: this many pods start together or none does
    pods: int = 1
    node_pools: tuple[str, ...] = ()  # preference order; empty: every pool, `default` first
    preemptible: bool = True
    waiting_pods: tuple[str, ...] = ()  # pods with no node and no allocation
    # Fractions: `gpus_per_pod` devices per pod, each shared at this portion (0 < p < 1) or
    # this much device memory; `gpu_limit` above the portion makes it a dynamic fraction.
    gpu_portion: float | None = None
    gpu_memory_mib: int | None = None
    gpu_limit: float | None = None
    gpu_memory_limit_mib: int | None = None  # a memory fraction's limit: a portion per node
    cpu_millis: int = 0  # per pod
    memory_mib: int = 0  # per pod
    # Disruption: when its gang started running (minimum guaranteed runtime counts
    # from here; None: not running), since when it runs with fewer than `min_pods` pods (a
    # pod was lost; stale-gang eviction counts from here), and its pods that a preemption
    # decision is evicting (they hold their GPUs until they are gone, and are free room for
    # the workload they were evicted for).
    started_at: datetime | None = None
    below_min_since: datetime | None = None
    evicting_pods: tuple[str, ...] = ()
    node_type: str | None = None  # only nodes of this type (a scheduling rule); None: any
    name: str = ""  # what sentences call it (its id when empty)
    # A distributed workload's master sized on its own: the pod named `master_pod` asks for
    # `master`, every other pod for the per-pod fields above (None: all pods alike).
    master: PodSize | None = None
    master_pod: str | None = None
    # Topology-aware placement: node label keys among its pool's topology levels. Required:
    # every pod inside one domain of that level (else it waits); preferred: the smallest
    # domain with room first, widening level by level.
    topology_required: str | None = None
    topology_preferred: str | None = None


@dataclass(frozen=True, slots=True)
class Quota:
    """One resource of one queue: GPUs (may be fractional), CPU millicores or memory MiB."""

    deserved: float = 0
    limit: float = -1  # -1: no limit
    over_quota_weight: float = 1


NO_QUOTA = Quota()


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A project's or a department's quota in one node pool."""

    name: str
    kind: str  # "project" | "department"
    pool: str
    parent: str | None = None  # a project's department; None: it hangs off the root
    gpu: Quota = NO_QUOTA
    cpu: Quota = NO_QUOTA
    memory: Quota = NO_QUOTA
    # When the project or department was created: ties in fair share and queue order go to
    # the older one (None: after those with a time, in the order given).
    created_at: datetime | None = None


SLIDING, TUMBLING = "sliding", "tumbling"
WINDOW_TYPES = (SLIDING, TUMBLING)
WEEK = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class TimeAwareFairness:
    """How past usage corrects over-quota weights (`usage`), cluster-wide or one node pool's."""

    enabled: bool = False
    window_type: str = SLIDING  # sliding | tumbling
    window_seconds: float = WEEK
    half_life_seconds: float = 0  # 0: no decay
    k_value: float = 1.0  # how strongly usage corrects the weight (0: not at all)


TIME_AWARE_FAIRNESS_OFF = TimeAwareFairness()


class UsageSource(Protocol):
    """Each queue's usage as a window sees it (`usage.UsageHistory`)."""

    def usage(self, key: tuple[str, str, str], now: datetime, settings: TimeAwareFairness
              ) -> tuple[float, float, float]: ...


@dataclass(frozen=True, slots=True)
class NodePool:
    name: str
    gpu_placement: str = "binpack"  # binpack | spread
    cpu_placement: str = "binpack"
    min_guaranteed_runtime: float = 0  # seconds a preemptible workload runs before it may be
    # a victim
    time_aware_fairness: TimeAwareFairness | None = None  # None: the cluster's
    # Its network topology: node label keys, widest level first (zone, block, rack, host).
    topology: tuple[str, ...] = ()
    # GPU memory swap on its swap-capable nodes (None: off).
    swap: GpuSwap | None = None


@dataclass(frozen=True, slots=True)
class DisruptionSettings:
    """How far the disruptive actions may go in one cycle."""

    reclaim: bool = True
    preempt: bool = True
    consolidate: bool = True
    stale_gang_grace: float = 60  # seconds below its minimum before a gang is evicted whole
    max_pods_moved: int = 8  # consolidation: pods moved per cycle at most
    max_tentative_victims: int = 256  # per attempt: how many victims a simulation may try
    # Reclaim's saturation rule: a reclaimer that ends above its fair share (and deserved
    # quota) must end less saturated than every sibling it took from, its own allocated / fair
    # share multiplied by this first (>= 1; larger reclaims less eagerly).
    reclaimer_saturation_multiplier: float = 1.0
    # A pool a workload names that the scheduler has not heard of (or that has no node yet)
    # may be on its way (an organisation event racing the submission): the workload waits
    # this long after its submission before it is refused as never placeable.
    missing_pool_grace: float = 0


@dataclass(frozen=True, slots=True)
class Nomination:
    """A workload placed onto room that its victims were still vacating (a pipelined
    placement, bound only once they are gone): the next cycles place it in `pool` before any
    other waiting workload, while it waits and `victims` (workload ids) still have pods
    leaving, so that the room made for it goes to it and not to whoever is next in line (a
    victim among them, which would then be reclaimed again, cycle after cycle)."""

    workload_id: str
    pool: str
    victims: tuple[str, ...] = ()


# One kept snapshot's change from the one before: (the generation before, its own, the
# workloads made again or new by id, the ids gone).
WorkloadStep = tuple[int, int, Mapping[str, "Workload"], frozenset[str]]
# Steps kept with a snapshot: a kept structure that skipped fewer cycles than this (the
# disruptive actions do not run every cycle) still applies the changes only.
STEPS_KEPT = 16
_WAITING_PODS = attrgetter("waiting_pods")


@dataclass(frozen=True, slots=True)
class WorkloadChanges:
    """What a snapshot kept between cycles (`ClusterState.snapshot`) knows of its workloads
    beyond the tuple: which changed since the kept snapshots before it, so that what a cycle
    keeps per workload (`Ledger.waiting`, `Ledger.index`, `Ledger.runs`) is brought up to it
    without a walk of every workload; and the workloads with pods waiting, in order.

    `generation` names the snapshot (unique in the process); `steps` are the changes from the
    snapshots before it, oldest first, the last one ending at `generation`. It describes
    `workloads` only: a snapshot with other workloads (`replace`) is read as a plain one."""

    generation: int
    workloads: tuple["Workload", ...]
    waiting: tuple["Workload", ...]
    steps: tuple[WorkloadStep, ...] = ()
    below_min: bool = False  # some workload runs below its minimum
    evicting: frozenset[str] = frozenset()  # the workloads evicting pods, by id

    def since(self, generation: int | None
              ) -> tuple[dict[str, "Workload"], set[str]] | None:
        """The workloads made again or new since the snapshot `generation` (by id: their
        objects now) and the ids gone since (an id gone and back is in both); None when
        this snapshot does not reach back to it."""
        if generation is None:
            return None
        made: dict[str, Workload] = {}
        gone: set[str] = set()
        if generation == self.generation:
            return made, gone
        start = next((i for i, step in enumerate(self.steps) if step[0] == generation), None)
        if start is None:
            return None
        for _, _, step_made, step_gone in self.steps[start:]:
            for wid in step_gone:
                made.pop(wid, None)
            gone.update(step_gone)
            made.update(step_made)
        return made, gone


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    nodes: tuple[Node, ...] = ()
    workloads: tuple[Workload, ...] = ()
    allocations: tuple[Allocation, ...] = ()
    # The fair-share core (`allocate`) reads these; a project without a QueueSpec in a pool
    # has deserved 0, no limit, weight 1 there. A pool without a NodePool entry binpacks.
    pools: tuple[NodePool, ...] = ()
    queues: tuple[QueueSpec, ...] = ()
    now: datetime | None = None  # the cycle's time (minimum runtime, stale gangs)
    disruption: DisruptionSettings = DisruptionSettings()
    nominated: tuple[Nomination, ...] = ()  # the last cycle's `CycleResult.nominated`
    # Time-aware fairness: the cluster's settings (a pool's own, where it has them, win) and
    # each queue's usage history (`usage.UsageHistory`, read at `now`; None: no history).
    time_aware_fairness: TimeAwareFairness = TIME_AWARE_FAIRNESS_OFF
    usage: UsageSource | None = None
    # A kept snapshot's: what changed in its workloads since the ones before (not part of
    # what it is: a snapshot made afresh equals it).
    changes: WorkloadChanges | None = field(default=None, compare=False, repr=False)

    @property
    def kept_changes(self) -> WorkloadChanges | None:
        """`changes`, when they describe this snapshot's workloads."""
        changes = self.changes
        if changes is None or changes.workloads is not self.workloads:
            return None
        return changes

    @property
    def generation(self) -> int | None:
        """The kept snapshot's generation (None: a plain snapshot)."""
        changes = self.kept_changes
        return changes.generation if changes is not None else None

    def changed_since(self, generation: int | None
                      ) -> tuple[dict[str, "Workload"], Set[str]] | None:
        """The workloads made again or new since the kept snapshot `generation`, by id, and
        the ids gone since; None when not known (a plain snapshot, or one that does not reach
        back to it): walk the workloads."""
        changes = self.kept_changes
        return changes.since(generation) if changes is not None else None

    def waiting_workloads(self) -> list[Workload]:
        """The workloads with pods waiting, in the snapshot's order."""
        changes = self.kept_changes
        if changes is not None:
            return list(changes.waiting)
        return list(filter(_WAITING_PODS, self.workloads))

    def any_below_min(self) -> bool:
        """Whether any gang runs below its minimum. (A plain loop: over 140,000 workloads it
        costs a third of `any` over a generator.)"""
        changes = self.kept_changes
        if changes is not None:
            return changes.below_min
        for w in self.workloads:
            if w.below_min_since is not None:
                return True
        return False

    def any_evicting_or_below_min(self) -> bool:
        """Whether any workload is evicting pods or runs below its minimum."""
        changes = self.kept_changes
        if changes is not None:
            return changes.below_min or bool(changes.evicting)
        for w in self.workloads:
            if w.evicting_pods or w.below_min_since is not None:
                return True
        return False

    def evicting_workloads(self) -> Set[str]:
        """The workloads evicting pods, by id (few, and kept: no walk of every workload)."""
        changes = self.kept_changes
        if changes is not None:
            return changes.evicting
        return {w.id for w in self.workloads if w.evicting_pods}


@dataclass(frozen=True, slots=True)
class PodPlacement:
    pod: str
    node: str
    gpu_devices: tuple[int, ...] = ()
    portion: float | None = None  # fractions: the portion of each device taken
    gpu_memory_mib: int | None = None  # memory-sized fractions: the memory asked per device
    gpu_limit: float | None = None  # dynamic fractions: the portion it may grow to


@dataclass(frozen=True, slots=True)
class Placement:
    """Pods of one workload placed in this cycle.

    `pipelined`: placed on room that preempted pods still hold; bind it once they are gone
    (a shell whose evictions take time binds it in a later cycle, when `allocate` finds the
    room free). `moved`: a consolidation moved this running workload here."""

    workload_id: str
    pods: tuple[PodPlacement, ...]
    pipelined: bool = False
    moved: bool = False


@dataclass(frozen=True, slots=True)
class Eviction:
    """A preemption decision: evict these pods (None: every pod) of a running workload."""

    workload_id: str
    reason: str  # reclaim | preempt | consolidate | stale-gang
    by: str | None  # the workload that needed the room, where there is one
    message: str
    pods: tuple[str, ...] | None = None


class PendingCode(StrEnum):
    """Why a workload's pods still wait, as a machine reads it."""

    WAITING_FOR_PODS = "WaitingForPods"  # the gang's pods do not all exist yet
    NO_FITTING_NODE = "NoFittingNode"  # a node could hold the pod, none has that much free
    # The fair-share core's codes (`allocate`).
    OVER_LIMIT = "OverLimit"  # the project or department would go over its limit
    NON_PREEMPTIBLE_OVER_QUOTA = "NonPreemptibleOverQuota"  # non-preemptible, beyond deserved
    GANG_UNSCHEDULABLE = "GangUnschedulable"  # the gang's pods do not all fit together
    NO_NODE_OF_TYPE = "NoNodeOfType"  # none of its pools has a node of its node type
    NODE_POOL_UNAVAILABLE = "NodePoolUnavailable"  # no such pool, or no ready node in it
    OVER_FAIR_SHARE = "OverFairShare"  # no room, and the queue is at or over its fair share
    NO_SUCH_RESOURCE = "NoSuchResource"  # asks for more than any node of its pools has
    # Disruption: room is being made for it (preempted pods are leaving).
    WAITING_FOR_PREEMPTION = "WaitingForPreemption"


class PendingReason(NamedTuple):
    """Why a workload's pods still wait, as a person reads it: numbers included.

    A named tuple: a cycle at KAI's scale makes one for each of its 40,000 waiting workloads
    and the service compares each with the one before (most differ: their numbers move), and
    a tuple is made and compared at C speed (a dataclass's `__eq__` builds two tuples in Python
    to compare: 60 ms a cycle against a few)."""

    workload_id: str
    code: PendingCode
    message: str
    # It can never be placed as the cluster stands (none of its pools exists or has nodes, or a
    # pod asks for more than any node of them has, ready or not): to refuse, not to wait for.
    unschedulable: bool = False


class WaitReason(NamedTuple):
    """Why a workload waits, without naming it: what a class of workloads refused alike is
    told, one value shared by all of them (a `PendingReason` is this with the workload's id)."""

    code: PendingCode
    message: str
    unschedulable: bool = False


class PendingReasons(Sequence[PendingReason]):
    """A cycle's pending reasons: written while the cycle runs (`tell`, `tell_classes`,
    `retell`), then read as the sequence of `PendingReason`s they stand for, in the order they
    were told.

    At KAI's scale a cycle refuses some 40,000 waiting workloads, nearly all of them a class at
    a time (a few hundred that ask alike, told one sentence). They are kept that way: a class
    is its members' ids and one shared `WaitReason`, so telling it costs a copy of the list
    and not a `PendingReason` per member. `by_workload()` reads them as that, at C speed (what
    the service compares with the reasons it told before); the sequence is made on first
    reading, once."""

    __slots__ = ("_count", "_made", "_parts")

    def __init__(self, reasons: Iterable[PendingReason] = ()):
        # ("one", reason) | ("again", reason): told (again: moved last) |
        # ("classes", [(sorted `(rank, id)` keys of members, WaitReason), ...]): told together,
        # their members merged in key order
        self._parts: list[tuple[str, Any]] = [("one", r) for r in reasons]
        self._made: tuple[PendingReason, ...] | None = None
        self._count: int | None = None

    # written while the cycle runs -------------------------------------------------------
    def tell(self, reason: PendingReason) -> None:
        """One workload's reason (one reason per workload and cycle)."""
        self._parts.append(("one", reason))
        self._made = self._count = None

    def tell_classes(self, classes: list[tuple[list[tuple[Any, str]], WaitReason]]) -> None:
        """Classes of workloads told at once: each its members' keys (`(rank, workload id)`,
        sorted, unique across the classes) and their shared reason; read as the members of
        them all in key order."""
        self._parts.append(("classes", classes))
        self._made = self._count = None

    def retell(self, reason: PendingReason) -> None:
        """A new reason for a workload that may have one already: it replaces it, and comes
        last, as it was said last."""
        self._parts.append(("again", reason))
        self._made = self._count = None

    # read after -------------------------------------------------------------------------
    def by_workload(self) -> dict[str, WaitReason]:
        """Each workload's reason by id; a class's members share theirs (the same object)."""
        out: dict[str, WaitReason] = {}
        for kind, part in self._parts:
            if kind == "classes":
                for keys, why in part:
                    out.update(zip(map(_SECOND, keys), repeat(why)))
            else:
                out[part.workload_id] = WaitReason(part.code, part.message, part.unschedulable)
        return out

    def _reasons(self) -> tuple[PendingReason, ...]:
        made = self._made
        if made is None:
            out: dict[str, PendingReason] = {}
            for kind, part in self._parts:
                if kind == "classes":
                    # (keys are unique: the class's index is never compared)
                    tagged = [[(key, i) for key in keys] for i, (keys, _) in enumerate(part)]
                    for (_, wid), i in heapq.merge(*tagged):
                        assert wid not in out, wid  # one reason per workload and cycle
                        out[wid] = PendingReason(wid, *part[i][1])
                elif kind == "one":
                    assert part.workload_id not in out, part.workload_id
                    out[part.workload_id] = part
                else:
                    out.pop(part.workload_id, None)
                    out[part.workload_id] = part
            made = self._made = tuple(out.values())
        return made

    def __len__(self) -> int:
        # (how many workloads wait, without a `PendingReason` made for each)
        if self._made is not None:
            return len(self._made)
        if self._count is None:
            self._count = len(self.by_workload())
        return self._count

    @overload
    def __getitem__(self, index: int) -> PendingReason: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[PendingReason, ...]: ...
    def __getitem__(self, index):
        return self._reasons()[index]

    def __iter__(self) -> Iterator[PendingReason]:
        return iter(self._reasons())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PendingReasons):
            return self._reasons() == other._reasons()
        if isinstance(other, tuple):
            return self._reasons() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:  # as the tuple it stands for (decision digests hash it)
        return repr(self._reasons())


_SECOND = itemgetter(1)


def reasons_by_workload(reasons: Iterable[PendingReason] | Mapping[str, WaitReason]
                        ) -> dict[str, WaitReason]:
    """Pending reasons by workload id: a cycle's (`PendingReasons.by_workload`, its classes'
    members sharing theirs), any others one by one; a dict of them already, as it is."""
    if isinstance(reasons, PendingReasons):
        return reasons.by_workload()
    if isinstance(reasons, dict):
        return reasons
    if isinstance(reasons, Mapping):
        return dict(reasons)
    return {r.workload_id: WaitReason(r.code, r.message, r.unschedulable) for r in reasons}


@dataclass(frozen=True, slots=True)
class ResourceStatus:
    """One resource of one queue after a cycle, in user units (GPUs, millicores, MiB)."""

    deserved: float
    limit: float
    over_quota_weight: float
    fair_share: float
    allocated: float
    allocated_non_preemptible: float
    requested: float
    # Time-aware fairness on in the queue's pool: its usage in the window (resource-seconds:
    # GPU-seconds, millicore-seconds, MiB-seconds) and the over-quota weight it had for it.
    # Left out of the repr, which the benchmark's decisions digest hashes: with the feature
    # off it stays what it was.
    usage: float | None = field(default=None, repr=False)
    adjusted_over_quota_weight: float | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class QueueStatus:
    name: str
    kind: str
    pool: str
    parent: str | None
    gpu: ResourceStatus
    cpu: ResourceStatus
    memory: ResourceStatus


@dataclass(frozen=True, slots=True)
class CycleResult:
    placements: tuple[Placement, ...] = ()
    # (a tuple of them, or as a cycle tells them: `PendingReasons`)
    pending: Sequence[PendingReason] = ()
    queues: tuple[QueueStatus, ...] = ()  # the fair-share core's queue status
    evictions: tuple[Eviction, ...] = ()
    # Workloads placed onto room still being vacated, for the next cycle's snapshot.
    nominated: tuple[Nomination, ...] = ()
