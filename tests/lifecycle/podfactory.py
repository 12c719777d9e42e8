"""Recorded-looking pod objects for fold tests: one builder per stage a kubelet writes."""

from typing import Any

from fairway_lifecycle.fold import LABEL_ATTEMPT, LABEL_ROLE, LABEL_WORKLOAD


def pod(name: str = "bert-1", *, workload: str = "w1", attempt: int = 1,
        node: str | None = None, stage: str = "unbound", exit_code: int | None = None,
        reason: str | None = None) -> dict[str, Any]:
    """stage: unbound | pulling | starting | running | succeeded | failed."""
    status: dict[str, Any] = {"phase": "Pending", "conditions": [], "containerStatuses": []}
    spec: dict[str, Any] = {"schedulerName": "fairway", "containers": [
        {"name": "main", "image": "busybox",
         "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
    if stage != "unbound":
        spec["nodeName"] = node or "node-1"
        status["conditions"].append({"type": "PodScheduled", "status": "True"})
    container: dict[str, Any] = {"name": "main", "ready": False, "restartCount": 0}
    if stage == "pulling":
        container["state"] = {"waiting": {"reason": "ContainerCreating"}}
    elif stage == "starting":
        container["state"] = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
        status["phase"] = "Running"
    elif stage == "running":
        container["state"] = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
        container["ready"] = True
        status["phase"] = "Running"
        status["conditions"].append({"type": "Ready", "status": "True"})
    elif stage == "succeeded":
        container["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
        status["phase"] = "Succeeded"
    elif stage == "failed":
        container["state"] = {"terminated": {"exitCode": exit_code if exit_code is not None
                                             else 1, "reason": reason or "Error"}}
        status["phase"] = "Failed"
    if stage != "unbound":
        status["containerStatuses"] = [container]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "fairway-team-a", "uid": f"uid-{name}",
                     "labels": {LABEL_WORKLOAD: workload, LABEL_ROLE: "main",
                                LABEL_ATTEMPT: str(attempt)}},
        "spec": spec, "status": status,
    }
