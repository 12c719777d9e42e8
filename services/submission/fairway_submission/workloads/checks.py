"""The workloads' checks that span fields, each problem with its field path, and the list's
filters. Pure.

`check_spec` lists every problem that involves more than one field (a GPU fraction and its
request type, a limit below its request, a distributed workload without workers…); policy (over
the bus) decides defaults and rules after that. `check_node_type` holds the effective spec to
the node types its project and department allow.
"""

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from fairway_contracts import WorkloadType
from fairway_contracts.gpu import gpu_request_problems
from fairway_contracts.quantities import quantity_value
from fairway_contracts.workloads import SCALE_TO_ZERO_METRICS
from fairway_submission.core.errors import Problems
from fairway_submission.workloads.models import (
    CommonSpec,
    Compute,
    DistributedSpec,
    InferenceSpec,
    TrainingSpec,
)


def check_compute(compute: Compute, at: str = "spec.compute") -> Problems:
    problems: Problems = []

    def add(field: str, reason: str) -> None:
        problems.append({"field": f"{at}.{field}", "reason": reason})

    for field, reason in gpu_request_problems(compute.model_dump(by_alias=True)):
        add(field, reason)
    _limit_not_below(add, "cpuMemory", compute.cpu_memory_request, compute.cpu_memory_limit)
    if (compute.cpu_core_request is not None and compute.cpu_core_limit is not None
            and compute.cpu_core_limit < compute.cpu_core_request):
        add("cpuCoreLimit", f"must be at least cpuCoreRequest ({compute.cpu_core_request:g})")
    return problems


def _limit_not_below(add: Callable[[str, str], None], name: str, request: str | None,
                     limit: str | None) -> None:
    if request is None or limit is None:
        return
    if quantity_value(limit) < quantity_value(request):
        add(f"{name}Limit", f"must be at least {name}Request ({request})")


def check_spec(workload_type: WorkloadType, spec: CommonSpec) -> Problems:
    """Every problem that spans fields, by field path."""
    problems = check_compute(spec.compute)
    for i, pool in enumerate(spec.node_pools):
        if spec.node_pools.index(pool) != i:
            problems.append({"field": f"spec.nodePools[{i}]",
                             "reason": f"{pool!r} is listed twice"})
    if isinstance(spec, DistributedSpec):
        problems += _distributed_problems(spec)
    if isinstance(spec, InferenceSpec):
        problems += check_serving(spec)
    if isinstance(spec, TrainingSpec) and spec.parallelism and spec.completions \
            and spec.parallelism > spec.completions:
        problems.append({"field": "spec.parallelism",
                         "reason": f"must be at most completions ({spec.completions})"})
    return problems


def _distributed_problems(spec: DistributedSpec) -> Problems:
    """Workers and their elastic bounds (minReplicas <= numWorkers <= maxReplicas), and a
    master spec given exactly when the master is not a copy of the workers."""
    problems: Problems = []

    def add(field: str, reason: str) -> None:
        problems.append({"field": f"spec.{field}", "reason": reason})

    if spec.num_workers == 0 or (spec.num_workers is None and spec.max_replicas is None):
        add("numWorkers", "a distributed workload needs at least one worker")
    if (spec.min_replicas is not None and spec.max_replicas is not None
            and spec.max_replicas < spec.min_replicas):
        add("maxReplicas", f"must be at least minReplicas ({spec.min_replicas})")
    elif spec.num_workers and spec.max_replicas and spec.num_workers > spec.max_replicas:
        add("numWorkers", f"must be at most maxReplicas ({spec.max_replicas})")
    if spec.num_workers and spec.min_replicas and spec.min_replicas > spec.num_workers:
        add("minReplicas", f"must be at most numWorkers ({spec.num_workers})")
    if spec.master_spec is None:
        if not spec.master_spec_same_as_worker:
            add("masterSpec", "is required when masterSpecSameAsWorker is false (the "
                              "master's image, command, args, environmentVariables or compute)")
        return problems
    if spec.master_spec_same_as_worker:
        add("masterSpec", "is ignored while masterSpecSameAsWorker is true; set it to false")
        return problems
    if spec.master_spec.compute is not None:  # else the master is sized like a worker
        problems += check_compute(spec.master_spec.compute, "spec.masterSpec.compute")
        problems += _master_gpus(spec.master_spec.compute)
    return problems


