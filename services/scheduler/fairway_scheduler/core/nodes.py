"""Nodes and their devices during a cycle, and the choice of node for one pod.

Every device keeps its used portion in milli-GPUs (0 free, 1000 full). Whole-GPU pods take
devices with nothing on them; fractions share devices. Per pool, ready GPU nodes sit in buckets
by their number of wholly free devices (a heap of node indices per bucket, stale entries
dropped when seen), so that `binpack` (the fullest node that fits: the smallest bucket that is
large enough) and `spread` (the emptiest: the largest bucket) find their node in a few steps;
ties go to the node first in natural name order.

CPU millicores and memory of a node that does not report them (0) are not enforced. The number
of pods on a node is: running pods and this cycle's placements count against its `max_pods`,
and so does one GPU reservation pod per device that holds a fraction (lifecycle makes it, and
the kubelet counts it like any pod).
"""

import bisect
import functools
import heapq
import re

from fairway_scheduler.core.model import Node
from fairway_scheduler.core.swap import GpuSwap, node_host_need, swap_fit

FULL = 1000
UNTRACKED = 1 << 60


class NodeState:
    __slots__ = (
        "bucket",
        "cpu_total",
        "dev_memory",
        "fractions",
        "free_cpu",
        "free_mem",
        "gpu_swap",
        "gpus",
        "idx",
        "labels",
        "max_pods",
        "mem_total",
        "name",
        "node_type",
        "partial_free",
        "pods",
        "pool",
        "ready",
        "shares",
        "swap",
        "used",
        "whole",
    )

    def __init__(self, idx: int, node: Node):
        self.idx = idx
        self.name = node.name
        self.pool = node.pool
        self.ready = node.ready
        self.gpus = node.gpus
        self.dev_memory = node.gpu_memory_mib or 0
        self.cpu_total = node.cpu_millis or UNTRACKED
        self.mem_total = node.memory_mib or UNTRACKED
        self.max_pods = node.max_pods
        self.node_type = node.node_type
        self.labels = dict(node.labels)  # its topology labels
        self.clear()
        self.whole = node.gpus
        self.bucket = node.gpus
        self.partial_free: frozenset[int] = frozenset()  # free milli of partly used devices
        self.gpu_swap = node.gpu_swap
        # GPU memory swap on (its pool's settings): the milli-GPUs of each fraction on each
        # device, to know which devices hold fractions only and how much host memory they need
        self.swap: GpuSwap | None = None
        self.shares: list[list[int]] = []

    def clear(self) -> None:
        """Nothing held on the node (its indexes, `whole` and the rest, are its pool's)."""
        self.free_cpu, self.free_mem = self.cpu_total, self.mem_total
        self.pods = 0  # pods on the node: running ones and this cycle's placements
        self.used = [0] * self.gpus
        self.fractions = [0] * self.gpus  # fraction pods per device (a reservation pod each)

    def hold_host(self, cpu: int, mem: int, pods: int = 1) -> None:
        if self.free_cpu != UNTRACKED:
            self.free_cpu -= cpu
        if self.free_mem != UNTRACKED:
            self.free_mem -= mem
        self.pods += pods

    @property
    def pod_room(self) -> bool:
        return self.pods < self.max_pods

    def slots_for(self, devices: tuple[int, ...] | list[int], milli: int) -> int:
        """The pod slots a pod of `milli` on `devices` takes: itself, and for a fraction a
        reservation pod on each device that holds no fraction yet."""
        if not 0 < milli < FULL:
            return 1
        return 1 + sum(1 for d in devices if self.fractions[d] == 0)

    def has_slots(self, devices: tuple[int, ...] | list[int], milli: int) -> bool:
        return self.pods + self.slots_for(devices, milli) <= self.max_pods

    def fits_host(self, cpu: int, mem: int) -> bool:
        return self.pods < self.max_pods and self.free_cpu >= cpu and self.free_mem >= mem

    def swap_shares_mib(self) -> list[list[int] | None]:
        """Per device, the GPU memory of the fractions on it (None: something else is on it
        too: a whole-GPU pod, or pods whose devices are unknown)."""
        out: list[list[int] | None] = []
        for d, shares in enumerate(self.shares):
            pure = sum(shares) == self.used[d]
            out.append([m * self.dev_memory // FULL for m in shares] if pure else None)
        return out

    def swap_room(self, devices: tuple[int, ...], milli: int) -> bool:
        """Whether a fraction of `milli` on `devices` (one) fits this node by swapping: the
        device holds fractions only, and the node's host need stays within its pool's."""
        if self.swap is None or len(devices) != 1:
            return False
        shares = self.swap_shares_mib()
        there = shares[devices[0]]
        if there is None:
            return False
        mib = milli * self.dev_memory // FULL
        if mib > self.dev_memory - self.swap.reserved_mib:
            return False
        shares[devices[0]] = [*there, mib]
        return node_host_need([s or [] for s in shares], self.dev_memory) <= self.swap.host_mib

    def could_hold(self, devices: int, milli: int | None, cpu: int, mem: int) -> bool:
        """Whether the node could take one pod now if it had room for another pod: `devices`
        wholly free devices (`milli` None) or that many with `milli` free each."""
        if self.free_cpu < cpu or self.free_mem < mem:
            return False
        if milli is None:
            return self.whole >= devices if self.gpus else devices == 0
        return sum(1 for u in self.used if u + milli <= FULL) >= devices


class Take:
    """What one pod took on one node, to give back on rollback."""

    __slots__ = ("cpu", "devices", "mem", "milli", "node")

    def __init__(self, node: NodeState, devices: tuple[int, ...], milli: int, cpu: int,
                 mem: int):
        self.node, self.devices, self.milli, self.cpu, self.mem = node, devices, milli, cpu, mem


class Domain:
    """A topology domain: the ready nodes of a pool that share their labels down to one level
    (one rack of one block of one zone). `within` narrows placement to it."""

    __slots__ = ("cpu_nodes", "gpu_nodes", "idxs", "key", "label", "level", "nodes")

    def __init__(self, level: int, label: str, key: tuple[str, ...], nodes: list[NodeState]):
        self.level, self.label, self.key = level, label, key
        self.nodes = nodes
        self.gpu_nodes = [n for n in nodes if n.gpus > 0]
        self.cpu_nodes = [n for n in nodes if n.gpus == 0]
        self.idxs = frozenset(n.idx for n in nodes)

    @property
    def name(self) -> str:
        """How a sentence names it: its value at its own level (`rack-3`)."""
        return self.key[-1]

    def free_milli(self) -> int:
        return sum(n.gpus * FULL - sum(n.used) for n in self.gpu_nodes)


class PoolNodes:
    """The ready nodes of one pool and their free capacity."""

    def __init__(self, name: str, nodes: list[NodeState], gpu_strategy: str, cpu_strategy: str):
        self.name = name
        self.nodes = nodes  # natural name order; NodeState.idx is global
        self.by_idx = {n.idx: n for n in nodes}
        self.gpu_strategy = gpu_strategy
        self.cpu_strategy = cpu_strategy
        self.gpu_nodes = [n for n in nodes if n.gpus > 0]
        self.cpu_nodes = [n for n in nodes if n.gpus == 0]
        self.max_devices = max((n.gpus for n in nodes), default=0)
        self.max_cpu = max((n.cpu_total for n in nodes), default=0)
        self.max_mem = max((n.mem_total for n in nodes), default=0)
        self.max_dev_memory = max((n.dev_memory for n in self.gpu_nodes), default=0)
        self.swap_nodes = [n for n in self.gpu_nodes if n.swap is not None]
        self.pods_full = sum(1 for n in nodes if not n.pod_room)  # nodes at their max pods
        self.counts = [0] * (self.max_devices + 1)
        self.heaps: list[list[int]] = [[] for _ in range(self.max_devices + 1)]
        # free milli-GPUs of a partly used device -> nodes that have such a device
        self.partial: dict[int, set[int]] = {}
        # Per bucket and (millicores, MiB) asked: the position in `gpu_nodes` before which no
        # node of that bucket has that room (what `find_whole` scanned already). A node that
        # changes lowers it again where it now has the room; so a full pool, which every
        # waiting pod asks again, is scanned once per cycle, not once per pod.
        self._pos = {n.idx: i for i, n in enumerate(self.gpu_nodes)}
        self._start_cycle()
        # the nodes taken from or given back to since the pool was made or last kept for
        # another cycle (`next_cycle`): what a kept pool makes again from the ledger
        self.touched: set[int] = set()
        # (one pass over thousands of nodes: only a node with a device neither free nor full
        # has one partly used to index)
        counts, heaps = self.counts, self.heaps
        free_total = free_nodes = 0
        for n in self.gpu_nodes:
            used = n.used
            n.whole = n.bucket = bucket = used.count(0)
            counts[bucket] += 1
            heaps[bucket].append(n.idx)
            free = n.gpus * FULL - sum(used)
            free_total += free
            free_nodes += free > 0
            n.partial_free = frozenset()
            if bucket + used.count(FULL) != len(used):
                self._index_partial(n)
        self.free_total, self.free_nodes = free_total, free_nodes
        for heap in self.heaps:
            heapq.heapify(heap)

    def _start_cycle(self) -> None:
        """What the pool works out during one cycle, as none of it is worked out yet."""
        # Grows with every take and give: a pod that found no room finds none again until
        # it changes (thousands of waiting pods of a few shapes ask a full pool each cycle).
        self.version = 0
        # Versions a statement left when it was rolled back whole: the room is as it was at
        # the version it started from (`settled_version`).
        self._same_as: dict[int, int] = {}
        self._no_room: dict[tuple, int] = {}
        self._scan_from: dict[int, dict[tuple[int, int], int]] = {}
        # CPU-only pods' choice of node (`_place_cpu`): per group of nodes (CPU-only ones, GPU
        # ones), their keys in the order the strategy prefers, built when a CPU-only pod first
        # asks and kept as nodes change; and each indexed node's key in it.
        self._host_order: list[list[tuple[int, int, int]]] | None = None
        self._host_key: dict[int, tuple[int, int, int]] = {}

    # kept for the next cycle --------------------------------------------------------------
    def next_cycle(self) -> set[int]:
        """The pool kept for another cycle (`framework.session.KeptRoom`): what it worked out
        for this one dropped, as a pool made afresh starts; the nodes it changed since it was
        made or last kept, for the caller to set anew (`leave`, then `enter`)."""
        self._start_cycle()
        # A heap keeps the entries of nodes that left its bucket until they reach its top:
        # made again once they outnumber the nodes (as made afresh: one entry per node).
        if sum(map(len, self.heaps)) > 2 * len(self.gpu_nodes) + 64:
            self.heaps = [[] for _ in self.heaps]
            for n in self.gpu_nodes:
                self.heaps[n.bucket].append(n.idx)
            for heap in self.heaps:
                heapq.heapify(heap)
        touched, self.touched = self.touched, set()
        return touched

    def leave(self, node: NodeState) -> None:
        """The node's part of the pool's sums taken out, before its state is set anew."""
        if node.gpus:
            free = node.gpus * FULL - sum(node.used)
            self.free_total -= free
            self.free_nodes -= free > 0
        self.pods_full -= not node.pod_room

    def enter(self, node: NodeState) -> None:
        """The node, its state set anew, back in the pool's sums and indexes."""
        if node.gpus:
            free = node.gpus * FULL - sum(node.used)
            self.free_total += free
            self.free_nodes += free > 0
            self.changed(node)
        self.pods_full += not node.pod_room

    def settled_version(self) -> int:
        """The version, or the earlier one whose room it is again after a rolled-back
        attempt: what the disruptive actions' answers depend on (thousands of waiting
        workloads of a few shapes each simulate, fail and roll back in turn; a shape that
        found no room finds none again until something is kept)."""
        return self._same_as.get(self.version, self.version)

    def rolled_back(self, settled: int) -> None:
        """A statement begun at settled version `settled` was undone whole."""
        if self.version != settled:
            self._same_as[self.version] = settled

    # bookkeeping ------------------------------------------------------------------------
    def changed(self, node: NodeState) -> None:
        if node.gpus == 0:
            return
        whole = sum(1 for u in node.used if u == 0)
        node.whole = whole
        if whole != node.bucket:
            self.counts[node.bucket] -= 1
            self.counts[whole] += 1
            node.bucket = whole
            heapq.heappush(self.heaps[whole], node.idx)
        self._index_partial(node)
        scanned = self._scan_from.get(whole)
        if scanned:
            pos = self._pos.get(node.idx)
            if pos is not None:
                for (cpu, mem), start in scanned.items():
                    if pos < start and node.fits_host(cpu, mem):
                        scanned[(cpu, mem)] = pos

    def _index_partial(self, node: NodeState) -> None:
        frees = frozenset(FULL - u for u in node.used if 0 < u < FULL)
        if frees == node.partial_free:
            return
        for free in node.partial_free - frees:
            nodes = self.partial[free]
            nodes.discard(node.idx)
            if not nodes:
                del self.partial[free]
        for free in frees - node.partial_free:
            self.partial.setdefault(free, set()).add(node.idx)
        node.partial_free = frees

    def _gpu_delta(self, node: NodeState, delta: int) -> None:
        """Keep the pool's free milli-GPUs and its count of nodes with any free up to date."""
        if not delta or node.gpus == 0:
            return
        capacity = node.gpus * FULL
        before = capacity - sum(node.used) + delta  # called after the change
        after = before - delta
        self.free_total -= delta
        self.free_nodes += (after > 0) - (before > 0)

    def take(self, node: NodeState, devices: tuple[int, ...], milli: int, cpu: int,
             mem: int, *, fraction: bool = False) -> Take:
        self.version += 1
        self.touched.add(node.idx)
        slots = node.slots_for(devices, milli)
        for d in devices:
            node.used[d] += milli
            if fraction and node.swap is not None:
                node.shares[d].append(milli)
            if 0 < milli < FULL:
                node.fractions[d] += 1
        self._gpu_delta(node, milli * len(devices))
        room = node.pod_room
        node.hold_host(cpu, mem, slots)
        self.pods_full += room and not node.pod_room
        self.changed(node)
        if self._host_order is not None:
            self._host_changed(node)
        return Take(node, devices, milli, cpu, mem)

    def give(self, take: Take) -> None:
        self.version += 1
        node = take.node
        self.touched.add(node.idx)
        slots = 1
        for d in take.devices:
            node.used[d] -= take.milli
            if node.swap is not None and take.milli in node.shares[d]:
                node.shares[d].remove(take.milli)
            if 0 < take.milli < FULL:
                node.fractions[d] -= 1
                slots += node.fractions[d] == 0
        self._gpu_delta(node, -take.milli * len(take.devices))
        if node.free_cpu != UNTRACKED:
            node.free_cpu += take.cpu
        if node.free_mem != UNTRACKED:
            node.free_mem += take.mem
        room = node.pod_room
        node.pods -= slots
        self.pods_full -= node.pod_room and not room
        self.changed(node)
        if self._host_order is not None:
            self._host_changed(node)

    # what there is ----------------------------------------------------------------------
    def whole_fit_count(self, k: int) -> int:
        """How many pods of k whole devices the free devices could hold (CPU and memory aside)."""
        if k <= 0:
            return 0
        return sum(self.counts[b] * (b // k) for b in range(k, self.max_devices + 1))

    def largest_slot(self) -> int:
        for b in range(self.max_devices, 0, -1):
            if self.counts[b]:
                return b
        return 0

    def free_gpus(self) -> tuple[int, int]:
        """(free milli-GPUs, nodes with any free) in the pool."""
        return self.free_total, self.free_nodes

    # choosing ---------------------------------------------------------------------------
    def _top(self, b: int) -> NodeState | None:
        heap = self.heaps[b]
        while heap:
            node = self.by_idx[heap[0]]
            if node.bucket == b:
                return node
            heapq.heappop(heap)
        return None

    def find_whole(self, k: int, cpu: int, mem: int, node_type: str | None = None,
                   within: Domain | None = None) -> NodeState | None:
        """A node with k wholly free devices: the fullest (binpack) or emptiest (spread);
        only in the domain `within` when given."""
        if k > self.max_devices:
            return None
        if node_type is not None or within is not None:
            # A node type or a topology domain narrows the pool: a plain scan (such workloads
            # are few, and a domain is a small part of its pool).
            nodes = self.gpu_nodes if within is None else within.gpu_nodes
            fits = [n for n in nodes if (node_type is None or n.node_type == node_type)
                    and n.whole >= k and n.fits_host(cpu, mem)]
            if not fits:
                return None
            sign = 1 if self.gpu_strategy == "binpack" else -1
            return min(fits, key=lambda n: (sign * n.whole, n.idx))
        order = (range(k, self.max_devices + 1) if self.gpu_strategy == "binpack"
                 else range(self.max_devices, k - 1, -1))
        for b in order:
            if not self.counts[b]:
                continue
            top = self._top(b)
            if top is not None and top.fits_host(cpu, mem):
                return top
            # the first in the bucket lacks CPU or memory (or pod room): the first that has it
            node = self._first_with_room(b, cpu, mem)
            if node is not None:
                return node
        return None

    def _first_with_room(self, b: int, cpu: int, mem: int) -> NodeState | None:
        """The first node (natural order) of bucket `b` with room for the host resources."""
        scanned = self._scan_from.setdefault(b, {})
        nodes = self.gpu_nodes
        for i in range(scanned.get((cpu, mem), 0), len(nodes)):
            node = nodes[i]
            if node.bucket == b and node.fits_host(cpu, mem):
                scanned[(cpu, mem)] = i
                return node
        scanned[(cpu, mem)] = len(nodes)
        return None

    def _known_full(self, key: tuple) -> bool:
        """This shape of pod found no room, and nothing in the pool changed since."""
        return self._no_room.get(key) == self.version

    def place_whole(self, k: int, cpu: int, mem: int, node_type: str | None = None,
                    within: Domain | None = None) -> Take | None:
        key = ("whole", k, cpu, mem, node_type, within.key if within else None)
        if self._known_full(key):
            return None
        node = self.find_whole(k, cpu, mem, node_type, within)
        if node is None:
            self._no_room[key] = self.version
            return None
        devices = tuple([d for d, u in enumerate(node.used) if u == 0][:k])
        return self.take(node, devices, FULL, cpu, mem)

    def place_fraction(self, count: int, portion: int | None, memory: int | None, cpu: int,
                       mem: int, node_type: str | None = None, within: Domain | None = None
                       ) -> Take | None:
        """`count` devices on one node, each with `portion` milli-GPUs (or `memory` MiB) free.
        Partly used devices first (the fullest that fits), then wholly free ones."""
        key = ("fraction", count, portion, memory, cpu, mem, node_type,
               within.key if within else None)
        if self._known_full(key):
            return None
        take = self._place_fraction(count, portion, memory, cpu, mem, node_type, within)
        if take is None:
            self._no_room[key] = self.version
        return take

    def _place_fraction(self, count: int, portion: int | None, memory: int | None, cpu: int,
                        mem: int, node_type: str | None, within: Domain | None
                        ) -> Take | None:
        # Partly used devices by free room: the least room that fits first (binpack), the most
        # first (spread); within one amount, natural node order.
        # Asked of each node the cheapest question first: in a busy cluster most nodes with a
        # partly used device have no CPU left (at KAI's scale, tens of them per fraction
        # placed), and a portion larger than a device's room passes over its whole bucket.
        frees = sorted(self.partial, reverse=self.gpu_strategy != "binpack")
        by_idx = self.by_idx
        for free in frees:
            if portion is not None and portion > free:
                continue
            for idx in sorted(self.partial[free]):
                node = by_idx[idx]
                if not (node.pods < node.max_pods and node.free_cpu >= cpu
                        and node.free_mem >= mem):
                    continue  # (`fits_host`)
                if within is not None and idx not in within.idxs:
                    continue
                if node_type is not None and node.node_type != node_type:
                    continue
                milli = milli_of(node, portion, memory)
                if milli is None or milli > free:
                    continue
                shared = sorted((-u, d) for d, u in enumerate(node.used)
                                if 0 < u and u + milli <= FULL)
                chosen = [d for _, d in shared][:count]
                chosen += [d for d, u in enumerate(node.used) if u == 0][:count - len(chosen)]
                if len(chosen) == count and node.has_slots(chosen, milli):
                    return self.take(node, tuple(sorted(chosen)), milli, cpu, mem,
                                     fraction=True)
        node = self.find_whole(count, cpu, mem, node_type, within)
        nodes = self.gpu_nodes if within is None else within.gpu_nodes
        while node is not None:
            milli = milli_of(node, portion, memory)
            devices = tuple([d for d, u in enumerate(node.used) if u == 0][:count])
            if milli is not None and node.has_slots(devices, milli):
                return self.take(node, devices, milli, cpu, mem, fraction=True)
            node = next((n for n in nodes if n.whole >= count and n.idx > node.idx
                         and (node_type is None or n.node_type == node_type)
                         and milli_of(n, portion, memory) is not None
                         and n.fits_host(cpu, mem)
                         and n.pods + 1 + count <= n.max_pods), None)
        if count == 1 and self.swap_nodes:
            return self._place_swapped(portion, memory, cpu, mem, node_type, within)
        return None

    def _place_swapped(self, portion: int | None, memory: int | None, cpu: int, mem: int,
                       node_type: str | None, within: Domain | None) -> Take | None:
        """No device has the room: a device of a swap-capable node that its fractions may
        oversubscribe (core/swap.py), the node in natural order."""
        for node in self.swap_nodes:
            if ((within is not None and node.idx not in within.idxs)
                    or (node_type is not None and node.node_type != node_type)
                    or not node.fits_host(cpu, mem)):
                continue
            milli = milli_of(node, portion, memory)
            fit = self.swap_fit(node, portion, memory)
            if (milli is not None and fit is not None and fit.device is not None
                    and node.has_slots((fit.device,), milli)):
                return self.take(node, (fit.device,), milli, cpu, mem, fraction=True)
        return None

    def swap_fit(self, node: NodeState, portion: int | None, memory: int | None):
        """Where on `node` a one-device fraction would go by swapping (None: not for it)."""
        milli = milli_of(node, portion, memory)
        if node.swap is None or milli is None:
            return None
        return swap_fit(node.swap_shares_mib(), node.dev_memory, node.swap,
                        milli * node.dev_memory // FULL)

    def place_cpu(self, cpu: int, mem: int, node_type: str | None = None,
                  within: Domain | None = None) -> Take | None:
        """CPU-only pods: CPU-only nodes first; the fullest (binpack) or emptiest (spread)."""
        key = ("cpu", cpu, mem, node_type, within.key if within else None)
        if self._known_full(key):
            return None
        take = self._place_cpu(cpu, mem, node_type, within)
        if take is None:
            self._no_room[key] = self.version
        return take

    def _place_cpu(self, cpu: int, mem: int, node_type: str | None, within: Domain | None
                   ) -> Take | None:
        if within is None:
            return self._place_cpu_ordered(cpu, mem, node_type)
        sign = 1 if self.cpu_strategy == "binpack" else -1
        where = within
        for group in (where.cpu_nodes, where.gpu_nodes):
            fits = [n for n in group if n.fits_host(cpu, mem)
                    and (node_type is None or n.node_type == node_type)]
            if fits:
                node = min(fits, key=lambda n: (sign * n.free_cpu, sign * n.free_mem, n.idx))
                return self.take(node, (), 0, cpu, mem)
        return None

    def _host_key_of(self, node: NodeState) -> tuple[int, int, int]:
        sign = 1 if self.cpu_strategy == "binpack" else -1
        return (sign * node.free_cpu, sign * node.free_mem, node.idx)

    def _place_cpu_ordered(self, cpu: int, mem: int, node_type: str | None) -> Take | None:
        """`_place_cpu` in the whole pool: the same node (the fitting one with the smallest
        key), found from the nodes kept in key order instead of by looking at each (a pool of
        thousands of nodes, a few hundred CPU-only pods a cycle). Binpack starts at the first
        node with the millicores; spread at the emptiest, and any node with the millicores
        comes before every one without."""
        if self._host_order is None:
            self._host_order = []
            for group in (self.cpu_nodes, self.gpu_nodes):
                keys = []
                for n in group:
                    key = self._host_key[n.idx] = self._host_key_of(n)
                    keys.append(key)
                keys.sort()
                self._host_order.append(keys)
        binpack = self.cpu_strategy == "binpack"
        by_idx = self.by_idx
        for keys in self._host_order:
            i = bisect.bisect_left(keys, (cpu,)) if binpack else 0
            for j in range(i, len(keys)):
                node = by_idx[keys[j][2]]
                if not binpack and node.free_cpu < cpu:
                    break  # the rest have fewer millicores still
                if node.fits_host(cpu, mem) and (node_type is None
                                                 or node.node_type == node_type):
                    return self.take(node, (), 0, cpu, mem)
        return None

    def _host_changed(self, node: NodeState) -> None:
        """A node's free CPU or memory may have changed: its key moves in the order."""
        old = self._host_key.get(node.idx)
        if old is None:
            return
        new = self._host_key_of(node)
        if new == old:
            return
        keys = self._host_order[0 if node.gpus == 0 else 1]  # type: ignore[index]
        del keys[bisect.bisect_left(keys, old)]
        bisect.insort(keys, new)
        self._host_key[node.idx] = new


def milli_of(node: NodeState, portion: int | None, memory: int | None) -> int | None:
    """The portion a fraction takes on this node's devices; memory-sized ones need the
    node's device memory (rounded up to a whole milli-GPU)."""
    if portion is not None:
        return portion
    if not node.dev_memory or memory is None or memory > node.dev_memory:
        return None
    return -(-memory * FULL // node.dev_memory)


@functools.lru_cache(maxsize=1 << 17)
def natural(name: str) -> tuple:
    """Sort key that puts gpu-2 before gpu-10; the name itself breaks ties (a01 vs a1).
    Cached: every cycle sorts the same node and pod names again, and the split is most of
    what sorting them costs."""
    parts = tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name))
    return (parts, name)
