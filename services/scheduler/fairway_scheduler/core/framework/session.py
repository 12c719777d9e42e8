"""The session: one cycle's working copy of the cluster, built from a `ClusterSnapshot`.

It holds the nodes and devices (`nodes.PoolNodes` per pool), the queues with what they hold
and ask for and their fair shares (`queues.Queues`), and each waiting workload's per-pod
request. What running pods hold comes from a `ledger.Ledger`: built from the snapshot's
allocations, or kept between cycles by the caller, and with it what is worked out per waiting
workload (`WaitingIndex`: requests, unschedulable ones, what each asks) and the nodes and pools
as the last cycle left them (`KeptRoom`: only those changed since are set anew). The actions
change it only through a `statement.Statement` (place, evict, pipeline; checkpoint and
rollback), which uses the primitives here (`release`, `restore`, `account`, `hold_in`);
`result()` turns it into a `CycleResult`.
"""

import functools
from collections import Counter
from collections.abc import Iterable, Set
from dataclasses import dataclass, field, replace
from itertools import chain

from fairway_scheduler.core import reasons
from fairway_scheduler.core.domains import PoolTopology
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.model import (
    ClusterSnapshot,
    CycleResult,
    Eviction,
    Node,
    NodePool,
    Nomination,
    PendingCode,
    PendingReasons,
    Placement,
    PodPlacement,
    PodSize,
    TimeAwareFairness,
    Workload,
)
from fairway_scheduler.core.nodes import FULL, NodeState, PoolNodes, Take, natural
from fairway_scheduler.core.queues import CPU, GPU, MEMORY, MILLI, Queues
from fairway_scheduler.core.reasons import Reason

DEFAULT_POOL = "default"


