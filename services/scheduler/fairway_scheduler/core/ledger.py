"""The ledger: what running pods hold, per node device and per queue, kept between cycles.

A session needs, before it decides anything, every device's used portion, every node's used CPU
and memory, and every queue's allocated amounts. Working that out from 40,000 allocations costs
more than the rest of a cycle, so a caller that runs cycle after cycle (the service, the
steady-state benchmark) keeps a `Ledger` up to date as pods are bound and released and passes
it to `allocate(snapshot, ledger)`; the session copies it (cost: nodes + queues + workloads
holding pods, not allocations). `Ledger.of(snapshot)` builds the same thing from a snapshot's
allocations, which is what `allocate(snapshot)` does on its own: both paths give one answer.

Pods bound without a decision of ours (`unknown_devices`) take the lowest devices still free
on their node when they are held, so hold them after the pods whose devices are known.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Protocol

from fairway_scheduler.core.model import Allocation, ClusterSnapshot, Node
from fairway_scheduler.core.nodes import FULL, natural


class Watcher(Protocol):
    """Told of every pod held and released (the solver's kept index, `framework.holds`; the
    session's index of waiting workloads, `framework.session.WaitingIndex`)."""

    def held(self, workload_id: str, pod: str) -> None: ...

    def released(self, workload_id: str, pod: str) -> None: ...


class NodeWatcher(Protocol):
    """Told of every node whose holdings changed (the session's kept nodes,
    `framework.session.KeptRoom`)."""

    dirty: set[str]

MILLI = 1000


class Ledger:
    def __init__(self, nodes: Iterable[Node] = ()):
        self.nodes: dict[str, Node] = {}
        self.used: dict[str, list[int]] = {}  # node -> milli-GPUs used per device
        self.host: dict[str, list[int]] = {}  # node -> [millicores, MiB] used
        self.pods: Counter[str] = Counter()  # node -> pods holding on it
        # node -> fraction pods per device: each device holding any has a reservation pod on
        # the node too (lifecycle's), which takes one of the node's pod slots
        self.shared: dict[str, list[int]] = {}
        self.held: Counter[str] = Counter()  # workload -> pods holding
        self.held_pool: dict[str, str] = {}  # workload -> the pool its pods run in
        # (project, pool) -> [gpu, cpu, memory, and the same for non-preemptible]
        self.queue_use: dict[tuple[str, str], list[int]] = {}
        self._entries: dict[tuple[str, str], tuple] = {}
        self._queue_pods: Counter[tuple[str, str]] = Counter()
        # The disruptive actions' index of running pods, made by the first cycle that needs
        # it and told of every pod held and released since (`framework.holds`).
        self.index: Watcher | None = None
        # The disruptive walk's runs of waiting workloads, kept by the first cycle that
        # disrupts (`actions.runs`).
        self.runs: object | None = None
        # The session's index of waiting workloads, made by the first cycle on this ledger.
        self.waiting: Watcher | None = None
        # Allocation's classes of waiting workloads, made by the first cycle that allocates
        # (`actions.allocate.WaitingClasses`).
        self.asks: object | None = None
        # The session's nodes in natural name order and, per pool, the positions in it of
        # its ready nodes, how many nodes it has and what its ready nodes have in all, for
        # the snapshot's node tuple they were worked out from (a kept snapshot hands the same
        # tuple to cycle after cycle).
        self.layout: tuple[tuple, list, dict[str, list[int]], dict[str, int],
                           dict[str, list[int]]] | None = None
        # The session's nodes and pools as the last cycle left them, and the nodes whose
        # holdings changed since (`framework.session.KeptRoom`).
        self.room: NodeWatcher | None = None
        for node in nodes:
            self.put_node(node)

    @classmethod
    def of(cls, snapshot: ClusterSnapshot) -> "Ledger":
        ledger = cls(snapshot.nodes)
        workloads = {w.id: w for w in snapshot.workloads}
        for a in ledger.in_holding_order(snapshot.allocations):
            w = workloads.get(a.workload_id)
            ledger.hold(a, w.project if w else None, w.preemptible if w else True)
        return ledger

    def in_holding_order(self, allocations: Iterable[Allocation]) -> list[Allocation]:
        """Those whose devices are known first, then the others by node and pod (they take
        the lowest devices left free)."""
        order = {name: i for i, name in enumerate(sorted(self.nodes, key=natural))}
        known = [a for a in allocations if not a.unknown_devices]
        unknown = sorted((a for a in allocations if a.unknown_devices),
                         key=lambda a: (order.get(a.node, -1), a.workload_id, a.pod))
        return known + unknown

    def hold_after_known(self, allocations: Iterable[Allocation]) -> None:
        """Hold allocations of no workload (foreign usage) after everything else, in the
        order `of` holds them: the ledger is then as `of` would build it."""
        for a in self.in_holding_order(allocations):
            self.hold(a, None, True)

    def node_of(self, workload_id: str, pod: str) -> str | None:
        """The node a held pod holds on (None: not held, or on no known node)."""
        entry = self._entries.get((workload_id, pod))
        return entry[0] if entry is not None else None

    def put_node(self, node: Node) -> None:
        """A node appears or changes; what is held on it stays (devices it lost are dropped)."""
        self.nodes[node.name] = node
        if self.room is not None:
            self.room.dirty.add(node.name)
        used = self.used.get(node.name, [])
        self.used[node.name] = (used + [0] * node.gpus)[:node.gpus]
        shared = self.shared.get(node.name, [])
        self.shared[node.name] = (shared + [0] * node.gpus)[:node.gpus]
        self.host.setdefault(node.name, [0, 0])

    def reservations(self, node: str) -> int:
        """The GPU reservation pods on `node`: one per device that holds a fraction."""
        shared = self.shared.get(node, ())  # counts, never below 0: those not 0 (at C speed,
        return len(shared) - shared.count(0)  # asked for each of thousands of nodes a cycle)

    def hold(self, a: Allocation, project: str | None, preemptible: bool = True) -> None:
        """A pod holds what its allocation says; `project` None: counted on the node only."""
        key = (a.workload_id, a.pod)
        if key in self._entries:
            self.release(*key)
        if self.index is not None:
            self.index.held(*key)
        if self.waiting is not None:
            self.waiting.held(*key)
        self.held[a.workload_id] += 1
        node = self.nodes.get(a.node)
        if node is None:
            self._entries[key] = (None, (), 0, 0, 0, None, None, preemptible)
            return
        self.held_pool.setdefault(a.workload_id, node.pool)
        if self.room is not None:
            self.room.dirty.add(node.name)
        used = self.used[node.name]
        devices = a.gpu_devices
        if a.unknown_devices:
            devices = tuple([d for d, u in enumerate(used) if u == 0][:a.unknown_devices])
        milli = FULL
        if a.portion is not None:
            milli = round(a.portion * MILLI)
        elif a.gpu_memory_mib is not None and node.gpu_memory_mib:
            milli = -(-a.gpu_memory_mib * FULL // node.gpu_memory_mib)
        devices = tuple(d for d in devices if d < node.gpus)
        for d in devices:
            used[d] += milli
        if milli < FULL:
            shared = self.shared[node.name]
            for d in devices:
                shared[d] += 1
        host = self.host[node.name]
        host[0] += a.cpu_millis
        host[1] += a.memory_mib
        self.pods[node.name] += 1
        gpu = milli * len(devices)
        if project is not None:
            self._queue(project, node.pool, gpu, a.cpu_millis, a.memory_mib, preemptible, +1)
        self._entries[key] = (node.name, devices, milli, a.cpu_millis, a.memory_mib, project,
                              node.pool, preemptible)

    def release(self, workload_id: str, pod: str) -> None:
        entry = self._entries.pop((workload_id, pod), None)
        if entry is None:
            return
        if self.index is not None:
            self.index.released(workload_id, pod)
        if self.waiting is not None:
            self.waiting.released(workload_id, pod)
        name, devices, milli, cpu, mem, project, pool, preemptible = entry
        self.held[workload_id] -= 1
        if self.held[workload_id] <= 0:
            del self.held[workload_id]
            self.held_pool.pop(workload_id, None)
        if name is None or name not in self.used:
            return
        if self.room is not None:
            self.room.dirty.add(name)
        used = self.used[name]
        shared = self.shared[name]
        for d in devices:
            if d < len(used):
                used[d] -= milli
                if milli < FULL:
                    shared[d] -= 1
        host = self.host[name]
        host[0] -= cpu
        host[1] -= mem
        self.pods[name] -= 1
        if self.pods[name] <= 0:
            del self.pods[name]
        if project is not None:
            self._queue(project, pool, milli * len(devices), cpu, mem, preemptible, -1)

    def _queue(self, project: str, pool: str, gpu: int, cpu: int, mem: int, preemptible: bool,
               sign: int) -> None:
        use = self.queue_use.setdefault((project, pool), [0] * 6)
        use[0] += sign * gpu
        use[1] += sign * cpu
        use[2] += sign * mem
        if not preemptible:
            use[3] += sign * gpu
            use[4] += sign * cpu
            use[5] += sign * mem
        # A row goes with the last pod holding in it, as if never held (a session
        # materialises a queue for every row, even one holding nothing but pods of 0 GPUs).
        self._queue_pods[(project, pool)] += sign
        if self._queue_pods[(project, pool)] <= 0:
            del self.queue_use[(project, pool)]
            del self._queue_pods[(project, pool)]

    def entry(self, workload_id: str, pod: str) -> tuple:
        """What a held pod's entry says (as `entries`)."""
        return self._entries[(workload_id, pod)]

    def pods_held(self) -> Iterator[tuple[tuple[str, str], tuple[str | None, tuple[int, ...],
                                                               int, int, int]]]:
        """((workload, pod), (node, devices, milli-GPUs each, millicores, MiB)) per pod held."""
        for key, entry in self._entries.items():
            yield key, entry[:5]

    def entries(self):
        """((workload, pod), (node, devices, milli-GPUs each, millicores, MiB, ...)) per pod
        held, without a copy: `pods_held` for a walk over every pod (read the first five)."""
        return self._entries.items()

    def holdings(self) -> tuple:
        """What is held, whatever the order it was held in: two ledgers with equal holdings
        give a session the same start."""
        return (dict(self._entries), self.used, self.host, +self.pods, +self.held,
                self.held_pool, self.queue_use, self.shared)
