"""Server-side printing (meta.k8s.io/v1 `Table`), which kubectl asks for on `kubectl get`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from .objects import parse_rfc3339
from .store import Stored

Row = Callable[[Mapping[str, Any]], list[Any]]


def _col(name: str, description: str, priority: int = 0, fmt: str = "",
         type_: str = "string") -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": description,
            "priority": priority}


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration, as kubectl shows an AGE."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def _age(obj: Mapping[str, Any]) -> str:
    created = obj.get("metadata", {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    return human_duration(time.time() - parse_rfc3339(created))


def _pod_row(pod: Mapping[str, Any]) -> list[Any]:
    """kubectl's printPod: the STATUS is the most telling container state."""
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    reason = status.get("reason") or status.get("phase") or "Unknown"
    total = len(spec.get("containers") or ())
    ready = restarts = 0
    has_running = False
    for cs in reversed(status.get("containerStatuses") or ()):
        restarts += cs.get("restartCount", 0)
        state = cs.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            term = state["terminated"]
            reason = term.get("reason") or (f"Signal:{term['signal']}" if term.get("signal")
                                            else f"ExitCode:{term.get('exitCode', 0)}")
        elif cs.get("ready") and state.get("running"):
            has_running = True
            ready += 1
    if reason == "Completed" and has_running:
        ready_cond = any(c.get("type") == "Ready" and c.get("status") == "True"
                         for c in status.get("conditions") or ())
        reason = "Running" if ready_cond else "NotReady"
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return [meta["name"], f"{ready}/{total}", reason, restarts, _age(pod),
            status.get("podIP") or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", "<none>"]


def _node_row(node: Mapping[str, Any]) -> list[Any]:
    status = node.get("status", {})
    ready = "Unknown"
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready":
            ready = "Ready" if cond.get("status") == "True" else "NotReady"
    if node.get("spec", {}).get("unschedulable"):
        ready += ",SchedulingDisabled"
    info = status.get("nodeInfo") or {}
    internal = next((a["address"] for a in status.get("addresses") or ()
                     if a.get("type") == "InternalIP"), "<none>")
    return [node["metadata"]["name"], ready, "<none>", _age(node),
            info.get("kubeletVersion", ""), internal, "<none>", info.get("osImage", ""),
            info.get("kernelVersion", ""), info.get("containerRuntimeVersion", "")]


def _namespace_row(ns: Mapping[str, Any]) -> list[Any]:
    return [ns["metadata"]["name"], ns.get("status", {}).get("phase", ""), _age(ns)]


def _service_row(svc: Mapping[str, Any]) -> list[Any]:
    """kubectl's printService: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR."""
    spec = svc.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}"
                     for p in spec.get("ports") or ()) or "<none>"
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [svc["metadata"]["name"], spec.get("type", "ClusterIP"),
            spec.get("clusterIP") or "<none>", "<none>", ports, _age(svc),
            selector or "<none>"]


def _endpoints_row(ep: Mapping[str, Any]) -> list[Any]:
    """kubectl's printEndpoints: the ready addresses with their ports, three at most."""
    shown = [f"{a['ip']}:{p['port']}" if p else a["ip"]
             for subset in ep.get("subsets") or ()
             for p in (subset.get("ports") or [None])
             for a in subset.get("addresses") or ()]
    text = ",".join(shown[:3]) + (f" + {len(shown) - 3} more..." if len(shown) > 3 else "")
    return [ep["metadata"]["name"], text or "<none>", _age(ep)]


def _endpoint_slice_row(es: Mapping[str, Any]) -> list[Any]:
    ports = ",".join(str(p.get("port")) for p in es.get("ports") or ()) or "<unset>"
    addresses = [a for e in es.get("endpoints") or () for a in e.get("addresses") or ()]
    text = ",".join(addresses[:3]) + (f" + {len(addresses) - 3} more..."
                                      if len(addresses) > 3 else "")
    return [es["metadata"]["name"], es.get("addressType", ""), ports, text or "<unset>",
            _age(es)]


def _config_map_row(cm: Mapping[str, Any]) -> list[Any]:
    return [cm["metadata"]["name"], len(cm.get("data") or {}) + len(cm.get("binaryData") or {}),
            _age(cm)]


def _count(value: Any) -> int:
    return int(value or 0)


def _condition(obj: Mapping[str, Any], *types: str) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") in types and cond.get("status") == "True":
            return str(cond["type"])
    return None


def _job_row(job: Mapping[str, Any]) -> list[Any]:
    """kubectl's printJob: STATUS, COMPLETIONS as succeeded/completions, DURATION."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    completions = spec.get("completions")
    done = f"{_count(status.get('succeeded'))}/{completions if completions is not None else 1}"
    state = _condition(job, "Failed", "Complete", "Suspended") or "Running"
    started, ended = status.get("startTime"), status.get("completionTime")
    duration = human_duration((parse_rfc3339(ended) if ended else time.time())
                              - parse_rfc3339(started)) if started else ""
    return [job["metadata"]["name"], state, done, duration, _age(job)]


def _deployment_row(obj: Mapping[str, Any]) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [obj["metadata"]["name"],
            f"{_count(status.get('readyReplicas'))}/{_count(spec.get('replicas'))}",
            _count(status.get("updatedReplicas")), _count(status.get("availableReplicas")),
            _age(obj)]


def _replica_set_row(obj: Mapping[str, Any]) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [obj["metadata"]["name"], _count(spec.get("replicas")),
            _count(status.get("replicas")), _count(status.get("readyReplicas")), _age(obj)]


def _stateful_set_row(obj: Mapping[str, Any]) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [obj["metadata"]["name"],
            f"{_count(status.get('readyReplicas'))}/{_count(spec.get('replicas'))}", _age(obj)]


def _pytorch_job_row(obj: Mapping[str, Any]) -> list[Any]:
    """The PyTorchJob CRD's printer columns: the latest condition is its STATE."""
    conditions = [c for c in (obj.get("status") or {}).get("conditions") or ()
                  if c.get("status") == "True"]
    return [obj["metadata"]["name"], conditions[-1]["type"] if conditions else "", _age(obj)]


