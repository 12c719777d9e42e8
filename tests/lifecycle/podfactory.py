"""Recorded-looking pod objects: each builder writes what a kubelet (or the node controller)
would at that stage. Used by the fold tests and to generate the replay examples."""

from typing import Any

from fairway_lifecycle.core.fold import LABEL_ATTEMPT, LABEL_ROLE, LABEL_WORKLOAD

T = "2026-01-01T00:00:00Z"


def _cond(kind: str, status: str = "True", reason: str | None = None,
          at: str = T) -> dict[str, Any]:
    cond = {"type": kind, "status": status, "lastTransitionTime": at}
    if reason:
        cond["reason"] = reason
    return cond


def pod(name: str = "bert-1", *, workload: str = "w1", attempt: int = 1,
        node: str | None = None, stage: str = "unbound", exit_code: int | None = None,
        reason: str | None = None, role: str = "main", restarts: int = 0,
        bound_at: str = T, image: str = "busybox", uid: str | None = None,
        created: str = T) -> dict[str, Any]:
    """stage: unbound | pulling | pull-error | pull-backoff | config-error | starting |
    running | crashloop | not-ready | node-not-ready | succeeded | failed | refused |
    evicted | node-lost | unknown."""
    status: dict[str, Any] = {"phase": "Pending", "conditions": [], "containerStatuses": [],
                              "qosClass": "BestEffort"}
    spec: dict[str, Any] = {"schedulerName": "fairway", "restartPolicy": "Never",
                            "containers": [{"name": "main", "image": image,
                                            "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
    if stage != "unbound":
        spec["nodeName"] = node or "node-1"
        status["conditions"].append(_cond("PodScheduled", at=bound_at))
        status["hostIP"] = "10.0.0.1"
        status["startTime"] = bound_at
    container: dict[str, Any] = {"name": "main", "image": image, "ready": False,
                                 "restartCount": restarts, "started": False}
    running = {"running": {"startedAt": T}}
    if stage == "pulling":
        container["state"] = {"waiting": {"reason": "ContainerCreating"}}
    elif stage in ("pull-error", "pull-backoff"):
        why = "ErrImagePull" if stage == "pull-error" else "ImagePullBackOff"
        container["state"] = {"waiting": {"reason": why,
                                          "message": f'pull access denied for "{image}"'}}
    elif stage == "config-error":
        container["state"] = {"waiting": {"reason": "CreateContainerConfigError",
                                          "message": 'secret "hf-token" not found'}}
    elif stage == "starting":
        container.update(state=running, started=True)
        status["phase"] = "Running"
        status["conditions"].append(_cond("Ready", "False", "ContainersNotReady"))
    elif stage == "running":
        container.update(state=running, started=True, ready=True)
        status["phase"] = "Running"
        status["conditions"] += [_cond("Initialized"), _cond("ContainersReady"), _cond("Ready")]
    elif stage == "crashloop":
        container.update(state={"waiting": {"reason": "CrashLoopBackOff",
                                            "message": "back-off 20s restarting failed"}},
                         lastState={"terminated": {"exitCode": 1, "reason": "Error"}},
                         restartCount=max(restarts, 2))
        status["phase"] = "Running"
        status["conditions"].append(_cond("Ready", "False", "ContainersNotReady"))
    elif stage == "not-ready":
        container.update(state=running, started=True)
        status["phase"] = "Running"
        status["conditions"].append(_cond("Ready", "False", "ContainersNotReady"))
    elif stage == "node-not-ready":
        container.update(state=running, started=True, ready=True)
        status["phase"] = "Running"
        status["conditions"].append(_cond("Ready", "False", "NodeNotReady"))
    elif stage == "unknown":
        container.update(state=running, started=True)
        status["phase"] = "Unknown"
        status["reason"] = "NodeLost"
    elif stage == "succeeded":
        container["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
        status["phase"] = "Succeeded"
    elif stage == "failed":
        container["state"] = {"terminated": {"exitCode": 1 if exit_code is None else exit_code,
                                             "reason": reason or "Error"}}
        status["phase"] = "Failed"
    elif stage == "refused":  # the kubelet's admission: nothing started
        status["phase"] = "Failed"
        status["reason"] = reason or "OutOfnvidia.com/gpu"
        status["message"] = ("Pod was rejected: Node didn't have enough resource: "
                             "nvidia.com/gpu, requested: 1, used: 2, capacity: 2")
    elif stage == "evicted":
        container["state"] = {"terminated": {"exitCode": 137, "reason": "Error"}}
        status["phase"] = "Failed"
        status["conditions"].append(_cond("DisruptionTarget", "True",
                                          "PreemptionByScheduler"))
    elif stage == "node-lost":
        container["state"] = {"terminated": {"exitCode": 137, "reason": "Error"}}
        status["phase"] = "Failed"
        status["conditions"].append(_cond("DisruptionTarget", "True",
                                          "DeletionByTaintManager"))
    if stage not in ("unbound", "refused"):
        status["containerStatuses"] = [container]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "fairway-team-a",
                     "uid": uid or f"uid-{name}-{attempt}", "resourceVersion": "1",
                     "creationTimestamp": created,
                     "labels": {LABEL_WORKLOAD: workload, LABEL_ROLE: role,
                                LABEL_ATTEMPT: str(attempt), "fairway.io/project": "team-a"}},
        "spec": spec, "status": status,
    }
