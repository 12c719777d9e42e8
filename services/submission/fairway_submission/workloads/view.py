"""A workload as the API shows it, from its row in the workload view."""

from collections.abc import Mapping
from typing import Any

from fairway_contracts.workloads import requested_gpus, utcnow
from fairway_submission.workloads.models import Workload


def to_workload(row: Mapping[str, Any]) -> dict[str, Any]:
    return workload_of(row).model_dump(mode="json", by_alias=True)


def workload_json(row: Mapping[str, Any]) -> bytes:
    """`to_workload` as the JSON a response carries, serialised by pydantic in one step."""
    return workload_of(row).model_dump_json(by_alias=True).encode()


def workload_of(row: Mapping[str, Any]) -> Workload:
    spec = row["effective_spec"]
    pods = row["pods"] or []
    per_pod = requested_gpus(row["submitted_spec"]) or requested_gpus(spec)
    master = _master_gpus(spec)
    running = [p for p in pods if p.get("node") and p.get("phase") == "Running"]
    bound = [p for p in pods if p.get("node") and p.get("phase") in ("Pending", "Running")]
    now = utcnow()
    pending = row["total_pending_seconds"] + (
        (now - row["pending_since"]).total_seconds() if row["pending_since"] else 0)
    run = row["total_running_seconds"] + (
        (now - row["running_since"]).total_seconds() if row["running_since"] else 0)
    asleep = _scaled_to_zero(row)
    requested_pools = spec.get("nodePools") or []
    current_pools = sorted({p["nodePool"] for p in bound if p.get("nodePool")})
    return Workload(
        workload_id=str(row["workload_id"]), name=row["name"],
        # a third-party workload of a namespace with no project has none
        project_id="" if row["project_id"] is None else str(row["project_id"]),
        project_name=row["project"], type=row["workload_type"], created_at=row["created_at"],
        created_by=row["created_by"], desired_phase=row["desired_phase"], phase=row["phase"],
        # While it waits, the scheduler's reason (with its numbers) says more than the phase.
        phase_reason=(row["scheduler_code"] if row["phase"] == "Pending"
                      and row["scheduler_code"] else asleep[0] if asleep
                      else row["phase_reason"]),
        phase_message=(row["scheduler_message"] if row["phase"] == "Pending"
                       and row["scheduler_message"] else asleep[1] if asleep
                       else row["phase_message"]),
        priority_class_name=spec.get("priorityClass", ""),
        preemptible=bool(spec.get("preemptible")),
        requested_node_pools=requested_pools,
        current_node_pools=current_pools,
        allocated_resources={"gpu": round(sum(
            master if master is not None and p.get("role") == "master" else _gpus_held(p, per_pod)
            for p in bound), 4)},
        requested_resources={"gpu": per_pod * spec.get("pods", 1) if master is None
                             else per_pod * (spec.get("pods", 1) - 1) + master,
                             "pods": spec.get("pods", 1),
                             **_fraction(spec.get("compute") or {})},
        running_pods=len(running), requested_pods=spec.get("pods", 1),
        total_pending_time_seconds=round(pending, 3), total_running_time_seconds=round(run, 3),
        **_serving(row), **_third_party(row), spec=effective_view(row["submitted_spec"], spec),
        submitted_spec=row["submitted_spec"],
    )


def effective_view(submitted: Mapping[str, Any], effective: Mapping[str, Any]
                   ) -> dict[str, Any]:
    """What runs, in the submitted spec's shape: every field policy set or defaulted (a
    default `backoffLimit`, a locked image, the priority class) as it was decided, and the
    fields the effective spec does not carry (autoscaling, …) as they were submitted."""
    return {**submitted, **_without_nulls(effective)}


def _without_nulls(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that are set, at every depth (a master spec's unset fields are not shown)."""
    return {key: _without_nulls(value) if isinstance(value, Mapping) else value
            for key, value in spec.items() if value is not None}


def _scaled_to_zero(row: Mapping[str, Any]) -> tuple[str, str] | None:
    """A running server its autoscaler took to zero replicas stays Running (as Run:ai shows
    it; no phase changed, so no phase event says it): the view says why it has no pod."""
    status = row.get("serving") or {}
    if row["phase"] != "Running" or status.get("desiredReplicas") != 0:
        return None
    return "ScaledToZero", (status.get("reason") or "scaled to zero") + \
        "; the next request starts a replica"


def _serving(row: Mapping[str, Any]) -> dict[str, Any]:
    """An inference server's endpoint, replicas and load, as lifecycle last reported them;
    before its first report the replicas are its pods as the view knows them."""
    if row["workload_type"] != "inference":
        return {}
    status = row.get("serving") or {}
    pods = [p for p in row["pods"] or [] if p.get("phase") not in ("Succeeded", "Failed")]
    endpoint = status.get("endpoint")
    load = {key: status[key] for key in ("requestsPerSecond", "metric", "metricValue",
                                          "metricThreshold", "minReplicas", "maxReplicas",
                                          "protocol", "reason")
            if status.get(key) is not None}
    return {
        "urls": [endpoint] if endpoint else [],
        "endpoint": endpoint,
        "desired_replicas": status.get("desiredReplicas", row["effective_spec"].get("pods", 1)),
        "ready_replicas": status.get("readyReplicas",
                                     sum(1 for p in pods if p.get("ready"))),
        "serving": load or None,
    }


def _master_gpus(spec: Mapping[str, Any]) -> float | None:
    """The whole GPUs a distributed master sized apart asks for (its `masterSpec.compute`);
    None when it is sized like the workers."""
    compute = (spec.get("masterSpec") or {}).get("compute")
    return None if compute is None else requested_gpus({"compute": compute})


def _gpus_held(pod: Mapping[str, Any], per_pod: float) -> float:
    """A bound pod's GPUs: its portion of each device it shares (as placed: a memory fraction's
    portion is known once its node is), else what each pod asks for."""
    if pod.get("gpuPortion") is not None:
        return pod["gpuPortion"] * max(len(pod.get("gpuDevices") or ()), 1)
    return per_pod


def _fraction(compute: Mapping[str, Any]) -> dict[str, Any]:
    """A fraction's request beside the GPU count (Run:ai shows the portion or the memory)."""
    kind = compute.get("gpuRequestType")
    if kind is None:
        return {}
    out: dict[str, Any] = {"gpuRequestType": kind,
                           "gpuDevices": compute.get("gpuDevicesRequest") or 1}
    for key, name in (("gpuPortionRequest", "gpuPortion"), ("gpuPortionLimit",
                      "gpuPortionLimit"), ("gpuMemoryRequest", "gpuMemory"),
                      ("gpuMemoryLimit", "gpuMemoryLimit")):
        if compute.get(key) is not None:
            out[name] = compute[key]
    return out


def _third_party(row: Mapping[str, Any]) -> dict[str, Any]:
    owner = row.get("third_party")
    if not owner:
        return {}
    return {"kind": owner["kind"], "namespace": owner["namespace"], "owner": owner}
