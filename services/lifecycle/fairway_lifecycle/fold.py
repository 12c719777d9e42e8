"""The phase fold: a workload's pods in, its phase (with reason and message) out.

Pure and synchronous: the service runs it on every pod change, `fairway lifecycle replay`
runs it over recorded watch events, and tests run it over pod-event tables. Level-triggered:
the result depends only on the workload and the pods it has now, never on how we got here.

First version (walking skeleton): Creating, Pending, Initializing, Running, Completed and
Failed (exit codes, OOMKilled, retries up to backoffLimit). Degraded, Stopping/Stopped,
Resuming, Deleting and preemption come with the lifecycle issue.
"""

from dataclasses import dataclass
from typing import Any

from fairway_contracts import Phase, PodRole, PodSummary, WorkloadType

LABEL_WORKLOAD = "fairway.io/workload-id"
LABEL_PROJECT = "fairway.io/project"
LABEL_ROLE = "fairway.io/role"
LABEL_ATTEMPT = "fairway.io/attempt"

Pod = dict[str, Any]


@dataclass(frozen=True)
class WorkloadInfo:
    workload_id: str
    name: str
    project: str
    workload_type: WorkloadType
    pods: int = 1
    min_pods: int = 1
    backoff_limit: int = 6
    attempt: int = 1  # 1 for the first run, +1 per retry


@dataclass(frozen=True)
class PhaseResult:
    phase: Phase
    reason: str
    message: str
    retry: bool = False  # the current attempt failed and a retry is due


def attempt_of(pod: Pod) -> int:
    try:
        return int(pod["metadata"].get("labels", {}).get(LABEL_ATTEMPT, "1"))
    except (KeyError, ValueError):
        return 1


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _terminated(pod: Pod) -> dict[str, Any] | None:
    """The main container's terminated state, when it has one."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return terminated
    return None


def _waiting_reasons(pod: Pod) -> list[str]:
    reasons = []
    for status in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            reasons.append(waiting["reason"])
    return reasons


def _ready(pod: Pod) -> bool:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _failure(workload: WorkloadInfo, pod: Pod) -> tuple[str, str]:
    """(reason, detail) of a failed pod, in a researcher's words."""
    terminated = _terminated(pod) or {}
    code = terminated.get("exitCode")
    reason = terminated.get("reason") or pod.get("status", {}).get("reason") or "Error"
    name = pod["metadata"]["name"]
    if reason == "OOMKilled":
        return "OOMKilled", f"pod {name} ran out of memory (OOMKilled, exit code {code})"
    if code is not None:
        return "ExitCode", f"pod {name} exited with code {code} ({reason})"
    message = pod.get("status", {}).get("message") or reason
    return reason, f"pod {name} failed: {message}"


def summarize(pods: list[Pod]) -> list[PodSummary]:
    out = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
        restarts = sum(s.get("restartCount", 0) for s in status.get("containerStatuses") or [])
        role = meta.get("labels", {}).get(LABEL_ROLE, PodRole.MAIN)
        gpus = 0
        for c in spec.get("containers") or []:
            gpus += int((c.get("resources", {}).get("limits") or {}).get("nvidia.com/gpu", 0))
        out.append(PodSummary(
            name=meta["name"],
            role=role if role in PodRole._value2member_map_ else PodRole.MAIN,
            node=spec.get("nodeName") or None,
            phase=status.get("phase", "Pending"),
            ready=_ready(pod),
            restarts=restarts,
            gpus=gpus,
        ))
    return out


def pod_group_signature(pods: list[Pod]) -> str:
    """What the scheduler needs to know of a pod group: which pods exist, where each is bound,
    and which finished. Equal signatures mean nothing to announce."""
    parts = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        node = pod.get("spec", {}).get("nodeName") or ""
        done = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        parts.append(f"{pod['metadata']['name']}@{node}{'/done' if done else ''}")
    return ",".join(parts)


def fold(workload: WorkloadInfo, pods: list[Pod]) -> PhaseResult:
    """The phase of `workload` given the pods it has now (any attempt; older ones are ignored)."""
    current = [p for p in pods if attempt_of(p) == workload.attempt
               and not p["metadata"].get("deletionTimestamp")]
    kind = workload.workload_type.value
    retries_left = workload.backoff_limit - (workload.attempt - 1)

    if not current:
        if workload.attempt == 1:
            return PhaseResult(Phase.CREATING, "CreatingPods",
                               f"creating {_plural(workload.pods, 'pod')} for the {kind}")
        return PhaseResult(Phase.PENDING, "Retrying",
                           f"attempt {workload.attempt} of {workload.backoff_limit + 1}: "
                           "recreating pods")

    failed = [p for p in current if p.get("status", {}).get("phase") == "Failed"]
    if failed:
        reason, detail = _failure(workload, failed[0])
        attempts = workload.attempt
        if retries_left > 0:
            return PhaseResult(
                Phase.PENDING, "Retrying",
                f"attempt {attempts} of {workload.backoff_limit + 1} failed: {detail}; "
                f"retrying ({retries_left} {'retry' if retries_left == 1 else 'retries'} left)",
                retry=True)
        if workload.backoff_limit > 0:
            return PhaseResult(
                Phase.FAILED, "BackoffLimitExceeded" if reason == "ExitCode" else reason,
                f"The {kind} failed {_plural(attempts, 'time')} and has no retries left "
                f"(backoffLimit {workload.backoff_limit}); the last attempt: {detail}.")
        return PhaseResult(Phase.FAILED, reason, f"The {kind} failed: {detail}.")

    succeeded = [p for p in current if p.get("status", {}).get("phase") == "Succeeded"]
    if len(succeeded) >= workload.pods:
        return PhaseResult(Phase.COMPLETED, "Succeeded",
                           f"all {_plural(workload.pods, 'pod')} completed successfully")

    live = [p for p in current if p not in succeeded]
    if len(current) < workload.pods:
        return PhaseResult(Phase.PENDING, "CreatingPods",
                           f"{len(current)}/{workload.pods} pods created")
    unbound = [p for p in live if not p.get("spec", {}).get("nodeName")]
    if unbound:
        placed = len(current) - len(unbound)
        return PhaseResult(Phase.PENDING, "WaitingForScheduler",
                           f"waiting for the scheduler: {placed}/{len(current)} pods placed")
    not_ready = [p for p in live if not _ready(p)]
    if not_ready:
        waiting = sorted({r for p in not_ready for r in _waiting_reasons(p)})
        pulling = "ContainerCreating" in waiting or not waiting
        doing = "pulling images" if pulling else "starting containers"
        return PhaseResult(Phase.INITIALIZING, "PodsBound",
                           f"{len(current)}/{len(current)} pods bound to nodes; {doing}")
    nodes = sorted({p["spec"]["nodeName"] for p in live})
    return PhaseResult(Phase.RUNNING, "PodsRunning",
                       f"{_plural(len(live), 'pod')} running on {', '.join(nodes)}")