_NAME = _col("Name", "Name must be unique within a namespace.", fmt="name")
_AGE = _col("Age", "CreationTimestamp is a timestamp representing the server time when this "
            "object was created.")
TABLES: dict[str, tuple[list[dict[str, Any]], Row]] = {
    "pods": ([
        _NAME,
        _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", "The aggregate status of the containers in this pod."),
        _col("Restarts", "The number of times the containers in this pod have been "
             "restarted.", type_="integer"),
        _AGE,
        _col("IP", "IP address allocated to the pod.", 1),
        _col("Node", "Name of the node this pod is assigned to.", 1),
        _col("Nominated Node", "Name of the node this pod is nominated to.", 1),
        _col("Readiness Gates", "Pod readiness gates.", 1),
    ], _pod_row),
    "nodes": ([
        _NAME,
        _col("Status", "The status of the node"),
        _col("Roles", "The roles of the node"),
        _AGE,
        _col("Version", "Kubelet Version reported by the node."),
        _col("Internal-IP", "List of internal IPs for the node.", 1),
        _col("External-IP", "List of external IPs for the node.", 1),
        _col("OS-Image", "OS image reported by the node.", 1),
        _col("Kernel-Version", "Kernel version reported by the node.", 1),
        _col("Container-Runtime", "Container runtime reported by the node.", 1),
    ], _node_row),
    "namespaces": ([
        _NAME,
        _col("Status", "The status of the namespace"),
        _AGE,
    ], _namespace_row),
    "services": ([
        _NAME,
        _col("Type", "The type of the service."),
        _col("Cluster-IP", "The cluster IP of the service."),
        _col("External-IP", "The external IPs of the service."),
        _col("Port(s)", "The ports of the service."),
        _AGE,
        _col("Selector", "The label selector of the service.", 1),
    ], _service_row),
    "endpoints": ([
        _NAME,
        _col("Endpoints", "Endpoints of the service."),
        _AGE,
    ], _endpoints_row),
    "endpointslices": ([
        _NAME,
        _col("AddressType", "The type of addresses in the slice."),
        _col("Ports", "The ports of the endpoints."),
        _col("Endpoints", "The addresses of the endpoints."),
        _AGE,
    ], _endpoint_slice_row),
    "jobs": ([
        _NAME,
        _col("Status", "Status of the job."),
        _col("Completions", "The completion status of the job."),
        _col("Duration", "Time required to complete the job."),
        _AGE,
    ], _job_row),
    "deployments": ([
        _NAME,
        _col("Ready", "Number of the pod with ready state."),
        _col("Up-to-date", "Total number of non-terminated pods targeted by this deployment "
             "that have the desired template spec.", type_="integer"),
        _col("Available", "Total number of available pods (ready for at least "
             "minReadySeconds) targeted by this deployment.", type_="integer"),
        _AGE,
    ], _deployment_row),
    "replicasets": ([
        _NAME,
        _col("Desired", "Number of desired pods.", type_="integer"),
        _col("Current", "Number of actual replicas.", type_="integer"),
        _col("Ready", "The number of ready replicas for this replica set.", type_="integer"),
        _AGE,
    ], _replica_set_row),
    "statefulsets": ([
        _NAME,
        _col("Ready", "Number of the pod with ready state."),
        _AGE,
    ], _stateful_set_row),
    "pytorchjobs": ([
        _NAME,
        _col("State", "The latest condition of the job."),
        _AGE,
    ], _pytorch_job_row),
    "configmaps": ([
        _NAME,
        _col("Data", "The number of keys in the config map.", type_="integer"),
        _AGE,
    ], _config_map_row),
}


def wants_table(accept: str, resource: str) -> bool:
    return "as=Table" in accept and resource in TABLES


def _row(resource: str, obj: Mapping[str, Any], include: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": TABLES[resource][1](obj)}
    if include == "Object":
        row["object"] = obj
    elif include != "None":
        meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": meta}
    return row


def table(resource: str, items: Iterable[Stored], list_meta: Mapping[str, Any],
          include: str = "Metadata") -> bytes:
    columns, _ = TABLES[resource]
    return orjson.dumps({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                         "metadata": dict(list_meta), "columnDefinitions": columns,
                         "rows": [_row(resource, s.obj, include) for s in items]})


def event_transform(resource: str, include: str = "Metadata") -> Callable[[str, Stored], bytes]:
    """Watch events as one-row tables, as the API server sends them to `kubectl get -w`."""
    columns, _ = TABLES[resource]

    def line(event_type: str, stored: Stored) -> bytes:
        rv = stored.obj["metadata"].get("resourceVersion", "")
        obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
               "metadata": {"resourceVersion": rv}, "columnDefinitions": columns,
               "rows": [_row(resource, stored.obj, include)]}
        return orjson.dumps({"type": event_type, "object": obj}) + b"\n"

    return line
