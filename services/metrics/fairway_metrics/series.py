"""The Prometheus series of the metrics service, served on the runtime's /metrics: the adapter
between the projection and prometheus_client. It is not part of the pure core: it registers in
prometheus_client's process-wide registry and keeps counters that live as long as the process.

Most series are computed at scrape time from the in-memory projection by one custom collector
(`ProjectionCollector`): nothing is kept in sync by set() calls, so a series can never drift
from the projection, and a restart shows the right values as soon as the projection is loaded.
Only what happens once per event (phase transitions, latencies) is counted as it happens.

Label cardinality is bounded by design: labels are project, department, node_pool and node
(as many as the organisation and the cluster configure), and phase, type and reason (closed
sets). No series carries a workload id or a pod name: per-workload figures would grow one
series per workload ever submitted; they belong to the telemetry API and the workload view.
"""

from collections import Counter as CountOf
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fairway_contracts.workloads import Phase, utcnow
from fairway_metrics.core.projection import Projection, ServingRow, Snapshot
from fairway_metrics.core.workloads import Outcome

SUBMIT_TO_RUNNING = Histogram(
    "fairway_workload_submit_to_running_seconds",
    "From submission to the first time a workload is Running, once per workload.", ["type"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
SUBMIT_TO_COMPLETED = Histogram(
    "fairway_workload_submit_to_completed_seconds",
    "From submission to the first time a workload is Completed, once per workload.", ["type"],
    buckets=(10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800),
)
PHASE_TRANSITIONS = Counter(
    "fairway_phase_transitions", "Workload phase transitions, by the phase entered.", ["phase"],
)

GPU_MEMORY_RECLAIMS = Counter(
    "fairway_gpu_memory_reclaims",
    "Pods of dynamic GPU fractions killed to take back GPU memory they used above their "
    "request, for a new fraction on their device.", ["project", "node"],
)

# Every series exists from the start, at zero, so that rate() and absent() behave.
for _phase in Phase:
    PHASE_TRANSITIONS.labels(_phase.value)


def record(outcomes: Iterable[Outcome]) -> None:
    """What a batch of events did: transitions counted once per phase, not once per event."""
    entered: CountOf[str] = CountOf()
    for outcome in outcomes:
        workload_type = outcome.view.workload_type
        if outcome.transition is not None:
            entered[outcome.transition] += 1
        if outcome.gpu_memory_reclaimed is not None:
            GPU_MEMORY_RECLAIMS.labels(*outcome.gpu_memory_reclaimed).inc()
        if outcome.submit_to_running is not None:
            SUBMIT_TO_RUNNING.labels(workload_type).observe(outcome.submit_to_running)
        if outcome.submit_to_completed is not None:
            SUBMIT_TO_COMPLETED.labels(workload_type).observe(outcome.submit_to_completed)
    for phase, n in entered.items():
        PHASE_TRANSITIONS.labels(phase).inc(n)


def _gauge(name: str, doc: str, labels: list[str], values: dict[tuple, float]
           ) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def _counter(name: str, doc: str, labels: list[str], values: dict[tuple, float]
             ) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


class ProjectionCollector(Collector):
    """Reads the projection at scrape time. One per process (the registry is global): the
    metrics service that starts last points it at its projection."""

    def __init__(self) -> None:
        self.projection: Projection | None = None
        self.clock: Callable[[], datetime] = utcnow

    def collect(self) -> Iterator[Metric]:
        if self.projection is None:
            return
        s = self.projection.snapshot(self.clock())
        yield from _workload_series(s)
        yield from _queue_series(s)
        yield from _node_series(s)
        yield from _serving_series(s)
        yield _counter("fairway_preemptions", "Preempt decisions, by project and reason.",
                       ["project", "department", "reason"],
                       {(project, s.department_of(project)[0], reason): n
                        for (project, reason), n in self.projection.preemptions.items()})
        yield _counter("fairway_dead_letters", "Messages dead-lettered, by durable consumer.",
                       ["consumer"], {(c,): n for c, n in self.projection.dead_letters.items()})


# Phases a workload should leave on its own: a long stay in one is worth an alert.
_TRANSIENT_PHASES = frozenset({Phase.CREATING.value, Phase.PENDING.value,
                               Phase.INITIALIZING.value, Phase.DEGRADED.value,
                               Phase.STOPPING.value, Phase.RESUMING.value, Phase.DELETING.value})


def _workload_series(s: Snapshot) -> Iterator[Metric]:
    counts: dict[tuple, float] = defaultdict(float)
    requested: dict[tuple, float] = defaultdict(float)
    allocated: dict[tuple, float] = defaultdict(float)
    gpu_memory: dict[tuple, float] = defaultdict(float)
    pending: dict[tuple, float] = defaultdict(float)
    oldest: dict[tuple, float] = {}
    pending_total: dict[tuple, float] = defaultdict(float)
    running_total: dict[tuple, float] = defaultdict(float)
    in_phase: dict[tuple, float] = {}
    # Every phase of every (project, type) that has workloads exists, at zero if need be, so a
    # count that falls to zero is a zero and not a vanished series (and no more than that:
    # phases x types x every project would be series nobody reads).
    for r in s.rows:
        for phase in Phase:
            if phase is not Phase.DELETED:
                counts[(r.project, r.department, r.type, phase.value)] = 0.0
        oldest[(r.project, r.department)] = 0.0
    for p in s.projects.values():
        oldest.setdefault((p.name, s.department_of(p.name)[0]), 0.0)
    for r in s.rows:
        counts[(r.project, r.department, r.type, r.phase)] += 1
        pool_key = (r.project, r.department, r.node_pool, r.type)
        requested[pool_key] += r.gpus_requested
        allocated[pool_key] += r.gpus_allocated
        if r.gpu_memory_used_mib is not None:
            gpu_memory[pool_key] += r.gpu_memory_used_mib * 2**20
        if r.pending_reason is not None:
            pending[(r.project, r.department, r.pending_reason)] += 1
            key = (r.project, r.department)
            oldest[key] = max(oldest.get(key, 0.0), r.pending_for)
        if r.phase in _TRANSIENT_PHASES:
            key = (r.project, r.department, r.phase)
            in_phase[key] = max(in_phase.get(key, 0.0), r.in_phase_for)
    # Counters take every workload ever projected, deleted ones too: a total never decreases.
    for r in s.all_rows:
        pending_total[(r.project, r.department, r.type)] += r.pending_total
        running_total[(r.project, r.department, r.type)] += r.running_total
    yield _gauge("fairway_workloads", "Workloads by current phase and type (pods of a workload "
                 "count once).", ["project", "department", "type", "phase"], counts)
    yield _gauge("fairway_workload_gpus_requested",
                 "GPUs requested by workloads not finished.",
                 ["project", "department", "node_pool", "type"], requested)
    yield _gauge("fairway_workload_gpus_allocated",
                 "GPUs held by the live, bound pods of workloads.",
                 ["project", "department", "node_pool", "type"], allocated)
    yield _gauge("fairway_workload_gpu_memory_used_bytes",
                 "GPU memory the running GPU fractions use, as their nodes report it (at the "
                 "end of each workload's last utilization window).",
                 ["project", "department", "node_pool", "type"], gpu_memory)
    yield _gauge("fairway_workloads_pending",
                 "Pending workloads by the scheduler's reason code.",
                 ["project", "department", "reason"], pending)
    yield _gauge("fairway_workload_oldest_pending_seconds",
                 "The longest current wait of a pending workload (0: none pending).",
                 ["project", "department"], oldest)
    yield _gauge("fairway_workload_oldest_in_phase_seconds",
                 "How long the longest-staying workload has been in its current phase, for "
                 "phases a workload should pass through (Creating, Initializing, ...).",
                 ["project", "department", "phase"], in_phase)
    yield _counter("fairway_workload_pending_seconds",
                   "Time workloads spent Pending, the open stretches up to now.",
                   ["project", "department", "type"], pending_total)
    yield _counter("fairway_workload_running_seconds",
                   "Time workloads spent Running or Degraded, the open stretches up to now.",
                   ["project", "department", "type"], running_total)


def _serving_series(s: Snapshot) -> Iterator[Metric]:
    # One series per live inference server (its name is unique in its project), gone when it
    # finishes: as many as servers run, like a per-Deployment series of kube-state-metrics.
    labels = ["project", "department", "workload"]
    rows = s.serving()

    def by(figure: Callable[[ServingRow], float | None]) -> dict[tuple[str, ...], float]:
        return {(r.project, r.department, r.name): value for r in rows
                if (value := figure(r)) is not None}

    yield _gauge("fairway_inference_replicas_desired",
                 "Replicas an inference server's autoscaler wants (0: scaled to zero).",
                 labels, by(lambda r: r.desired_replicas))
    yield _gauge("fairway_inference_replicas_ready",
                 "Replicas of an inference server ready behind its Service.",
                 labels, by(lambda r: r.ready_replicas))
    yield _gauge("fairway_inference_requests_per_second",
                 "Requests per second arriving at an inference server, as last read.",
                 labels, by(lambda r: r.requests_per_second))
    yield _gauge("fairway_inference_autoscaling_metric",
                 "An inference server's autoscaling metric over its replicas, as last read.",
                 [*labels, "metric"],
                 {(r.project, r.department, r.name, r.metric): r.metric_value
                  for r in rows if r.metric and r.metric_value is not None})


_QUEUE_FIGURES = (
    ("deserved", "deserved", "Deserved GPU quota."),
    ("limit", "limit", "GPU limit (absent: no limit)."),
    ("over_quota_weight", "over_quota_weight", "Over-quota weight."),
    ("fair_share", "fair_share", "Current fair share of GPUs."),
    ("allocated", "allocated", "GPUs allocated, as the scheduler sees them."),
    ("allocated_non_preemptible", "allocated_non_preemptible",
     "GPUs allocated to non-preemptible workloads."),
    ("requested", "requested", "GPUs requested (allocated and pending)."),
)


def _queue_series(s: Snapshot) -> Iterator[Metric]:
    for kind in ("project", "department"):
        labels = ["project", "department", "node_pool"] if kind == "project" \
            else ["department", "node_pool"]
        queues = [q for q in s.queues if q.kind == kind]

        def key(q, kind=kind):
            if kind == "project":
                return (q.name, q.parent or s.department_of(q.name)[0], q.node_pool)
            return (q.name, q.node_pool)

        for suffix, attr, doc in _QUEUE_FIGURES:
            values = {key(q): float(getattr(q.gpu, attr)) for q in queues}
            if attr == "limit":
                values = {k: v for k, v in values.items() if v >= 0}
            yield _gauge(f"fairway_{kind}_gpu_{suffix}", f"{kind.title()}: {doc}", labels,
                         values)
        used = s.unit_utilization(kind)
        values = {}
        for q in queues:
            values[key(q)] = used.get((q.name, q.node_pool), 0.0)
        yield _gauge(f"fairway_{kind}_gpu_utilization",
                     f"{kind.title()}: mean utilization (%) of the GPUs its running workloads "
                     "hold, last window.", labels, values)


def _node_series(s: Snapshot) -> Iterator[Metric]:
    allocated, busy = s.node_allocation(), s.node_busy()
    labels = ["node", "node_pool"]
    nodes = sorted(s.nodes.values(), key=lambda n: n.name)
    yield _gauge("fairway_node_gpus", "GPUs on the node.", labels,
                 {(n.name, s.node_pool[n.name]): float(n.gpus) for n in nodes})
    yield _gauge("fairway_node_ready", "1 when the node is Ready.", labels,
                 {(n.name, s.node_pool[n.name]): 1.0 if n.ready else 0.0 for n in nodes})
    yield _gauge("fairway_node_gpus_allocated", "GPUs held by pods bound to the node.", labels,
                 {(n.name, s.node_pool[n.name]): allocated.get(n.name, 0.0) for n in nodes})
    yield _gauge("fairway_node_gpu_utilization",
                 "Utilization (%) over all the node's GPUs (free ones count 0).", labels,
                 {(n.name, s.node_pool[n.name]): busy.get(n.name, 0.0) / n.gpus if n.gpus else 0.0
                  for n in nodes})
    pools = s.pool_figures()
    nodes_by_pool: dict[tuple, float] = {}
    for pool, f in pools.items():
        nodes_by_pool[(pool, "true")] = f["ready"]
        nodes_by_pool[(pool, "false")] = f["not_ready"]
    yield _gauge("fairway_nodepool_nodes", "Nodes of the pool, by readiness.",
                 ["node_pool", "ready"], nodes_by_pool)
    yield _gauge("fairway_nodepool_gpus", "GPUs on the pool's ready nodes.", ["node_pool"],
                 {(p,): f["gpus"] for p, f in pools.items()})
    yield _gauge("fairway_nodepool_gpus_allocated", "GPUs allocated in the pool.",
                 ["node_pool"], {(p,): f["allocated"] for p, f in pools.items()})
    yield _gauge("fairway_nodepool_gpu_utilization",
                 "Utilization (%) over the pool's ready GPUs.", ["node_pool"],
                 {(p,): f["utilization"] for p, f in pools.items()})
    gpus = sum(f["gpus"] for f in pools.values())
    busy_total = sum(f["busy"] for f in pools.values())
    yield _gauge("fairway_cluster_nodes", "Nodes of the cluster, by readiness.", ["ready"],
                 {("true",): float(sum(f["ready"] for f in pools.values())),
                  ("false",): float(sum(f["not_ready"] for f in pools.values()))})
    yield _gauge("fairway_cluster_gpus", "GPUs on the cluster's ready nodes.", [],
                 {(): gpus})
    yield _gauge("fairway_cluster_gpus_allocated", "GPUs allocated in the cluster.", [],
                 {(): sum(f["allocated"] for f in pools.values())})
    yield _gauge("fairway_cluster_gpu_utilization",
                 "Utilization (%) over the cluster's ready GPUs.", [],
                 {(): busy_total / gpus if gpus else 0.0})


COLLECTOR = ProjectionCollector()
REGISTRY.register(COLLECTOR)
