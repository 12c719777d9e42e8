"""The metrics service's in-memory projection and every figure read from it. Pure: no I/O.

`MetricsService` keeps it equal to the projection tables (each change is applied here after its
transaction commits, and the whole of it is loaded from the tables at start). The Prometheus
collector, the stored samples and the telemetry queries all read the same `Snapshot`, so the
three never disagree.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from fairway_contracts.events import (
    DepartmentChanged,
    NodeInventory,
    NodePoolChanged,
    ProjectChanged,
    QueueStatusChanged,
    SchedulingPending,
    ServingChanged,
    WorkloadUtilization,
)
from fairway_contracts.workloads import Phase
from fairway_metrics.core.workloads import PENDING_PHASES, RUNNING_PHASES, WorkloadView

DEFAULT_POOL = "default"
_FINISHED = frozenset({Phase.COMPLETED.value, Phase.FAILED.value, Phase.DELETED.value})
UNKNOWN_REASON = "Unknown"  # pending, but the scheduler has not said why yet

# The last-value kinds the projection keeps whole (the table `current_state`, by kind and key).
QUEUE, NODE, PROJECT, DEPARTMENT, NODEPOOL, PENDING, UTILIZATION, SERVING = (
    "queue", "node", "project", "department", "nodepool", "pending", "utilization", "serving")
MODELS = {
    QUEUE: QueueStatusChanged, NODE: NodeInventory, PROJECT: ProjectChanged,
    DEPARTMENT: DepartmentChanged, NODEPOOL: NodePoolChanged, PENDING: SchedulingPending,
    UTILIZATION: WorkloadUtilization, SERVING: ServingChanged,
}


def queue_key(status: QueueStatusChanged) -> str:
    return f"{status.kind}/{status.name}/{status.node_pool}"


def newest[V](values: Iterable[tuple[str, int, V]]) -> dict[str, tuple[int, V]]:
    """The newest value (highest stream sequence) of each key among a batch's: the last-value
    tables keep one per key, and one statement may not write a key twice."""
    kept: dict[str, tuple[int, V]] = {}
    for key, sequence, value in values:
        if key not in kept or kept[key][0] < sequence:
            kept[key] = (sequence, value)
    return kept


@dataclass
class Projection:
    workloads: dict[str, WorkloadView] = field(default_factory=dict)
    # last value per key, by kind (keys: queue_key, node name, project id, department id,
    # pool name, workload id)
    current: dict[str, dict[str, object]] = field(
        default_factory=lambda: {kind: {} for kind in MODELS})
    preemptions: Counter = field(default_factory=Counter)  # (project, reason) → count
    dead_letters: Counter = field(default_factory=Counter)  # consumer → count

    def put(self, kind: str, key: str, value: object | None) -> None:
        """Keep `value` as the current one for (kind, key); None forgets the key."""
        if value is None:
            self.current[kind].pop(key, None)
        else:
            self.current[kind][key] = value

    def snapshot(self, now: datetime) -> "Snapshot":
        return Snapshot(self, now)


@dataclass(frozen=True, slots=True)
class WorkloadRow:
    """One workload as the series see it: its place in the organisation and its figures."""

    id: str
    project: str
    project_id: str | None
    department: str
    department_id: str | None
    node_pool: str
    type: str
    phase: str
    gpus_requested: float
    gpus_allocated: float
    placements: tuple[tuple[str, float], ...]
    pending_reason: str | None  # only while Pending
    pending_for: float  # the current wait, seconds (0 unless Pending)
    in_phase_for: float  # seconds since it entered its current phase
    pending_total: float
    running_total: float
    utilization: float | None  # % of its GPUs, last window, only while Running
    gpu_memory_used_mib: int | None = None  # its fractions' GPU memory, last window, Running


@dataclass(frozen=True, slots=True)
class ServingRow:
    """One live inference server's replicas and load, as lifecycle last reported them."""

    id: str
    name: str
    project: str
    department: str
    desired_replicas: int
    ready_replicas: int
    requests_per_second: float | None
    metric: str | None
    metric_value: float | None


