"""Answers to telemetry queries and the periodic samples, from a `Snapshot`. Pure: no I/O."""

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from fairway_contracts.telemetry import (
    PENDING_TIME_BUCKETS,
    Measurement,
    MetricsQuery,
    MetricType,
    MetricValue,
    TelemetryGroup,
    TelemetryGroupBy,
    TelemetryQuery,
    TelemetryReply,
    TelemetryType,
    TelemetryValue,
)
from fairway_metrics.core.projection import Snapshot, WorkloadRow

Sample = tuple[str, str, str, float]  # scope, scope id, metric, value


# telemetry ---------------------------------------------------------------------------------
_SERVING_FIGURES = {
    TelemetryType.INFERENCE_DESIRED_REPLICAS: "desired_replicas",
    TelemetryType.INFERENCE_READY_REPLICAS: "ready_replicas",
    TelemetryType.INFERENCE_REQUESTS_PER_SECOND: "requests_per_second",
}


def telemetry(query: TelemetryQuery, s: Snapshot) -> TelemetryReply:
    if query.telemetry_type in _SERVING_FIGURES:
        return TelemetryReply(type=query.telemetry_type, timestamp=s.now,
                              values=_serving(query, s))
    rows = s.rows_in(query.project_ids)
    if query.department_id is not None:
        rows = [r for r in rows if r.department_id == query.department_id]
    if query.node_pool is not None:
        rows = [r for r in rows if r.node_pool == query.node_pool]
    if query.telemetry_type is TelemetryType.PENDING_TIME_DISTRIBUTION:
        values = _pending_distribution(rows, query.group_by)
    else:
        totals: dict[tuple[TelemetryGroup, ...], float] = defaultdict(float)
        for row in rows:
            amount = 1.0 if query.telemetry_type is TelemetryType.WORKLOADS_COUNT \
                else row.gpus_allocated
            totals[_groups(row, query.group_by)] += amount
        if not query.group_by:
            totals.setdefault((), 0.0)
        values = [TelemetryValue(value=_number(v), groups=list(g))
                  for g, v in sorted(totals.items(), key=lambda i: _order(i[0]))]
    return TelemetryReply(type=query.telemetry_type, timestamp=s.now, values=values)


def _serving(query: TelemetryQuery, s: Snapshot) -> list[TelemetryValue]:
    """One value per live inference server in scope, its groups then the server itself."""
    figure = _SERVING_FIGURES[query.telemetry_type]
    rows = {r.id: r for r in s.rows_in(query.project_ids)}
    values = []
    for server in s.serving():
        row = rows.get(server.id)
        if row is None or (query.department_id is not None
                           and row.department_id != query.department_id) or (
                query.node_pool is not None and row.node_pool != query.node_pool):
            continue
        value = getattr(server, figure) or 0
        groups = (*_groups(row, query.group_by),
                  TelemetryGroup(key="workload", value=server.id, name=server.name))
        values.append(TelemetryValue(value=_number(value), groups=list(groups)))
    return sorted(values, key=lambda v: _order(tuple(v.groups)))


def _pending_distribution(rows: list[WorkloadRow], group_by: list[TelemetryGroupBy]
                          ) -> list[TelemetryValue]:
    """Pending workloads by how long they have waited so far, every bucket of every group
    present (zeros included, so the distribution reads whole)."""
    counts: dict[tuple[TelemetryGroup, ...], list[int]] = {}
    for row in rows:
        if row.pending_reason is None:
            continue
        buckets = counts.setdefault(_groups(row, group_by), [0] * len(PENDING_TIME_BUCKETS))
        for i, (_, upper) in enumerate(PENDING_TIME_BUCKETS):
            if row.pending_for < upper:
                buckets[i] += 1
                break
    if not group_by:
        counts.setdefault((), [0] * len(PENDING_TIME_BUCKETS))
    values = []
    for groups, buckets in sorted(counts.items(), key=lambda i: _order(i[0])):
        for (label, _), n in zip(PENDING_TIME_BUCKETS, buckets, strict=True):
            bucket = TelemetryGroup(key="pendingTime", value=label, name=label)
            values.append(TelemetryValue(value=str(n), groups=[*groups, bucket]))
    return values


def _groups(row: WorkloadRow, group_by: list[TelemetryGroupBy]) -> tuple[TelemetryGroup, ...]:
    out = []
    for key in group_by:
        if key is TelemetryGroupBy.PROJECT:
            out.append(TelemetryGroup(key=key.value, value=row.project_id or row.project,
                                      name=row.project))
        elif key is TelemetryGroupBy.DEPARTMENT:
            out.append(TelemetryGroup(key=key.value, value=row.department_id or "",
                                      name=row.department))
        elif key is TelemetryGroupBy.TYPE:
            out.append(TelemetryGroup(key=key.value, value=row.type, name=row.type))
        elif key is TelemetryGroupBy.NODEPOOL:
            out.append(TelemetryGroup(key=key.value, value=row.node_pool, name=row.node_pool))
        else:
            out.append(TelemetryGroup(key=key.value, value=row.phase, name=row.phase))
    return tuple(out)


def _order(groups: tuple[TelemetryGroup, ...]) -> tuple:
    return tuple((g.key, g.name or "", g.value) for g in groups)


def _number(value: float) -> str:
    return f"{value:g}"