def _master_gpus(master: Compute) -> Problems:
    """The scheduler places and books the master at its own size, smaller or larger than a
    worker (check_compute refuses what Kubernetes would). Its GPUs stay whole devices or none:
    a master with a GPU fraction of its own is not supported."""
    fraction = master.gpu_request_type or master.gpu_portion_request or master.gpu_memory_request
    if fraction:
        return [{"field": "spec.masterSpec.compute.gpuDevicesRequest",
                 "reason": "a master asks for whole GPUs or none, not a fraction"}]
    return []


def check_serving(spec: InferenceSpec) -> Problems:
    """An inference server's servingPort and autoscaling, across their fields."""
    problems: Problems = []

    def add(field: str, reason: str) -> None:
        problems.append({"field": f"spec.{field}", "reason": reason})

    port = spec.serving_port
    if port is not None:
        named = bool(port.authorized_users or port.authorized_groups)
        if port.authorization_type == "authorizedUsersOrGroups" and not named:
            add("servingPort.authorizedUsers", "authorizationType authorizedUsersOrGroups "
                "needs at least one user in authorizedUsers or group in authorizedGroups")
        elif port.authorization_type != "authorizedUsersOrGroups" and named:
            add("servingPort.authorizationType", "must be authorizedUsersOrGroups when "
                "authorizedUsers or authorizedGroups are given")
    a = spec.autoscaling
    if a is None:
        return problems
    if a.max_replicas is not None and a.max_replicas < a.min_replicas:
        add("autoscaling.maxReplicas", f"must be at least minReplicas ({a.min_replicas})")
    moves = a.min_replicas == 0 or (a.max_replicas or a.min_replicas) > a.min_replicas
    if moves and (a.metric is None or a.metric_threshold is None):
        missing = "metric" if a.metric is None else "metricThreshold"
        add(f"autoscaling.{missing}", "is required when the replicas may change "
            "(maxReplicas above minReplicas, or minReplicas 0)")
    if a.min_replicas == 0 and a.metric is not None and a.metric not in SCALE_TO_ZERO_METRICS:
        add("autoscaling.minReplicas", f"may be 0 (scale to zero) only with metric throughput "
            f"or concurrency, not {a.metric}: without requests there is no {a.metric} to "
            "wake it")
    if a.scale_to_zero_retention_seconds is not None and a.min_replicas != 0:
        add("autoscaling.scaleToZeroRetentionSeconds", "applies only with minReplicas 0 "
            "(scale to zero)")
    return problems


def check_effective(spec_model: type[CommonSpec], effective: Mapping[str, Any]) -> Problems:
    """The spec after policy is held to the submission's own rules: a policy default is a
    value like any other, and one Kubernetes would refuse must not slip in that way. Only the
    fields a submission can carry are checked (the effective spec also has derived ones)."""
    fields = {f.alias or name for name, f in spec_model.model_fields.items()}
    given = {k: v for k, v in effective.items() if k in fields and v is not None}
    try:
        spec_model.model_validate(given)
    except ValidationError as exc:
        return [{"field": "spec." + ".".join(str(p) for p in e["loc"]),
                 "reason": e["msg"].removeprefix("Value error, ") + " (after policy defaults)"}
                for e in exc.errors(include_url=False)]
    return []


def node_type_kind(workload_type: str) -> str | None:
    """Which list of nodeTypes governs a workload type: trainings (standard and distributed)
    the `training` list; workspaces and inference, interactive work as Run:ai counts it, the
    `workspace` list."""
    return {"workspace": "workspace", "training": "training", "distributed": "training",
            "inference": "workspace"}.get(workload_type)


def check_node_type(workload_type: str, node_type: str | None, project: Mapping[str, Any],
                    department: Mapping[str, Any], field: str = "spec.nodeType") -> Problems:
    """A workload must pick one of the node types its project and department allow for its
    kind (both lists apply where both are set); none is needed when neither sets any."""
    kind = node_type_kind(workload_type)
    if kind is None:
        return []
    scopes = [(f"project {project['name']}", (project.get("node_types") or {}).get(kind)),
              (f"department {department['name']}",
               (department.get("node_types") or {}).get(kind))]
    scopes = [(who, allowed) for who, allowed in scopes if allowed]
    if not scopes:
        return []
    plural = {"workspace": "workspaces", "inference": "inference workloads"}.get(
        workload_type, "trainings")
    allowed = [t for t in scopes[0][1] if all(t in a for _, a in scopes)]
    if not allowed:
        return [{"field": field, "reason": f"no node type is allowed for {plural}: "
                 + " and ".join(f"{who} allows {', '.join(a)}" for who, a in scopes)}]
    if node_type is None:
        return [{"field": field, "reason": f"is required: {scopes[0][0]} runs {plural} only on "
                 f"node types {', '.join(allowed)}; pick one"}]
    for who, a in scopes:
        if node_type not in a:
            return [{"field": field, "reason": f"node type {node_type!r} is not allowed for "
                     f"{plural} by {who}; use one of {', '.join(allowed)}"}]
    return []