class Snapshot:
    """Every figure at one instant, computed once per read."""

    def __init__(self, projection: Projection, now: datetime):
        self.now = now
        self.p = projection
        current = projection.current
        self.nodes: dict[str, NodeInventory] = {
            k: v for k, v in current[NODE].items() if not v.deleted}
        self.projects: dict[str, ProjectChanged] = {
            k: v for k, v in current[PROJECT].items() if not v.deleted}
        self.departments: dict[str, DepartmentChanged] = {
            k: v for k, v in current[DEPARTMENT].items() if not v.deleted}
        self.project_by_name = {p.name: p for p in self.projects.values()}
        self.pool_definitions: list[NodePoolChanged] = sorted(
            (v for v in current[NODEPOOL].values()
             if not v.deleted and v.label_key and v.label_value is not None),
            key=lambda pool: pool.name)
        self.node_pool: dict[str, str] = {n.name: self._pool_of_node(n)
                                          for n in self.nodes.values()}
        deleted_projects = {v.name for v in current[PROJECT].values() if v.deleted}
        deleted_departments = {v.name for v in current[DEPARTMENT].values() if v.deleted}
        self.queues: list[QueueStatusChanged] = [
            q for q in current[QUEUE].values()
            if not (q.kind == "project" and q.name in deleted_projects)
            and not (q.kind == "department" and q.name in deleted_departments)]
        self.all_rows: list[WorkloadRow] = [self._row(w)
                                            for w in projection.workloads.values()]
        # what exists now: a deleted workload is gone from every current figure
        self.rows: list[WorkloadRow] = [r for r in self.all_rows
                                        if r.phase != Phase.DELETED.value]

    def serving(self) -> list[ServingRow]:
        """Every inference server not finished, with its last serving status."""
        live = {r.id for r in self.rows if r.phase not in _FINISHED}
        out = []
        for wid, status in sorted(self.p.current[SERVING].items()):
            if wid in live or wid not in self.p.workloads:
                out.append(ServingRow(wid, status.name, status.project,
                                      self.department_of(status.project)[0],
                                      status.desired_replicas, status.ready_replicas,
                                      status.requests_per_second, status.metric,
                                      status.metric_value))
        return out

    # organisation --------------------------------------------------------------------------
    def department_of(self, project: str) -> tuple[str, str | None]:
        """(department name, id) of a project by name; ("", None) when it has none."""
        p = self.project_by_name.get(project)
        if p is None or p.department_id is None:
            return "", None
        d = self.departments.get(p.department_id)
        return (d.name if d else ""), p.department_id

    def _pool_of_node(self, node: NodeInventory) -> str:
        """The pool a node is in, by the scheduler's rule: the pool whose label the node
        carries, `default` for the rest; while no pool with a label is defined, the pool the
        inventory reported (the node's fairway.io/node-pool label)."""
        if not self.pool_definitions:
            return node.node_pool
        for pool in self.pool_definitions:
            if pool.label_key and node.labels.get(pool.label_key) == pool.label_value:
                return pool.name
        return DEFAULT_POOL

    def node_pools(self) -> list[str]:
        pools = {k for k, v in self.p.current[NODEPOOL].items() if not v.deleted}
        pools |= set(self.node_pool.values())
        pools |= {q.node_pool for q in self.queues}
        return sorted(pools)

    def _row(self, w: WorkloadView) -> WorkloadRow:
        department, department_id = self.department_of(w.project)
        project = self.project_by_name.get(w.project)
        pending, running = w.open_seconds(self.now)
        reason = None
        pending_for = 0.0
        if w.phase in PENDING_PHASES:
            said = self.p.current[PENDING].get(w.id)
            reason = said.code if said is not None and said.pending and said.code \
                else UNKNOWN_REASON
            pending_for = max(0.0, (self.now - w.phase_changed_at).total_seconds())
        in_phase_for = (max(0.0, (self.now - w.phase_changed_at).total_seconds())
                        if w.phase_changed_at is not None else 0.0)
        utilization = gpu_memory = None
        if w.phase in RUNNING_PHASES and w.gpus_allocated > 0:
            sample = self.p.current[UTILIZATION].get(w.id)
            if sample is not None:
                utilization = sample.utilization_percent
                gpu_memory = sample.gpu_memory_used_mib
        return WorkloadRow(
            id=w.id, project=w.project,
            project_id=w.project_id or (project.project_id if project else None),
            department=department, department_id=department_id,
            node_pool=self._pool_of(w), type=w.workload_type, phase=w.phase or "",
            gpus_requested=0.0 if w.finished else w.gpus_requested,
            gpus_allocated=w.gpus_allocated, placements=w.placements,
            pending_reason=reason, pending_for=pending_for, in_phase_for=in_phase_for,
            pending_total=pending,
            running_total=running, utilization=utilization, gpu_memory_used_mib=gpu_memory)

    def _pool_of(self, w: WorkloadView) -> str:
        for node, _ in w.placements:
            if node in self.node_pool:
                return self.node_pool[node]
        if w.node_pools:
            return w.node_pools[0]
        return DEFAULT_POOL

    # nodes, pools, cluster -----------------------------------------------------------------
    def node_allocation(self) -> dict[str, float]:
        allocated: dict[str, float] = defaultdict(float)
        for row in self.rows:
            for node, gpus in row.placements:
                allocated[node] += gpus
        return allocated

    def node_busy(self) -> dict[str, float]:
        """GPU-percent in use per node: utilization times GPUs of every running workload there."""
        busy: dict[str, float] = defaultdict(float)
        for row in self.rows:
            if row.utilization is None:
                continue
            for node, gpus in row.placements:
                busy[node] += row.utilization * gpus
        return busy

    def pool_figures(self) -> dict[str, dict[str, float]]:
        """Per pool: gpus (ready nodes), allocated, utilization (% over ready GPUs), nodes."""
        allocated, busy = self.node_allocation(), self.node_busy()
        figures = {pool: {"gpus": 0.0, "allocated": 0.0, "busy": 0.0, "ready": 0, "not_ready": 0}
                   for pool in self.node_pools()}
        for node in self.nodes.values():
            f = figures[self.node_pool[node.name]]
            f["allocated"] += allocated.get(node.name, 0.0)
            if node.ready:
                f["ready"] += 1
                f["gpus"] += node.gpus
                f["busy"] += busy.get(node.name, 0.0)
            else:
                f["not_ready"] += 1
        for f in figures.values():
            f["utilization"] = f["busy"] / f["gpus"] if f["gpus"] else 0.0
        return figures

    # projects and departments --------------------------------------------------------------
    def unit_utilization(self, kind: str) -> dict[tuple[str, str], float]:
        """GPU-weighted mean utilization per (project or department name, pool) over the GPUs
        its running workloads hold; units with no running GPU workload are absent."""
        busy: dict[tuple[str, str], float] = defaultdict(float)
        held: dict[tuple[str, str], float] = defaultdict(float)
        for row in self.rows:
            if row.utilization is None:
                continue
            name = row.project if kind == "project" else row.department
            busy[(name, row.node_pool)] += row.utilization * row.gpus_allocated
            held[(name, row.node_pool)] += row.gpus_allocated
        return {k: busy[k] / held[k] for k in held if held[k] > 0}

    def rows_in(self, project_ids: Iterable[str] | None) -> list[WorkloadRow]:
        if project_ids is None:
            return self.rows
        allowed = set(project_ids)
        return [r for r in self.rows if r.project_id in allowed]