@dataclass(frozen=True, slots=True)
class Request:
    """What one pod of a workload asks for, in units (milli-GPUs estimated for memory-sized
    fractions from the pool's largest device)."""

    devices: int  # devices per pod (whole, or each shared at `portion` / `memory`)
    portion: int | None  # milli-GPUs per device for a portion fraction
    memory: int | None  # MiB per device for a memory fraction
    cpu: int
    mem: int
    node_type: str | None = None
    # The master pod's own request, where the workload sizes its master apart (see
    # `pod_request`); None: every pod asks for this one.
    master: "Request | None" = None
    # Its topology placement: (required level, preferred level) as node label keys; None:
    # anywhere in the pool.
    topology: tuple[str | None, str | None] | None = None

    @property
    def fraction(self) -> bool:
        return self.portion is not None or self.memory is not None

    def gpu_units(self, dev_memory: int) -> int:
        if self.portion is not None:
            return self.devices * self.portion
        if self.memory is not None:
            return self.devices * (-(-self.memory * FULL // dev_memory) if dev_memory else FULL)
        return self.devices * MILLI

    def vector(self, dev_memory: int) -> list[int]:
        return [self.gpu_units(dev_memory), self.cpu, self.mem]


@dataclass(slots=True)
class Hold:
    """One running pod and what it holds. It names its node (`NodeState.idx`, with the
    node's name and pool) rather than holding a cycle's `NodeState`, so that it outlives the
    cycle: the solver's index of running pods is kept between cycles (`holds.HoldIndex`)."""

    workload: Workload
    pod: str
    node_name: str
    idx: int
    pool: str
    devices: tuple[int, ...]
    milli: int
    cpu: int
    mem: int

    @property
    def gpu(self) -> int:
        return self.milli * len(self.devices)


def request_of(workload: Workload) -> Request:
    master = None
    if workload.master is not None:
        master = _sized(workload.master, workload.node_type)
    request = _sized(workload, workload.node_type, master)
    if workload.topology_required or workload.topology_preferred:
        request = replace(request, topology=(workload.topology_required,
                                             workload.topology_preferred))
    return request


def _sized(size: Workload | PodSize, node_type: str | None, master: Request | None = None
           ) -> Request:
    portion = None
    if size.gpu_portion is not None and size.gpu_portion < 1:
        portion = round(size.gpu_portion * MILLI)
    devices = size.gpus_per_pod
    if (portion is not None or size.gpu_memory_mib is not None) and devices == 0:
        devices = 1
    return Request(devices, portion, size.gpu_memory_mib, size.cpu_millis, size.memory_mib,
                   node_type, master)


def pod_request(request: Request, workload: Workload, pod: str) -> Request:
    """What the pod asks for: the master's own request for the master pod, else the
    workload's per-pod one."""
    if request.master is not None and pod == workload.master_pod:
        return request.master
    return request


def gang_need(request: Request, workload: Workload, pods: list[str], dev_memory: int
              ) -> list[int]:
    """What `pods` (pods of the workload) ask for together (milli-GPUs, millicores, MiB)."""
    vector = request.vector(dev_memory)
    if request.master is None or workload.master_pod not in pods:
        return [v * len(pods) for v in vector]
    master = request.master.vector(dev_memory)
    return [v * (len(pods) - 1) + m for v, m in zip(vector, master, strict=True)]


def sized_apart(request: Request, workload: Workload, pods: list[str]) -> bool:
    """Whether the master, sized apart from the others, is among `pods`: then they are not
    all alike, and what is worked out per request and count of pods is not shared."""
    return request.master is not None and workload.master_pod in pods


def requests_of(workloads: list[Workload]) -> dict[str, Request]:
    """Each workload's request by id; workloads that ask alike share one `Request` (a few
    shapes among thousands of waiting workloads), so what is worked out per request is
    worked out once, keyed by the object."""
    shared: dict[tuple, Request] = {}
    out: dict[str, Request] = {}
    for w in workloads:
        shape = (w.gpus_per_pod, w.gpu_portion, w.gpu_memory_mib, w.cpu_millis, w.memory_mib,
                 w.node_type, w.master, w.topology_required, w.topology_preferred)
        request = shared.get(shape)
        if request is None:
            request = shared[shape] = request_of(w)
        out[w.id] = request
    return out


# What waiting pods ask per project, pool and request: (project, pool, `id` of the request)
# -> [pods, the request, ...] (requests are shared objects: keyed by identity, not hashed)
Asked = dict[tuple[str, str, int], list]


def asks(workload: Workload, request: Request, pool: str
         ) -> tuple[tuple[tuple[str, str, int], int, Request], ...]:
    """What the workload's waiting pods ask of its project's queue in `pool`: how many pods of
    which request (a master sized apart that waits counted at its own size)."""
    waiting = len(workload.waiting_pods)
    if request.master is not None and workload.master_pod in workload.waiting_pods:
        master = request.master
        return (((workload.project, pool, id(master)), 1, master),
                ((workload.project, pool, id(request)), waiting - 1, request))
    return (((workload.project, pool, id(request)), waiting, request),)


def too_large(pool, request: Request) -> str | None:
    """Why no node of the pool (its `max_*` figures) could ever hold one pod, even empty; None
    when one could. A master sized apart is checked too (the reason says so)."""
    why = _too_large(pool, request)
    if why is None and request.master is not None:
        master = _too_large(pool, request.master)
        if master is not None:
            why = f"its master pod needs {reasons.per_pod(request.master)}; {master}"
    return why


def _too_large(pool, request: Request) -> str | None:
    if request.devices > pool.max_devices:
        return f"the largest has {reasons.count(pool.max_devices, 'GPU')}"
    if request.memory is not None and request.memory > pool.max_dev_memory:
        return f"the largest GPU memory is {pool.max_dev_memory} MiB"
    if request.cpu > pool.max_cpu:
        return f"the largest has {pool.max_cpu} millicores"
    if request.mem > pool.max_mem:
        return f"the largest has {pool.max_mem} MiB of memory"
    return None


def _layout(ledger: Ledger, nodes: tuple[Node, ...]
            ) -> tuple[list[Node], dict[str, list[int]], dict[str, int], dict[str, list[int]]]:
    """The nodes in natural name order; per pool, the positions in it of its ready nodes, how
    many nodes it has, and what its ready nodes have in all (milli-GPUs, millicores, MiB).
    Kept with the ledger for the snapshot's node tuple (the same from cycle to cycle while no
    node changes): sorting thousands of names is most of it."""
    kept = ledger.layout
    if kept is not None and kept[0] is nodes:
        return kept[1], kept[2], kept[3], kept[4]
    ordered = sorted(nodes, key=lambda n: natural(n.name))
    ready_in: dict[str, list[int]] = {}
    totals: dict[str, list[int]] = {}
    for i, node in enumerate(ordered):
        at = ready_in.setdefault(node.pool, [])
        if node.ready:
            at.append(i)
            total = totals.setdefault(node.pool, [0, 0, 0])
            total[GPU] += node.gpus * MILLI
            total[CPU] += node.cpu_millis
            total[MEMORY] += node.memory_mib
    counts = dict(Counter(node.pool for node in ordered))
    ledger.layout = (nodes, ordered, ready_in, counts, totals)
    return ordered, ready_in, counts, totals


class Session:
    def __init__(self, snapshot: ClusterSnapshot, ledger: Ledger | None = None):
        self.snapshot = snapshot
        # Kept for the cycle's own use, and at the end: what running pods hold.
        self.ledger = ledger if ledger is not None else Ledger.of(snapshot)
        ordered, ready_in, nodes_in, self._ready_totals = _layout(self.ledger, snapshot.nodes)
        self.nodes: dict[str, NodeState]
        # by `NodeState.idx` (what a `Hold` names)
        self.node_at: dict[int, NodeState]
        # Building walks only the waiting workloads (running ones matter to the disruptive
        # actions alone, through `workloads`, made when first asked for); a kept snapshot
        # knows them.
        self.waiting = snapshot.waiting_workloads()
        self.queues = Queues(snapshot.queues)
        self.queues.materialise()
        # Pods each workload holds; read with `get(id, 0)`: most waiting workloads hold
        # nothing. A plain dict, copied from the ledger's with `dict.copy`, which clones its
        # table whole (100,000 workloads at KAI's scale): a `defaultdict` (or a `Counter`) is
        # filled entry by entry from a table with gaps of deleted entries, ten times slower.
        self.held: dict[str, int] = {}
        self.held_pool: dict[str, str] = {}
        self.placements: list[Placement] = []
        self.pending = PendingReasons()  # in the order told
        self.evictions: list[Eviction] = []
        # Last cycle's nominations that still wait for their room (`Allocate`), kept for the
        # next cycle with those this cycle makes.
        self.nominated: list[Nomination] = []
        self.now = snapshot.now
        # Statements kept (`Statement.commit`): what a disruptive action found for one
        # workload holds for another that asks alike until the next one (`cycle._decide`).
        self.commits = 0
        # Each waiting workload's pods still waiting, in natural order, as allocation leaves
        # them (it places a workload's first pods, and drops them): the disruptive actions
        # go on from them (`Solver`). None: allocation did not run.
        self.pods_waiting: dict[str, list[str]] | None = None
        self._hold(self.ledger)
        strategies = self._pool_config = {pool.name: pool for pool in snapshot.pools}
        self.pools: dict[str, PoolNodes]
        room = self.ledger.room
        if isinstance(room, KeptRoom) and room.fits(snapshot):
            self.nodes, self.node_at, self.pools = room.nodes, room.node_at, room.pools
            room.bring_up_to_date(self.ledger)
        else:
            self._make_room(ordered, ready_in, strategies)
        # Topology domains, indexed when a workload first asks for a pool's.
        self._topology = {name: config.topology for name, config in strategies.items()
                          if config.topology}
        self._topologies: dict[str, PoolTopology] = {}
        self._nodes_of: dict[str, set[int]] | None = None
        self.all_nodes_in = Counter(nodes_in)
        self._every_pool = (tuple(sorted(self.pools, key=lambda p: (p != DEFAULT_POOL, p)))
                            or (DEFAULT_POOL,))
        self._preferred: dict[tuple[str, ...], tuple[str, ...]] = {}
        # `target_pools` of the waiting workloads (from the index), kept as placements make
        # a workload hold in a pool (`hold_in`)
        self._targets: dict[str, tuple[str, ...]] = {}
        # Each waiting workload's request; those that can never be placed as the cluster
        # stands (refused, not counted as requested: they would shift fair shares for
        # nothing); and what the others ask of their queues. Kept with the ledger
        # (`WaitingIndex`), worked out here only for a snapshot with the same workload twice.
        # And the waiting workloads that hold pods as the cycle begins (`waiting_holding`:
        # a thousand of 40,000 at KAI's scale, which allocation's classes and the disruptive
        # actions' runs read apart; found among 100,000 holding workloads, it cost a set
        # intersection each, several milliseconds).
        index = self.ledger.waiting
        if not isinstance(index, WaitingIndex):
            index = self.ledger.waiting = WaitingIndex()
        if index.sync(self):
            self.requests = index.requests.copy()
            self._targets = index.targets.copy()
            self.unschedulable, asked = index.refused(self)
            self.waiting_holding: Set[str] = set(index.holding)
        else:
            self.requests = requests_of(self.waiting)
            self.unschedulable = self._find_unschedulable()
            asked = self._asked()
            self.waiting_holding = {w.id for w in self.waiting if self.held.get(w.id)}
        self._count_requests(asked)
        self.queues.compute_fair_shares(self.capacity(), self._time_aware())

    def _time_aware(self) -> dict[str, TimeAwareFairness] | None:
        """The pools where time-aware fairness is on, with their settings; their queues' usage
        read from the history at the cycle's time."""
        snapshot = self.snapshot
        cluster = snapshot.time_aware_fairness
        on: dict[str, TimeAwareFairness] = {}
        for name in self.pools:
            config = self._pool_config.get(name)
            settings = (config.time_aware_fairness if config is not None
                        and config.time_aware_fairness is not None else cluster)
            if settings.enabled:
                on[name] = settings
        if not on or snapshot.now is None:
            return None
        history = snapshot.usage
        for (kind, name, pool), queue in self.queues.queues.items():
            settings = on.get(pool)
            if settings is not None:
                queue.usage = (list(history.usage((kind, name, pool), snapshot.now, settings))
                               if history is not None else [0.0, 0.0, 0.0])
        return on

    @functools.cached_property
    def workloads(self) -> dict[str, Workload]:
        """Every workload of the snapshot by id."""
        return {w.id: w for w in self.snapshot.workloads}

    # building ---------------------------------------------------------------------------
    def _make_room(self, ordered: list[Node], ready_in: dict[str, list[int]],
                   strategies: dict[str, NodePool]) -> None:
        """This cycle's nodes, what the ledger says running pods hold on them, and the pools
        that index them; kept with the ledger for the next cycle (`KeptRoom`) unless two nodes
        share a name or GPU memory swap is on (what swapping nodes hold is read from the
        snapshot's allocations, not the ledger)."""
        self.nodes = {node.name: NodeState(i, node) for i, node in enumerate(ordered)}
        self.node_at = {state.idx: state for state in self.nodes.values()}
        hold_nodes(self.ledger, self.nodes.items())
        swapping = self._swap_on(strategies)
        # The pools index their nodes once what is held is known.
        pool_names = set(ready_in) | set(strategies)
        # (by `NodeState.idx`, their place in `ordered`, unless two nodes share a name: then
        # the state kept under it, as the nodes are looked up by name)
        alone = len(self.nodes) == len(ordered)
        states = (list(self.nodes.values()) if alone
                  else [self.nodes[n.name] for n in ordered])
        self.pools = {}
        for name in sorted(pool_names):
            config = strategies.get(name)
            ready = [states[i] for i in ready_in.get(name, ())]
            self.pools[name] = PoolNodes(name, ready,
                                         config.gpu_placement if config else "binpack",
                                         config.cpu_placement if config else "binpack")
        self.ledger.room = (KeptRoom(self.snapshot, self.nodes, self.node_at, self.pools)
                            if alone and not swapping else None)

    def _hold(self, ledger: Ledger) -> None:
        """What running pods hold, copied from the ledger: per workload, and onto this cycle's
        queues (onto its nodes: `hold_nodes`)."""
        self.held = dict.copy(ledger.held)  # (a plain dict: see `__init__`)
        self.held_pool = ledger.held_pool.copy()  # (a copy of its table: `dict()` inserts)
        for (project, pool), use in sorted(ledger.queue_use.items()):
            for q in self.queues.project(project, pool).chain():
                for r in range(3):
                    q.allocated[r] += use[r]
                    q.allocated_np[r] += use[3 + r]

    def _swap_on(self, pools: dict[str, NodePool]) -> bool:
        """GPU memory swap: the swap-capable nodes of pools with swap on get the pool's
        settings and the fractions each of their devices holds (by request). True when
        there are such nodes."""
        swapping = {}
        for node in self.nodes.values():
            config = pools.get(node.pool)
            if node.gpu_swap and node.gpus and config is not None and config.swap is not None:
                node.swap = config.swap
                node.shares = [[] for _ in range(node.gpus)]
                swapping[node.name] = node
        if not swapping:
            return False
        for a in self.snapshot.allocations:
            node = swapping.get(a.node)
            if node is None or (a.portion is None and a.gpu_memory_mib is None):
                continue
            if a.portion is not None:
                milli = round(a.portion * FULL)
            else:
                milli = -(-(a.gpu_memory_mib or 0) * FULL // (node.dev_memory or 1))
            for d in a.gpu_devices:
                if 0 <= d < node.gpus:
                    node.shares[d].append(milli)
        return True

    def _find_unschedulable(self) -> dict[str, Reason]:
        """Waiting workloads that hold nothing and that no pool they may use could ever take
        (`never_fits`)."""
        out: dict[str, Reason] = {}
        # The answer depends on the request and the pools alone: found once per such shape
        # (requests are shared by the workloads that ask alike: keyed by the object).
        shapes: dict[tuple[int, tuple[str, ...]], Reason | None] = {}
        held = self.held
        requests = self.requests
        for workload in self.waiting:
            if held.get(workload.id):
                continue
            request = requests[workload.id]
            pools = self.target_pools(workload)
            shape = (id(request), pools)
            if shape in shapes:
                reason = shapes[shape]
            else:
                reason = shapes[shape] = self.never_fits(request, pools)
            if reason is None:
                continue
            if reason[0] == PendingCode.NODE_POOL_UNAVAILABLE and self._pool_may_come(workload):
                continue
            out[workload.id] = reason
        return out

    @functools.cached_property
    def _largest(self) -> "tuple[dict[str, list[NodeState]], dict[str, Largest]]":
        """Each pool's nodes, ready or not, and the largest of them per resource."""
        by_pool: dict[str, list[NodeState]] = {}
        for node in self.nodes.values():
            by_pool.setdefault(node.pool, []).append(node)
        return by_pool, {name: Largest(by_pool.get(name, [])) for name in self.pools}

    def never_fits(self, request: Request, pools: tuple[str, ...]) -> Reason | None:
        """Why no pool of `pools` could ever take one pod of the request: each is missing, has
        no nodes at all, or has no node (ready or not) of its type or as large as one pod. None
        when one could, and while the cluster reports no node at all (the inventory is not in
        yet)."""
        if not self.nodes:
            return None
        by_pool, largest = self._largest
        found: list[Reason] = []
        for pool in pools:
            if pool not in self.pools:
                found.append(reasons.pool_missing(pool))
            elif not self.all_nodes_in[pool]:
                found.append(reasons.pool_not_ready(pool, 0))
            elif request.node_type is not None and not any(
                    n.node_type == request.node_type for n in by_pool.get(pool, ())):
                found.append(reasons.no_node_of_type(pool, request.node_type))
            elif too_large := largest[pool].too_large(request):
                found.append(reasons.too_large(pool, request, too_large, ready=False))
            else:
                return None
        return next((r for r in found if r[0] != PendingCode.NODE_POOL_UNAVAILABLE), found[0])

    def _pool_may_come(self, workload: Workload) -> bool:
        grace = self.snapshot.disruption.missing_pool_grace
        return bool(grace and self.now is not None
                    and (self.now - workload.submitted_at).total_seconds() < grace)

    def _asked(self) -> Asked:
        """Pods waiting per project, pool and request, of the workloads not unschedulable."""
        asked: Asked = {}
        for workload in self.waiting:
            if workload.id not in self.unschedulable:
                pool = self.target_pools(workload)[0]
                for key, count, request in asks(workload, self.requests[workload.id], pool):
                    entry = asked.get(key)
                    if entry is None:
                        asked[key] = [count, request]
                    else:
                        entry[0] += count
        return asked

    def _count_requests(self, asked: Asked) -> None:
        """Each queue's `requested`: what it holds and what its waiting pods ask (whole units,
        so the order of the sums is free)."""
        queues = self.queues
        for queue in queues.queues.values():
            queue.requested = list(queue.allocated)
        if any(("project", project, pool) not in queues.queues for project, pool, _ in asked):
            # queues made in the order their workloads wait, as when each was counted in turn
            for workload in self.waiting:
                if workload.id not in self.unschedulable:
                    queues.project(workload.project, self.target_pools(workload)[0])
        for (project, pool, _), (count, request, *_) in asked.items():
            pool_nodes = self.pools.get(pool)
            dev_memory = pool_nodes.max_dev_memory if pool_nodes else 0
            vector = request.vector(dev_memory)
            queue = queues.project(project, pool)
            for r in range(3):
                queue.requested[r] += vector[r] * count

    def capacity(self) -> dict[str, list[int]]:
        """Per pool, what its ready nodes have in all (milli-GPUs, millicores, MiB): the
        caller's own lists (worked out once for the snapshot's nodes, `_layout`)."""
        totals = self._ready_totals
        return {name: list(totals.get(name, (0, 0, 0))) for name in self.pools}

    # reading ----------------------------------------------------------------------------
    def target_pools(self, workload: Workload) -> tuple[str, ...]:
        """Where to try: the pool its pods already run in, else its preference, else every
        pool with `default` first. (Asked some 200,000 times a cycle, mostly of waiting
        workloads: theirs are looked up.)"""
        pools = self._targets.get(workload.id)
        if pools is not None:
            return pools
        return self._target_pools(workload)

    def _target_pools(self, workload: Workload) -> tuple[str, ...]:
        pool = self.held_pool.get(workload.id)
        if pool is not None:
            return (pool,)
        if workload.node_pools:
            preferred = self._preferred.get(workload.node_pools)
            if preferred is None:
                preferred = self._preferred[workload.node_pools] = tuple(
                    dict.fromkeys(workload.node_pools))
            return preferred
        return self._every_pool

    def topology(self, pool: str) -> PoolTopology | None:
        """The pool's topology domains (None: it names no topology)."""
        levels = self._topology.get(pool)
        if levels is None or pool not in self.pools:
            return None
        topology = self._topologies.get(pool)
        if topology is None:
            topology = self._topologies[pool] = PoolTopology(levels, self.pools[pool])
        return topology

    def nodes_of(self, workload_id: str) -> set[int]:
        """The nodes (`NodeState.idx`) the workload's pods hold now: running ones and this
        cycle's placements (what a topology placement of more of its pods must stay with)."""
        if self._nodes_of is None:
            self._nodes_of = {}
            for (wid, _pod), entry in self.ledger.entries():
                node = self.nodes.get(entry[0]) if entry[0] is not None else None
                if node is not None:
                    self._nodes_of.setdefault(wid, set()).add(node.idx)
        out = set(self._nodes_of.get(workload_id, ()))
        for placement in self.placements:
            if placement.workload_id == workload_id:
                out.update(self.nodes[p.node].idx for p in placement.pods)
        return out

    # changing ---------------------------------------------------------------------------
    def hold_in(self, workload_id: str, pool: str | None) -> None:
        """The workload's first pods are placed in `pool` (None: taken back): it is tried
        there only (else where it was)."""
        if pool is None:
            del self.held_pool[workload_id]
            self._targets.pop(workload_id, None)
        else:
            self.held_pool[workload_id] = pool
            self._targets[workload_id] = (pool,)

    def account(self, workload: Workload, pool: str, vector: list[int], sign: int) -> None:
        queue = self.queues.project(workload.project, pool)
        for q in queue.chain():
            for r in range(3):
                q.allocated[r] += sign * vector[r]
                if not workload.preemptible:
                    q.allocated_np[r] += sign * vector[r]

    def release(self, hold: Hold) -> None:
        """The pod's room is free again (the queue no longer counts it)."""
        pool = self.pools[hold.pool]
        pool.give(Take(self.node_at[hold.idx], hold.devices, hold.milli, hold.cpu, hold.mem))
        self.account(hold.workload, pool.name, [hold.gpu, hold.cpu, hold.mem], -1)
        self.held[hold.workload.id] = self.held.get(hold.workload.id, 0) - 1

    def restore(self, hold: Hold) -> bool:
        """The released pod holds its room again; False (nothing changes) when it is taken."""
        node = self.node_at[hold.idx]
        fraction = hold.milli < FULL
        over = any(node.used[d] + hold.milli > FULL for d in hold.devices)
        if ((over and not (fraction and node.swap_room(hold.devices, hold.milli)))
                or not node.fits_host(hold.cpu, hold.mem)
                or not node.has_slots(hold.devices, hold.milli)):
            return False
        pool = self.pools[node.pool]
        pool.take(node, hold.devices, hold.milli, hold.cpu, hold.mem, fraction=fraction)
        self.account(hold.workload, pool.name, [hold.gpu, hold.cpu, hold.mem], +1)
        self.held[hold.workload.id] = self.held.get(hold.workload.id, 0) + 1
        return True

    def result(self) -> CycleResult:
        """One `Placement` per workload (a gang and the elastic pods that followed it in later
        turns of the same cycle together), in the order of first placement."""
        merged: dict[str, list[PodPlacement]] = {}
        flags: dict[str, tuple[bool, bool]] = {}
        for placement in self.placements:
            merged.setdefault(placement.workload_id, []).extend(placement.pods)
            pipelined, moved = flags.get(placement.workload_id, (False, False))
            flags[placement.workload_id] = (pipelined or placement.pipelined,
                                            moved or placement.moved)
        placements = tuple(Placement(wid, tuple(pods), *flags[wid])
                           for wid, pods in merged.items())
        return CycleResult(placements, self.pending, self.queues.status(),
                           tuple(self.evictions), self._nominations(placements))

    def _nominations(self, placements: tuple[Placement, ...]) -> tuple[Nomination, ...]:
        """Those kept from the last cycle, and every pipelined placement of this one: its
        victims are the workloads evicted for it (and a moved workload its own old pods)."""
        victims: dict[str, list[str]] = {}
        for eviction in self.evictions:
            if eviction.by is not None:
                victims.setdefault(eviction.by, []).append(eviction.workload_id)
        out = {n.workload_id: n for n in self.nominated}
        for placement in placements:
            if placement.pipelined:
                wid = placement.workload_id
                named = victims.get(wid, []) + ([wid] if placement.moved else [])
                out[wid] = Nomination(wid, self.held_pool[wid], tuple(dict.fromkeys(named)))
        return tuple(out.values())


def hold_nodes(ledger: Ledger, nodes: Iterable[tuple[str, NodeState]]) -> None:
    """What the ledger says running pods hold on each of `nodes` (by name), onto their
    states as made afresh (nothing held)."""
    # (thousands of nodes: the ledger's tables looked up once, its lists copied whole where
    # the node has as many devices, as it has unless the node changed)
    used_on, shared_on, host_on, pods_on = (ledger.used.get, ledger.shared.get,
                                            ledger.host.get, ledger.pods.get)
    for name, node in nodes:
        gpus = node.gpus
        used = used_on(name)
        if used:
            node.used = used.copy() if len(used) == gpus else (used + [0] * gpus)[:gpus]
        shared = shared_on(name)
        if shared:
            node.fractions = (shared.copy() if len(shared) == gpus
                              else (shared + [0] * gpus)[:gpus])
        host = host_on(name)
        if host:  # (`Ledger.reservations`, from the counts just read)
            reserved = len(shared) - shared.count(0) if shared else 0
            node.hold_host(host[0], host[1], pods_on(name, 0) + reserved)


class KeptRoom:
    """A session's nodes and the pools that index them, kept with the ledger
    (`Ledger.room`) for the next cycle on the same nodes and pools: at KAI's scale a cycle
    changes a fifth of 4,000 nodes, and making every node's state and every pool's index again
    was a tenth of a steady cycle. The next cycle sets anew, from the ledger, only the nodes
    the ledger held or released pods on since (`dirty`, told by the ledger) and those the
    last cycle took room on or gave it back (`PoolNodes.touched`, kept or rolled back alike),
    and drops what the pools worked out for the last cycle (`PoolNodes.next_cycle`): it
    starts where a session made afresh would."""

    def __init__(self, snapshot: ClusterSnapshot, nodes: dict[str, NodeState],
                 node_at: dict[int, NodeState], pools: dict[str, PoolNodes]):
        # the snapshot's node tuple (a kept snapshot hands the same one to cycle after
        # cycle; another one makes everything again) and pools
        self.made_for = (snapshot.nodes, snapshot.pools)
        self.nodes, self.node_at, self.pools = nodes, node_at, pools
        self.dirty: set[str] = set()  # nodes the ledger held or released pods on since

    def fits(self, snapshot: ClusterSnapshot) -> bool:
        nodes, pools = self.made_for
        return nodes is snapshot.nodes and (pools is snapshot.pools or pools == snapshot.pools)

    def bring_up_to_date(self, ledger: Ledger) -> None:
        """The nodes changed since the last cycle set anew from the ledger, and the pools
        ready for this one."""
        dirty, self.dirty = self.dirty, set()
        changed: dict[int, NodeState] = {}
        for name in dirty:
            node = self.nodes.get(name)
            if node is not None:
                changed[node.idx] = node
        for pool in self.pools.values():
            for idx in pool.next_cycle():
                changed[idx] = self.node_at[idx]
        for node in changed.values():
            pool = self.pools.get(node.pool)
            indexed = pool is not None and pool.by_idx.get(node.idx) is node
            if indexed:
                pool.leave(node)
            node.clear()
            hold_nodes(ledger, ((node.name, node),))
            if indexed:
                pool.enter(node)


class Largest:
    """The largest of a pool's nodes, ready or not, per resource: what one pod may ask."""

    def __init__(self, nodes: list[NodeState]):
        self.max_devices = max((n.gpus for n in nodes), default=0)
        self.max_dev_memory = max((n.dev_memory for n in nodes if n.gpus), default=0)
        self.max_cpu = max((n.cpu_total for n in nodes), default=0)
        self.max_mem = max((n.mem_total for n in nodes), default=0)

    def too_large(self, request: Request) -> str | None:
        return too_large(self, request)


# Shapes kept while no waiting workload asks as one (their reasons are worked out again else,
# and that looks at every node), up to this many.
_SHAPES_KEPT = 1024


@dataclass(slots=True)
class _Shape:
    """The request of the workloads that ask alike, how many waiting workloads share it, and
    why it could never be placed in each list of pools asked about (`Session.never_fits`)."""

    request: Request
    users: int = 0
    never: "dict[tuple[str, ...], Reason | None]" = field(default_factory=dict)


@dataclass(slots=True)
class _Part:
    """What the session works out for one waiting workload (a `Workload` object)."""

    workload: Workload
    shape: tuple
    reason: Reason | None  # why it can never be placed; None: it may be
    asks: tuple  # `asks` in its first target pool, when counted


class WaitingIndex:
    """What the session works out for each waiting workload, kept between cycles with the
    ledger (`Ledger.waiting`): its request (shared by the workloads that ask alike), whether it
    can never be placed as the cluster stands (`Session.never_fits`) and what it asks of its
    queue (`asks`), summed per project, pool and request.

    A part depends only on the `Workload` (immutable), on what the ledger holds of it (its
    pods and their pool: the ledger tells the index of every pod held and released) and on
    the snapshot's nodes and pools (other ones make it all again). A kept snapshot gives a
    workload that did not change the same object, so parts are kept by the object's identity:
    a cycle makes the parts of new objects and of workloads the ledger held or released pods
    of, and drops those of objects gone, correcting the sums. Which objects are new and gone,
    a kept snapshot tells (`ClusterSnapshot.changed_since` the generation the index was
    brought up to); of another, set differences of the objects' identities tell (at C speed).
    A reason that only a missing pool gives is read again every cycle: the pool may still
    come (`Session._pool_may_come`, by the cycle's time)."""

    def __init__(self) -> None:
        self.layout: tuple | None = None  # (nodes, pools) of the snapshot the parts were made on
        self.generation: int | None = None  # of the kept snapshot they were made for
        self.touched: set[str] = set()  # workloads the ledger held or released pods of since
        self._reset()

    def _reset(self) -> None:
        self.parts: dict[int, _Part] = {}  # by `id` of the workload object
        self.part_of: dict[str, int] = {}  # workload id -> the key of its part
        self.requests: dict[str, Request] = {}
        self.targets: dict[str, tuple[str, ...]] = {}  # `Session.target_pools`
        self.shapes: dict[tuple, _Shape] = {}
        self.unschedulable: dict[str, Reason] = {}  # but those a missing pool refuses
        self.holding: set[str] = set()  # those the ledger holds pods of
        self.pool_missing: dict[str, _Part] = {}  # refused by missing pools only
        # what the counted parts ask, and how many parts ask it: [pods, request, parts]
        self.asked: Asked = {}

    # told by the ledger -----------------------------------------------------------------
    def held(self, workload_id: str, pod: str) -> None:
        self.touched.add(workload_id)

    def released(self, workload_id: str, pod: str) -> None:
        self.touched.add(workload_id)

    # the cycle's view ---------------------------------------------------------------------
    def sync(self, session: Session) -> bool:
        """Brought up to the session's waiting workloads (its ledger copied, its pools made);
        False (and nothing kept) when a workload id or object is there twice."""
        snapshot = session.snapshot
        layout = self.layout
        if layout is None or not (_same(layout[0], snapshot.nodes)
                                  and _same(layout[1], snapshot.pools)):
            self._reset()
            self.layout = (snapshot.nodes, snapshot.pools)
        changed = None
        if self.generation is not None and self.layout is layout:
            changed = snapshot.changed_since(self.generation)
        self.generation = None
        if changed is None:
            if not self._walk(session):
                return self._give_up()
        else:
            self._apply(session, *changed)
        self.generation = snapshot.generation
        if len(self.shapes) > _SHAPES_KEPT:  # those no waiting workload asks as any more
            self.shapes = {key: shape for key, shape in self.shapes.items() if shape.users}
        return True

    def _walk(self, session: Session) -> bool:
        """Parts made for the waiting objects that have none, dropped for those gone, found
        by identity; False when a workload id or object is there twice."""
        waiting = session.waiting
        present = dict(zip(map(id, waiting), waiting, strict=True))
        if len(present) != len(waiting):
            return False
        parts = self.parts
        gone = parts.keys() - present.keys()
        if self.touched:
            part_of = self.part_of
            gone.update(part_of[wid] for wid in self.touched if wid in part_of)
            self.touched = set()
        for key in gone:
            self._drop(parts.pop(key))
        for key in present.keys() - parts.keys():
            workload = present[key]
            if workload.id in self.part_of:
                return False
            parts[key] = self._part(workload, session)
        return True

    def _apply(self, session: Session, made: dict[str, Workload], gone: Set[str]) -> None:
        """Parts made again for the workloads the kept snapshot made again (or new) and for
        those the ledger held or released pods of; dropped for those gone."""
        parts, part_of = self.parts, self.part_of
        again = [parts[part_of[wid]].workload for wid in self.touched
                 if wid in part_of and wid not in made and wid not in gone]
        self.touched = set()
        for wid in chain(gone, made, (w.id for w in again)):
            key = part_of.get(wid)
            if key is not None:
                self._drop(parts.pop(key))
        for workload in again:
            parts[id(workload)] = self._part(workload, session)
        for workload in made.values():
            if workload.waiting_pods:
                parts[id(workload)] = self._part(workload, session)

    def _give_up(self) -> bool:
        self._reset()
        self.layout = None
        self.generation = None
        self.touched.clear()
        return False

    def refused(self, session: Session) -> tuple[dict[str, Reason], Asked]:
        """The cycle's unschedulable workloads, and what the others ask (for
        `Session._count_requests`; not to be changed)."""
        unschedulable = dict(self.unschedulable)
        asked = self.asked
        if self.pool_missing:
            asked = {key: entry[:2] for key, entry in asked.items()}
            for wid, part in self.pool_missing.items():
                if session._pool_may_come(part.workload):
                    for key, count, request in part.asks:
                        entry = asked.get(key)
                        if entry is None:
                            asked[key] = [count, request]
                        else:
                            entry[0] += count
                else:
                    unschedulable[wid] = part.reason  # type: ignore[assignment]
        return unschedulable, asked

    def _part(self, workload: Workload, session: Session) -> _Part:
        wid = workload.id
        shape_key = (workload.gpus_per_pod, workload.gpu_portion, workload.gpu_memory_mib,
                     workload.cpu_millis, workload.memory_mib, workload.node_type,
                     workload.master, workload.topology_required, workload.topology_preferred)
        shape = self.shapes.get(shape_key)
        if shape is None:
            shape = self.shapes[shape_key] = _Shape(request_of(workload))
        shape.users += 1
        request = shape.request
        self.requests[wid] = request
        self.part_of[wid] = id(workload)
        pools = self.targets[wid] = session.target_pools(workload)
        reason = None
        if not session.held.get(wid):
            if pools in shape.never:
                reason = shape.never[pools]
            else:
                reason = shape.never[pools] = session.never_fits(request, pools)
        else:  # (what the ledger holds: parts are made as the session begins)
            self.holding.add(wid)
        part = _Part(workload, shape_key, reason, ())
        if reason is None or reason[0] == PendingCode.NODE_POOL_UNAVAILABLE:
            part.asks = asks(workload, request, pools[0])
        if reason is None:
            self._count(part.asks, +1)
        elif reason[0] == PendingCode.NODE_POOL_UNAVAILABLE:
            self.pool_missing[wid] = part
        else:
            self.unschedulable[wid] = reason
        return part

    def _drop(self, part: _Part) -> None:
        wid = part.workload.id
        self.holding.discard(wid)
        del self.part_of[wid]
        del self.requests[wid]
        del self.targets[wid]
        self.shapes[part.shape].users -= 1
        if part.reason is None:
            self._count(part.asks, -1)
        elif part.reason[0] == PendingCode.NODE_POOL_UNAVAILABLE:
            del self.pool_missing[wid]
        else:
            del self.unschedulable[wid]

    def _count(self, part_asks: tuple, sign: int) -> None:
        """A part's asks added to the sums (`sign` +1), or taken out (-1). A request counted
        is alive (its parts hold it), so its `id` names no other."""
        asked = self.asked
        for key, count, request in part_asks:
            entry = asked.get(key)
            if entry is None:
                asked[key] = [count, request, 1]
            elif entry[2] + sign:
                entry[0] += sign * count
                entry[2] += sign
            else:
                del asked[key]


def _same(kept: tuple, now: tuple) -> bool:
    return kept is now or kept == now
