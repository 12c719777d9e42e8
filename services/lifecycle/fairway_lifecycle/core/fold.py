"""The phase fold: a workload's pods in, its phase (with reason and message) out.

Pure and synchronous: the state machine (machine.py) runs it on every change of a workload,
for the service's controller and for `fairway lifecycle replay` alike, and tests run it over
pod-state tables. Level-triggered:
the result depends only on the workload as lifecycle knows it (`WorkloadInfo`: its spec, its
attempt, the desired phase, whether it has run) and the pods it has now, and on `now` for the
deadlines (an image that cannot be pulled for too long).

The order of the checks is the order of precedence:

1. what the user asked for: delete (Deleting → Deleted), stop (Stopping → Stopped),
   resume (Resuming until pods exist);
2. preemption by the scheduler (Pending again, or Failed when it asked to terminate);
3. no pods yet (Creating; Pending while a retry's pods are made);
4. failures: configuration errors at once, an image that cannot be pulled past its deadline,
   containers that failed (exit code, OOMKilled), a lost node — retried up to backoffLimit;
   a pod its node refused when it was bound (the kubelet's admission: a device still held by
   a pod the scheduler did not count) is no failure of the workload: Pending, made again;
5. completion, per workload type and distributed framework;
6. pods waiting for the scheduler (Pending), starting (Initializing);
7. a workload that has run and now misses a pod, crash-loops, is not ready or sits on a
   NotReady node (Degraded), else Running.

An elastic workload (a gang minimum below its pod count) is Running as soon as its minimum
of pods runs ready; the pods above it wait for room without holding it back. It is Degraded
when a pod above the minimum has waited longer than a grace period (or when it falls below
its minimum after it ran).
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from fairway_contracts import Phase, PodRole, PodSummary, WorkloadType
from fairway_lifecycle.core.fractions import (
    ANN_DEVICE_PLUGIN_UUIDS,
    ANN_DEVICES,
    ANN_MEMORY_LIMIT,
    ANN_MEMORY_USED,
    ANN_PORTION,
    ANN_RECLAIMED,
    ANN_UUIDS,
    GPU_OOM_REASON,
    LABEL_FRACTION,
    RECLAIMED_REASON,
)
from fairway_lifecycle.core.nodelevel import (
    ANN_CURRENT_DEVICES,
    ANN_CURRENT_LIMIT,
    ANN_GPU_UTILIZATION,
    ANN_PROCESS_RESTARTS,
)
from fairway_lifecycle.core.retries import CREATION_FAILURES, UNDELIVERABLE
from fairway_lifecycle.core.swap import ANN_ACTIVE, ANN_NODE_SWAPPED, ANN_SWAPPED

LABEL_WORKLOAD = "fairway.io/workload-id"
LABEL_PROJECT = "fairway.io/project"
LABEL_ROLE = "fairway.io/role"
LABEL_ATTEMPT = "fairway.io/attempt"

# Waiting reasons that no amount of waiting fixes: the workload fails at once.
CONFIG_ERRORS = frozenset({"CreateContainerConfigError", "InvalidImageName",
                           "CreateContainerError", "ErrImageNeverPull",
                           "RunContainerError"})
IMAGE_PULL_ERRORS = frozenset({"ErrImagePull", "ImagePullBackOff"})
# Frameworks whose job is done when the master (launcher, chief) succeeds.
MASTER_DECIDES = frozenset({"PyTorch", "TF", "MPI", "XGBoost", "JAX"})

Pod = dict[str, Any]
Desired = Literal["Running", "Stopped", "Deleted"]


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
    completions: int | None = None  # trainings: pods that must succeed (default: pods)
    framework: str | None = None  # distributed: PyTorch, TF, MPI, XGBoost, JAX
    has_master: bool = True  # distributed: False when workers only
    desired: Desired = "Running"
    resuming: bool = False  # resumed after a stop, pods not created yet
    preempted: bool = False  # the scheduler evicted it; pods come back when placed again
    preempted_pods: frozenset[str] = frozenset()  # uids of the pods the preemption evicts
    terminate_after_preemption: bool = False
    has_run: bool = False  # reached Running in this attempt (Degraded needs it)
    # Left Creating once: pods made again later (a node refused one, its reservation went)
    # leave it Pending, for a workload is Creating only before it was ever anything else.
    created: bool = False
    unschedulable: tuple[str, str] | None = None  # (code, message): can never be placed
    image_pull_deadline_seconds: float = 300.0
    # An elastic workload (min_pods < pods) runs with its minimum; it is Degraded once a pod
    # above the minimum has waited (unplaced or not ready) this long.
    below_requested_grace_seconds: float = 300.0
    # What the messages call it ("the Deployment", "the Job": a third-party workload's kind);
    # None: its type ("the training").
    noun: str | None = None

    @property
    def elastic(self) -> bool:
        return self.min_pods < self.pods


@dataclass(frozen=True)
class PhaseResult:
    phase: Phase
    reason: str
    message: str
    retry: bool = False  # the current attempt failed and a retry is due


def finished(phase: Phase | None, desired: str) -> bool:
    """Nothing more will happen to the workload: Deleted, or Completed / Failed and not asked
    to be deleted (a finished workload can still be deleted: Deleting, then Deleted)."""
    if phase is None:
        return False
    return phase == Phase.DELETED or (phase.terminal and desired != "Deleted")


def attempt_of(pod: Pod) -> int:
    try:
        return int(pod["metadata"].get("labels", {}).get(LABEL_ATTEMPT, "1"))
    except (KeyError, ValueError):
        return 1


def role_of(pod: Pod) -> str:
    return (pod["metadata"].get("labels") or {}).get(LABEL_ROLE, PodRole.MAIN.value)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _name(pod: Pod) -> str:
    return pod["metadata"]["name"]


def _status(pod: Pod) -> dict[str, Any]:
    return pod.get("status") or {}


def _phase(pod: Pod) -> str:
    return _status(pod).get("phase", "Pending")


def _containers(pod: Pod) -> list[dict[str, Any]]:
    return _status(pod).get("containerStatuses") or []


def _terminated(pod: Pod) -> dict[str, Any] | None:
    """The main container's terminated state, when it has one."""
    for status in _containers(pod):
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return terminated
    return None