def check_topology(required: str | None, preferred: str | None, node_pools: list[str],
                   topologies: Mapping[str, list[str]], field: str = "spec.topology"
                   ) -> Problems:
    """A topology request names levels of the network topology of a node pool it may run in
    (its node pools; none given: any): the scheduler could place it nowhere else. A preferred
    level is no wider than the required one (it would be the required one)."""
    pools = node_pools or sorted(topologies)
    named = {pool: topologies.get(pool) or [] for pool in pools}
    where = (f"node pool{'s' if len(pools) > 1 else ''} {', '.join(pools)}" if node_pools
             else "any node pool")
    known = "; ".join(f"{pool}: {', '.join(levels)}" for pool, levels in named.items()
                      if levels) or "none names a network topology"
    problems: Problems = []
    for key, level in (("requiredPlacement", required), ("preferredPlacement", preferred)):
        if level is not None and not any(level in levels for levels in named.values()):
            problems.append({"field": f"{field}.{key}",
                             "reason": f"{level!r} is not a topology level of {where} "
                                       f"({known})"})
    if problems or required is None or preferred is None:
        return problems
    for pool, levels in named.items():
        if (required in levels and preferred in levels
                and levels.index(preferred) < levels.index(required)):
            return [{"field": f"{field}.preferredPlacement",
                     "reason": f"{preferred!r} is a wider level than requiredPlacement "
                               f"{required!r} in node pool {pool}: a preference inside the "
                               "required domain must be the same level or a narrower one"}]
    return []


# filterBy / sortBy on the workload list: API field → SQL column.
LIST_FIELDS = {
    "desiredPhase": "desired_phase",
    "name": "name",
    "projectId": "project_id::text",
    "projectName": "project",
    "type": "workload_type",
    "phase": "phase",
    "createdBy": "created_by",
    "createdAt": "created_at",
    "workloadId": "workload_id::text",
}
FILTER = re.compile(r"^(?P<field>[A-Za-z]+)(?P<op>==|!=|=@|>=|<=)(?P<value>.*)$")


def parse_filters(filter_by: str | None) -> list[tuple[str, str, str]]:
    """`field==value,field!=value,field=@part` → [(column, op, value)]; ValueError names the
    part that is wrong."""
    out: list[tuple[str, str, str]] = []
    if not filter_by:
        return out
    for part in filter_by.split(","):
        match = FILTER.match(part.strip())
        if not match:
            raise ValueError(f"'{part}' is not field==value, field!=value or field=@value")
        field = match["field"]
        if field not in LIST_FIELDS:
            raise ValueError(f"cannot filter by '{field}'; use one of {', '.join(LIST_FIELDS)}")
        out.append((LIST_FIELDS[field], match["op"], match["value"]))
    return out


def check_gpu_memory(compute: Any, node_pools: list[str],
                     inventory: list[Any]) -> Problems:
    """A memory fraction larger than every GPU of the pools it may use could never run. Nodes
    whose GPU memory is not reported are not counted; with none reported, nothing is refused
    (the inventory may not be in yet)."""
    wanted = compute.gpu_memory_request_mib() if compute.gpu_request_type == "memory" else None
    if not wanted:
        return []
    sizes = [(n.gpu_memory_mib, n.node_pool) for n in inventory
             if n.gpu_memory_mib and n.gpus and (not node_pools or n.node_pool in node_pools)]
    if not sizes:
        return []
    largest, pool = max(sizes)
    if wanted <= largest:
        return []
    where = f"node pool {', '.join(node_pools)}" if node_pools else "the cluster"
    return [{"field": "spec.compute.gpuMemoryRequest",
             "reason": f"{compute.gpu_memory_request} ({wanted} MiB) is more than any GPU in "
                       f"{where} has (the largest has {largest} MiB, in node pool {pool})"}]