# samples -----------------------------------------------------------------------------------
def samples(s: Snapshot) -> list[Sample]:
    """What the service stores every sampling interval: per project (by id), department (by
    id) and node pool (by name)."""
    out: list[Sample] = []
    for project_id, project in s.projects.items():
        out += _unit_samples(s, "project", project_id, project.name, project.resources)
    for department_id, department in s.departments.items():
        out += _unit_samples(s, "department", department_id, department.name,
                             department.resources)
    pools = s.pool_figures()
    by_pool: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for q in s.queues:
        if q.kind == "project":
            f = by_pool[q.node_pool]
            f[MetricType.GPU_QUOTA] += q.gpu.deserved
            f[MetricType.GPU_FAIR_SHARE] += q.gpu.fair_share
            f[MetricType.GPU_REQUESTED] += q.gpu.requested
            f[MetricType.CPU_QUOTA] += q.cpu.deserved / 1000
            f[MetricType.CPU_ALLOCATION] += q.cpu.allocated / 1000
            f[MetricType.CPU_MEMORY_QUOTA] += q.memory.deserved
            f[MetricType.CPU_MEMORY_ALLOCATION] += q.memory.allocated
    for pool, figures in pools.items():
        values = dict(by_pool.get(pool, {}))
        for metric in (MetricType.GPU_QUOTA, MetricType.GPU_FAIR_SHARE, MetricType.GPU_REQUESTED,
                       MetricType.CPU_QUOTA, MetricType.CPU_ALLOCATION,
                       MetricType.CPU_MEMORY_QUOTA, MetricType.CPU_MEMORY_ALLOCATION):
            values.setdefault(metric, 0.0)
        values[MetricType.GPU_CAPACITY] = figures["gpus"]
        values[MetricType.GPU_ALLOCATION] = figures["allocated"]
        values[MetricType.GPU_UTILIZATION] = figures["utilization"]
        out += [("nodepool", pool, metric.value, value) for metric, value in values.items()]
    return out


def _unit_samples(s: Snapshot, kind: str, unit_id: str, name: str, resources) -> list[Sample]:
    queues = [q for q in s.queues if q.kind == kind and q.name == name]
    values: dict[MetricType, float] = {}
    if queues:
        values[MetricType.GPU_QUOTA] = sum(q.gpu.deserved for q in queues)
        values[MetricType.GPU_ALLOCATION] = sum(q.gpu.allocated for q in queues)
        values[MetricType.GPU_FAIR_SHARE] = sum(q.gpu.fair_share for q in queues)
        values[MetricType.GPU_REQUESTED] = sum(q.gpu.requested for q in queues)
        values[MetricType.CPU_QUOTA] = sum(q.cpu.deserved for q in queues) / 1000
        values[MetricType.CPU_ALLOCATION] = sum(q.cpu.allocated for q in queues) / 1000
        values[MetricType.CPU_MEMORY_QUOTA] = sum(q.memory.deserved for q in queues)
        values[MetricType.CPU_MEMORY_ALLOCATION] = sum(q.memory.allocated for q in queues)
    else:
        # The scheduler has not reported this unit yet: its quota from the organisation, and
        # what its workloads hold from the workload projection.
        rows = [r for r in s.rows if (r.project if kind == "project" else r.department) == name]
        values[MetricType.GPU_QUOTA] = sum(r.gpu.deserved for r in resources)
        values[MetricType.GPU_ALLOCATION] = sum(r.gpus_allocated for r in rows)
        values[MetricType.GPU_REQUESTED] = sum(r.gpus_requested for r in rows)
        values[MetricType.CPU_QUOTA] = sum(r.cpu.deserved for r in resources)
        values[MetricType.CPU_MEMORY_QUOTA] = sum(r.memory.deserved for r in resources)
    used = s.unit_utilization(kind)
    busy = sum(u * _held(s, kind, name, pool) for (n, pool), u in used.items() if n == name)
    held = sum(_held(s, kind, name, pool) for (n, pool) in used if n == name)
    values[MetricType.GPU_UTILIZATION] = busy / held if held else 0.0
    return [(kind, unit_id, metric.value, value) for metric, value in values.items()]


def _held(s: Snapshot, kind: str, name: str, pool: str) -> float:
    return sum(r.gpus_allocated for r in s.rows if r.utilization is not None
               and r.node_pool == pool and (r.project if kind == "project"
                                            else r.department) == name)


# time series -------------------------------------------------------------------------------
def downsample(query: MetricsQuery, rows: Iterable[tuple[str, datetime, float]],
               labels: dict[str, str]) -> list[Measurement]:
    """At most `number_of_samples` points per metric: [start, end] cut into that many equal
    windows, each window's samples averaged, stamped with the window's last sample time."""
    span = (query.end - query.start).total_seconds()
    width = span / query.number_of_samples if span > 0 else 1.0
    windows: dict[str, dict[int, list[tuple[datetime, float]]]] = defaultdict(
        lambda: defaultdict(list))
    for metric, at, value in rows:
        index = min(int((at - query.start).total_seconds() // width),
                    query.number_of_samples - 1)
        windows[metric][index].append((at, value))
    measurements = []
    for metric in query.metric_types:
        points = windows.get(metric.value, {})
        values = [MetricValue(value=_number(sum(v for _, v in points[i]) / len(points[i])),
                              timestamp=points[i][-1][0])
                  for i in sorted(points)]
        measurements.append(Measurement(type=metric, labels=labels, values=values))
    return measurements