def _waiting(pod: Pod) -> list[dict[str, Any]]:
    out = []
    for status in _containers(pod):
        waiting = (status.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            out.append({**waiting, "image": status.get("image")})
    return out


def _condition(pod: Pod, kind: str) -> dict[str, Any] | None:
    for cond in _status(pod).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def _ready(pod: Pod) -> bool:
    cond = _condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def _bound(pod: Pod) -> bool:
    return bool(pod.get("spec", {}).get("nodeName"))


def _evicted(pod: Pod) -> bool:
    cond = _condition(pod, "DisruptionTarget")
    return bool(cond and cond.get("status") == "True") or _status(pod).get("reason") == "Evicted"


# Why a kubelet refuses a pod at admission, before any container starts: the node lacks a
# resource (OutOfcpu, OutOfmemory, OutOfpods, OutOfnvidia.com/gpu, ...) or cannot run it here.
ADMISSION_REFUSALS = ("UnexpectedAdmissionError", "NodeAffinity", "NodeName")


def refused_at_admission(pod: Pod) -> bool:
    """The node refused the pod when it was bound: it failed without starting anything."""
    if _phase(pod) != "Failed" or pod["metadata"].get("deletionTimestamp"):
        return False
    reason = _status(pod).get("reason") or ""
    if not (reason.startswith("OutOf") or reason in ADMISSION_REFUSALS):
        return False
    return not any(c.get("state", {}).get("running") or c.get("state", {}).get("terminated")
                   or c.get("lastState", {}).get("terminated") for c in _containers(pod))


def _node_trouble(pod: Pod) -> bool:
    """The pod's node stopped answering: the node controller marks the pod so."""
    if _phase(pod) == "Unknown" or _status(pod).get("reason") == "NodeLost":
        return True
    ready = _condition(pod, "Ready")
    return bool(ready and ready.get("status") != "True" and ready.get("reason") == "NodeNotReady")


def _node_lost(pod: Pod) -> bool:
    cond = _condition(pod, "DisruptionTarget")
    return bool(cond and cond.get("status") == "True"
                and cond.get("reason") in ("DeletionByTaintManager", "NodeLost",
                                           "TerminationByKubelet")) or (
        _status(pod).get("reason") == "NodeLost")


def _restarts(pod: Pod) -> int:
    return sum(s.get("restartCount", 0) for s in _containers(pod))


def _since(pod: Pod, kind: str) -> datetime | None:
    cond = _condition(pod, kind)
    return _timestamp((cond or {}).get("lastTransitionTime") or _status(pod).get("startTime"))


def _timestamp(value: str | None) -> datetime | None:
    """An RFC 3339 time as Kubernetes writes it; None when absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _failure(pod: Pod) -> tuple[str, str]:
    """(reason, detail) of a failed pod, in a researcher's words."""
    terminated = _terminated(pod) or {}
    code = terminated.get("exitCode")
    reason = terminated.get("reason") or _status(pod).get("reason") or "Error"
    name = _name(pod)
    if _node_lost(pod):
        return "NodeLost", f"pod {name} was lost with its node {pod['spec'].get('nodeName')}"
    if reason == "OOMKilled":
        return "OOMKilled", f"pod {name} ran out of memory (OOMKilled, exit code {code})"
    if reason == "GPUOutOfMemory":
        detail = terminated.get("message") or "CUDA out of memory"
        return GPU_OOM_REASON, (f"pod {name} ran out of GPU memory, above its limit "
                                f"({detail}; exit code {code})")
    if code is not None:
        return "ExitCode", f"pod {name} exited with code {code} ({reason})"
    message = _status(pod).get("message") or reason
    return reason, f"pod {name} failed: {message}"


def summarize(pods: list[Pod], node_pools: Mapping[str, str] | None = None
              ) -> list[PodSummary]:
    """What the API and the other services see of each pod; `node_pools`: node → its pool."""
    out = []
    for pod in sorted(pods, key=_name):
        spec = pod.get("spec", {})
        role = role_of(pod)
        gpus = 0
        for c in spec.get("containers") or []:
            gpus += int((c.get("resources", {}).get("limits") or {}).get("nvidia.com/gpu", 0))
        out.append(PodSummary(
            name=_name(pod),
            role=role if role in PodRole._value2member_map_ else PodRole.MAIN,
            node=spec.get("nodeName") or None,
            phase=_phase(pod),
            ready=_ready(pod),
            restarts=_restarts(pod),
            gpus=gpus,
            node_pool=(node_pools or {}).get(spec.get("nodeName") or ""),
            **_devices(pod),
        ))
    return out


def _devices(pod: Pod) -> dict[str, Any]:
    """The devices a pod uses as its annotations say: the scheduler's indices, their UUIDs
    (a fraction's from its reservation pods, a whole GPU's from the device plugin where the
    node reports them), a fraction's portion and GPU memory limit and use."""
    notes = pod["metadata"].get("annotations") or {}

    def number(key: str, kind: type) -> Any:
        try:
            return kind(notes[key]) if notes.get(key) else None
        except ValueError:
            return None

    out: dict[str, Any] = {}
    try:
        out["gpu_devices"] = [int(i) for i in (notes.get(ANN_DEVICES) or "").split(",") if i]
    except ValueError:
        pass
    uuids = notes.get(ANN_UUIDS) or notes.get(ANN_DEVICE_PLUGIN_UUIDS) or ""
    out["gpu_uuids"] = [u for u in uuids.split(",") if u]
    if (pod["metadata"].get("labels") or {}).get(LABEL_FRACTION) == "true":
        out["gpu_portion"] = number(ANN_PORTION, float)
        out["gpu_memory_limit_mib"] = number(ANN_MEMORY_LIMIT, int)
        out["gpu_memory_used_mib"] = number(ANN_MEMORY_USED, int)
        try:
            out["gpu_current_devices"] = [int(i) for i in
                                          (notes.get(ANN_CURRENT_DEVICES) or "").split(",") if i]
        except ValueError:
            pass
        out["gpu_current_memory_limit_mib"] = number(ANN_CURRENT_LIMIT, int)
        out["gpu_process_restarts"] = number(ANN_PROCESS_RESTARTS, int)
        if notes.get(ANN_ACTIVE) in ("true", "false"):
            out["gpu_active"] = notes[ANN_ACTIVE] == "true"
        out["gpu_swapped_mib"] = number(ANN_NODE_SWAPPED, int)
        out["gpu_utilization_percent"] = number(ANN_GPU_UTILIZATION, float)
        if out["gpu_swapped_mib"] is None and ANN_SWAPPED in notes:
            out["gpu_swapped_mib"] = 0  # swap acts on the pod; the node swapped nothing out
    return out


def pod_done(pod: Pod) -> bool:
    """The pod finished (Succeeded or Failed): it no longer holds its node's resources."""
    return _phase(pod) in ("Succeeded", "Failed")


def pod_group_signature(pods: list[Pod]) -> str:
    """What the scheduler needs to know of a pod group: which pods exist, where each is bound,
    and which finished. Equal signatures mean nothing to announce."""
    parts = []
    for pod in sorted(pods, key=_name):
        node = pod.get("spec", {}).get("nodeName") or ""
        notes = pod["metadata"].get("annotations") or {}
        # Where the node-level scheduler runs its GPU process (only when it acted on it):
        # each move and each restart is worth a new pod group view.
        moved = ""
        if ANN_CURRENT_DEVICES in notes:
            moved = (f"#gpu{notes[ANN_CURRENT_DEVICES]}:{notes.get(ANN_CURRENT_LIMIT, '')}:"
                     f"{notes.get(ANN_PROCESS_RESTARTS, '0')}:{notes.get(ANN_MEMORY_USED, '')}")
        # GPU memory swap (only when it acted on the pod): each swap out and in, and each
        # change of activity that may cause one, is worth a new view.
        if ANN_SWAPPED in notes:
            moved += (f"#swap{notes[ANN_SWAPPED]}:{notes.get(ANN_NODE_SWAPPED, '0')}:"
                      f"{notes.get(ANN_ACTIVE, '')}:{notes.get(ANN_MEMORY_USED, '')}")
        parts.append(f"{_name(pod)}@{node}{moved}{'/done' if pod_done(pod) else ''}")
    return ",".join(parts)


def _completed(w: WorkloadInfo, current: list[Pod]) -> str | None:
    """The completion message when the workload is done, per type and framework."""
    succeeded = [p for p in current if _phase(p) == "Succeeded"]
    if w.workload_type == WorkloadType.TRAINING:
        needed = w.completions or w.pods
        if len(succeeded) >= needed:
            return f"{_plural(len(succeeded), 'pod')} completed successfully"
        return None
    if w.workload_type == WorkloadType.DISTRIBUTED:
        masters = [p for p in succeeded if role_of(p) == PodRole.MASTER.value]
        if w.has_master and (w.framework or "PyTorch") in MASTER_DECIDES:
            if masters:
                return f"the master {_name(masters[0])} completed successfully"
            return None
        workers = [p for p in current if role_of(p) == PodRole.WORKER.value]
        if workers and all(_phase(p) == "Succeeded" for p in workers) and len(workers) >= max(
                1, w.pods - (1 if w.has_master else 0)):
            return f"all {_plural(len(workers), 'worker')} completed successfully"
        return None
    return None  # workspaces and inference run until stopped


def fold(w: WorkloadInfo, pods: list[Pod], now: datetime | None = None) -> PhaseResult:
    """The phase of `w` given the pods it has now (any attempt; older ones are ignored)."""
    kind = w.noun or w.workload_type.value
    if (asked := _requested(w, pods, kind)) is not None:  # 1. what the user asked for
        return asked
    alive = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    current = [p for p in alive if attempt_of(p) == w.attempt
               and p["metadata"].get("uid") not in w.preempted_pods]
    if (reclaimed := _reclaimed(w, pods)) is not None:  # GPU memory taken back
        return reclaimed
    if (held := _held(w, current, kind)) is not None:  # 2. preemption; 3. no pods yet
        return held
    if (failure := _failed(w, current, kind, now)) is not None:  # 4. failures
        return failure
    if (done := _completed(w, current)) is not None:  # 5. completion
        return PhaseResult(Phase.COMPLETED, "Succeeded", done)
    live = [p for p in current if _phase(p) != "Succeeded"]
    if not w.has_run:  # 6. scheduling and start-up
        return _starting(w, current, live, now)
    return _running(w, current, live, now)  # 7. running, or degraded


def _requested(w: WorkloadInfo, pods: list[Pod], kind: str) -> PhaseResult | None:
    """Deleting / Deleted, Stopping / Stopped as the user asked; None while it should run."""
    if w.desired == "Deleted":
        if pods:
            return PhaseResult(Phase.DELETING, "Deleting",
                               f"deleting the {kind}: {_plural(len(pods), 'pod')} left")
        return PhaseResult(Phase.DELETED, "Deleted", f"the {kind} and its pods are deleted")
    if w.desired == "Stopped":
        if pods:
            return PhaseResult(Phase.STOPPING, "Stopping",
                               f"stopping: {_plural(len(pods), 'pod')} still terminating")
        return PhaseResult(Phase.STOPPED, "Stopped",
                           "stopped by request; its GPUs are released")
    return None


SCALED_TO_ZERO = "ScaledToZero"


def _held(w: WorkloadInfo, current: list[Pod], kind: str) -> PhaseResult | None:
    """A preemption, a "can never be placed", a resumption or a retry without its pods yet."""
    if w.preempted:
        if w.terminate_after_preemption:
            return PhaseResult(Phase.FAILED, "Evicted",
                               f"The {kind} was preempted by the scheduler and asked to "
                               "terminate after preemption.")
        if not any(_bound(p) for p in current):
            return PhaseResult(Phase.PENDING, "Preempted",
                               "preempted by the scheduler to free GPUs; waiting to be "
                               "scheduled again")
    if w.unschedulable is not None and not any(_bound(p) for p in current):
        code, why = w.unschedulable
        if code in CREATION_FAILURES:
            return PhaseResult(Phase.FAILED, code, f"The {kind} cannot be created: {why}")
        if code == UNDELIVERABLE:
            return PhaseResult(Phase.FAILED, code, f"The {kind} cannot go on: {why}")
        return PhaseResult(Phase.FAILED, code,
                           f"The {kind} can never be scheduled: {why}")
    if w.resuming and not current:
        return PhaseResult(Phase.RESUMING, "Resuming", "resuming: creating its pods again")
    if w.pods == 0 and w.workload_type == WorkloadType.INFERENCE:
        # Its autoscaler took every replica away for want of requests: it still serves (a
        # request wakes it), as Run:ai shows a server scaled to zero.
        return PhaseResult(Phase.RUNNING, SCALED_TO_ZERO,
                           "scaled to zero: no request came for its retention time; the next "
                           "request starts a replica")
    if not current:
        if w.attempt == 1 and not w.has_run:
            if w.created:
                return PhaseResult(Phase.PENDING, "CreatingPods",
                                   f"making {_plural(w.pods, 'pod')} of the {kind} again")
            return PhaseResult(Phase.CREATING, "CreatingPods",
                               f"creating {_plural(w.pods, 'pod')} for the {kind}")
        return PhaseResult(Phase.PENDING, "Retrying",
                           f"attempt {w.attempt} of {w.backoff_limit + 1}: recreating pods")
    return None


def _reclaimed(w: WorkloadInfo, pods: list[Pod]) -> PhaseResult | None:
    """A pod of this attempt killed to take back the GPU memory it borrowed above its request
    (a dynamic fraction), while it goes: its workload runs degraded and the pod is made again.
    """
    for pod in pods:
        why = (pod["metadata"].get("annotations") or {}).get(ANN_RECLAIMED)
        if why and attempt_of(pod) == w.attempt:
            return PhaseResult(Phase.DEGRADED if w.has_run else Phase.PENDING,
                               RECLAIMED_REASON, f"pod {_name(pod)}: {why}; recreating it")
    return None


def _give_up_or_retry(w: WorkloadInfo, kind: str, reason: str, detail: str) -> PhaseResult:
    retries_left = w.backoff_limit - (w.attempt - 1)
    if retries_left > 0:
        return PhaseResult(
            Phase.PENDING, "Retrying",
            f"attempt {w.attempt} of {w.backoff_limit + 1} failed: {detail}; retrying "
            f"({retries_left} {'retry' if retries_left == 1 else 'retries'} left)",
            retry=True)
    if w.backoff_limit > 0 and reason == "ExitCode":
        reason = "BackoffLimitExceeded"
    if w.backoff_limit > 0:
        return PhaseResult(
            Phase.FAILED, reason,
            f"The {kind} failed {_plural(w.attempt, 'time')} and has no retries left "
            f"(backoffLimit {w.backoff_limit}); the last attempt: {detail}.")
    return PhaseResult(Phase.FAILED, reason, f"The {kind} failed: {detail}.")


def _cannot_start(w: WorkloadInfo, pod: Pod, kind: str, now: datetime | None
                  ) -> PhaseResult | None:
    """A configuration error fails at once; an image that cannot be pulled, at its deadline."""
    for waiting in _waiting(pod):
        if waiting["reason"] in CONFIG_ERRORS:
            message = waiting.get("message") or waiting["reason"]
            return PhaseResult(Phase.FAILED, waiting["reason"],
                               f"The {kind} cannot start: pod {_name(pod)}: {message}.")
        if waiting["reason"] in IMAGE_PULL_ERRORS and now is not None:
            since = _since(pod, "PodScheduled")
            if since is not None and (now - since).total_seconds() >= (
                    w.image_pull_deadline_seconds):
                return PhaseResult(
                    Phase.FAILED, "ImagePullBackOff",
                    f"The {kind} failed: the image {waiting.get('image') or ''} of pod "
                    f"{_name(pod)} could not be pulled for "
                    f"{int(w.image_pull_deadline_seconds)} s ({waiting['reason']}).")
    return None


def _failed(w: WorkloadInfo, current: list[Pod], kind: str, now: datetime | None
            ) -> PhaseResult | None:
    for pod in current:
        if (failure := _cannot_start(w, pod, kind, now)) is not None:
            return failure
    # Every framework here needs all of its ranks: a failed worker fails the attempt too.
    failed = [p for p in current if _phase(p) == "Failed"]
    if failed and all(refused_at_admission(p) for p in failed):
        pod = failed[0]
        message = _status(pod).get("message") or _status(pod).get("reason")
        return PhaseResult(Phase.DEGRADED if w.has_run else Phase.PENDING, "NodeRejected",
                           f"node {pod['spec'].get('nodeName')} refused pod {_name(pod)} when "
                           f"it was bound ({message}); it is made again and placed again")
    failed = [p for p in failed if not refused_at_admission(p)]
    if failed:
        pod = failed[0]
        if _evicted(pod) and not _node_lost(pod):
            return PhaseResult(Phase.PENDING, "Evicted",
                               f"pod {_name(pod)} was evicted; recreating it")
        return _give_up_or_retry(w, kind, *_failure(pod))
    return None


def _running_on(live: list[Pod]) -> PhaseResult:
    return PhaseResult(Phase.RUNNING, "PodsRunning",
                       f"{_plural(len(live), 'pod')} running on {_nodes(live)}")


def _crashing(live: list[Pod]) -> list[Pod]:
    return [p for p in live for s in _waiting(p) if s["reason"] == "CrashLoopBackOff"]


def _starting(w: WorkloadInfo, current: list[Pod], live: list[Pod], now: datetime | None
              ) -> PhaseResult:
    """Not run yet in this attempt: pods made, placed, pulling and starting."""
    if w.elastic:
        if (running := _elastic_running(w, current, live, now)) is not None:
            return running
        bound = [p for p in live if _bound(p)]
        if len(bound) >= w.min_pods:  # its minimum is placed: it starts, the rest wait
            if crashing := _crashing(bound):
                return _crash_looping(crashing[0])
            return _initializing(bound, f"{len(bound)}/{w.pods} pods bound to nodes (its "
                                        f"minimum is {w.min_pods})")
    if len(current) < w.pods:
        return PhaseResult(Phase.PENDING, "CreatingPods", f"{len(current)}/{w.pods} pods created")
    unbound = [p for p in live if not _bound(p)]
    if unbound:
        placed = len(current) - len(unbound)
        return PhaseResult(Phase.PENDING, "WaitingForScheduler",
                           f"waiting for the scheduler: {placed}/{len(current)} pods placed")
    if crashing := _crashing(live):
        return _crash_looping(crashing[0])
    if all(_ready(p) for p in live):
        return _running_on(live)
    return _initializing(live, f"{len(current)}/{len(current)} pods bound to nodes")


def _initializing(bound: list[Pod], placed: str) -> PhaseResult:
    """Bound pods pulling their images or starting their containers."""
    not_ready = [p for p in bound if not _ready(p)]
    waiting = sorted({s["reason"] for p in not_ready for s in _waiting(p)})
    if waiting and set(waiting) & IMAGE_PULL_ERRORS:
        doing = f"pulling images failed ({', '.join(waiting)}), retrying"
    elif "ContainerCreating" in waiting or (not waiting and any(
            not _containers(p) for p in not_ready)):
        doing = "pulling images"
    else:
        doing = "starting containers"
    return PhaseResult(Phase.INITIALIZING, "PodsBound", f"{placed}; {doing}")


def _crash_looping(pod: Pod) -> PhaseResult:
    last = next(((c.get("lastState") or {}).get("terminated") or {}
                 for c in _containers(pod)), {})
    if last.get("reason") == "GPUOutOfMemory":
        return PhaseResult(Phase.DEGRADED, GPU_OOM_REASON,
                           f"pod {_name(pod)} keeps running out of GPU memory, above its "
                           f"limit ({last.get('message') or 'CUDA out of memory'}; "
                           f"{_restarts(pod)} restarts)")
    return PhaseResult(Phase.DEGRADED, "CrashLoopBackOff",
                       f"pod {_name(pod)} keeps crashing ({_restarts(pod)} restarts); "
                       "Kubernetes restarts it with a growing back-off")


def _trouble(live: list[Pod]) -> PhaseResult | None:
    """A pod that crash-loops or sits on a node that is not ready: Degraded, saying which."""
    if crashing := _crashing(live):
        return _crash_looping(crashing[0])
    troubled = [p for p in live if _node_trouble(p)]
    if troubled:
        pod = troubled[0]
        return PhaseResult(Phase.DEGRADED, "NodeNotReady",
                           f"pod {_name(pod)} is on node {pod['spec'].get('nodeName')}, which "
                           "is not ready")
    return None


def _running(w: WorkloadInfo, current: list[Pod], live: list[Pod], now: datetime | None
             ) -> PhaseResult:
    """Has run in this attempt: Running, or Degraded by what it misses."""
    if (trouble := _trouble(live)) is not None:
        return trouble
    if w.elastic and (running := _elastic_running(w, current, live, now)) is not None:
        return running
    missing = w.pods - len(current)
    unbound = [p for p in live if not _bound(p)]
    if missing > 0 or unbound:
        lost = missing + len(unbound)
        return PhaseResult(Phase.DEGRADED, "PodLost",
                           f"{_plural(lost, 'pod')} of {w.pods} lost; recreating and "
                           "rescheduling")
    not_ready = [p for p in live if not _ready(p)]
    if not_ready:
        return PhaseResult(Phase.DEGRADED, "NotReady", f"pod {_name(not_ready[0])} is not ready")
    return _running_on(live)


def _elastic_running(w: WorkloadInfo, current: list[Pod], live: list[Pod],
                     now: datetime | None) -> PhaseResult | None:
    """An elastic workload with at least its minimum of pods running ready: Running (the
    pods above it wait for room), or Degraded once one of them has waited past the grace
    period. None when fewer than its minimum run ready (the fold goes on as for a gang)."""
    ready = [p for p in live if _bound(p) and _ready(p) and _phase(p) == "Running"]
    if len(ready) < w.min_pods:
        return None
    if (trouble := _trouble(live)) is not None:
        return trouble
    running = _running_on(ready)
    waiting = [p for p in live if p not in ready]
    unmade = max(0, w.pods - len(current))  # lost, being made again: it waited no time yet
    short = len(waiting) + unmade
    if not short:
        return running
    created = [t for p in waiting
               if (t := _timestamp(p["metadata"].get("creationTimestamp"))) is not None]
    since = min(created) if created and not unmade else None
    waited = (now - since).total_seconds() if since is not None and now else 0.0
    ran = f"{len(ready)} of {w.pods} pods running on {_nodes(ready)}"
    if waited >= w.below_requested_grace_seconds:
        return PhaseResult(Phase.DEGRADED, "BelowRequested",
                           f"{ran}; {_plural(short, 'pod')} above its minimum of "
                           f"{w.min_pods} waited more than "
                           f"{int(w.below_requested_grace_seconds)} s for room")
    wait = "pod waits" if short == 1 else "pods wait"
    return replace(running, message=f"{ran} (its minimum is {w.min_pods}); "
                                    f"{short} more {wait} for room")


def _nodes(pods: list[Pod]) -> str:
    return ", ".join(sorted({p["spec"]["nodeName"] for p in pods}))
