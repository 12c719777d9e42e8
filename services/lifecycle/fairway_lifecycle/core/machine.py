"""Lifecycle's state machine: pod events and requests in, phase transitions and Kubernetes
intents out.

Pure and synchronous. The service's controller feeds it the pods its watch sees and the
requests it receives (a submission, stop / resume / delete, a preemption, the scheduler's
"can never be placed", a scheduling rule's stop, the passing of time) and carries out what it
answers: it records and publishes the steps, and makes Kubernetes hold the pods `converge`
asks for. `fairway lifecycle replay` feeds it recorded watch events, so both keep the same
state the same way.

Per workload the machine keeps what the phase fold (fold.py) needs beyond the pods: the
attempt, whether it has run in this attempt, the desired phase, a preemption, and the phase
and pod group it last folded to. `fold` turns a change into a `Step` when the phase, the
attempt or the pod group moved.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from fairway_contracts import EffectiveSpec, Phase, WorkloadType
from fairway_lifecycle.core.fold import (
    LABEL_WORKLOAD,
    Desired,
    PhaseResult,
    Pod,
    WorkloadInfo,
    attempt_of,
    finished,
    fold,
    pod_done,
    pod_group_signature,
    refused_at_admission,
)
from fairway_lifecycle.core.objects import WorkloadAttempt, object_refs, workload_objects
from fairway_lifecycle.core.pods import build_pods

Action = Literal["stop", "resume", "delete"]
DESIRED_BY_ACTION: dict[str, Desired] = {"stop": "Stopped", "resume": "Running",
                                         "delete": "Deleted"}
PLACED = (Phase.INITIALIZING, Phase.RUNNING)  # a preempted workload placed again


# intents: what Kubernetes must be asked ------------------------------------------------------

@dataclass(frozen=True)
class EnsureNamespace:
    name: str


@dataclass(frozen=True)
class CreatePod:
    manifest: Pod


@dataclass(frozen=True)
class EnsureObject:
    """An object the workload needs besides its pods (core/objects.py): made, or replaced
    by this one when it is there already."""

    manifest: dict


@dataclass(frozen=True)
class DeleteObject:
    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class DeletePod:
    namespace: str
    name: str
    grace_seconds: int | None = None  # None: the pod's own grace period


@dataclass(frozen=True)
class EvictPod:
    """Through the eviction API: the pod is marked DisruptionTarget, then deleted gracefully."""

    namespace: str
    name: str


Intent = EnsureNamespace | EnsureObject | DeleteObject | CreatePod | DeletePod | EvictPod


# state and steps ------------------------------------------------------------------------------

@dataclass
class Workload:
    """What lifecycle knows of one workload beyond its pods, as last folded."""

    info: WorkloadInfo  # attempt and has_run as folded; desired, preemption as requested
    phase: Phase | None = None
    signature: str = ""  # the pod group, as pod_group_signature wrote it
    # The scheduler's (reason, sentence) for a whole-workload preemption, and a scheduling
    # rule's (reason, sentence) for a stop: the phase says them instead of the fold's own.
    preempt_reason: tuple[str, str] | None = None
    stop_reason: tuple[str, str] | None = None


@dataclass(frozen=True)
class Step:
    """One fold that moved something: the phase (`result`, None when only the attempt or the
    pod group moved), with the pods as they were."""

    workload_id: str
    previous: Phase | None
    result: PhaseResult | None
    attempt: int
    signature: str
    pods: list[Pod]
    time: datetime


@dataclass(frozen=True)
class Preemption:
    """A preemption to carry out: the pods it evicts (uids and objects), and whether it takes
    the whole workload (Pending again, or Failed) or only some pods (an elastic workload's
    pods above its minimum: it keeps running on the rest)."""

    uids: frozenset[str]
    pods: list[Pod]
    whole: bool


def pod_uid(pod: Pod) -> str:
    return pod["metadata"].get("uid") or pod["metadata"]["name"]


def action_ignored(phase: Phase | None, desired: str, action: str) -> bool:
    """Nothing more can be asked of a deleted workload (or one being deleted), and a finished
    one can only be deleted."""
    return phase == Phase.DELETED or desired == "Deleted" or (
        phase is not None and phase.terminal and action != "delete")


def desire_for(desired: str, action: Action) -> tuple[Desired, bool] | None:
    """(desired phase, resuming) an action asks for; None when it asks for nothing new (the
    same desired phase twice is one ask). A resume after a stop is a resumption."""
    wanted = DESIRED_BY_ACTION[action]
    resuming = action == "resume" and desired == "Stopped"
    if desired == wanted and not resuming:
        return None
    return wanted, resuming


class Machine:
    """Every workload lifecycle drives, and every pod of a workload it has seen."""

    def __init__(self, *, pod_groups: bool = True) -> None:
        # Whether steps follow the pod group (for the scheduler); the replay, with no
        # scheduler to tell, follows phases only and skips the cost.
        self.pod_groups = pod_groups
        # workload -> pod name -> pod, for tracked workloads and for ones not tracked yet (a
        # pod seen before its submission, or before the workloads are loaded after a start)
        self.pods: dict[str, dict[str, Pod]] = {}
        self.workloads: dict[str, Workload] = {}

    def pods_of(self, workload_id: str) -> list[Pod]:
        return list(self.pods.get(workload_id, {}).values())

    # inputs -----------------------------------------------------------------------------------
    def observe(self, kind: str, pod: Pod) -> str | None:
        """A pod watch event (ADDED, MODIFIED, DELETED): the pod's workload, or None for a pod
        of none."""
        meta = pod["metadata"]
        wid = (meta.get("labels") or {}).get(LABEL_WORKLOAD)
        if not wid:
            return None
        pods = self.pods.setdefault(wid, {})
        if kind == "DELETED":
            pods.pop(meta["name"], None)
        else:
            pods[meta["name"]] = pod
        return wid

    def track(self, workload_id: str, workload: Workload) -> None:
        self.workloads[workload_id] = workload

    def forget(self, workload_id: str) -> None:
        """No longer driven (its pods stay cached while the watch reports them)."""
        self.workloads.pop(workload_id, None)

    def forget_untracked_pods(self) -> None:
        """Drop the pods of workloads not driven: finished ones, nothing to fold."""
        for wid in [w for w in self.pods if w not in self.workloads]:
            del self.pods[wid]

    def desire(self, workload_id: str, desired: Desired, resuming: bool,
               stop_reason: tuple[str, str] | None = None) -> bool:
        """A stop, resume or delete (a user's, or a scheduling rule's with its reason).
        False when the workload is not driven."""
        w = self.workloads.get(workload_id)
        if w is None:
            return False
        w.info = replace(w.info, desired=desired, resuming=resuming,
                         has_run=False if resuming else w.info.has_run)
        w.stop_reason = stop_reason
        return True

    def preemption(self, workload_id: str, pod_names: Iterable[str] | None
                   ) -> Preemption | None:
        """What a preemption of these pods (None: all) evicts; None when there is nothing to
        do: the workload is not running, or the preemption is recorded already (redelivered)."""
        w = self.workloads.get(workload_id)
        if w is None or finished(w.phase, w.info.desired) or w.info.desired != "Running":
            return None
        names = None if pod_names is None else set(pod_names)
        pods = [p for p in self.pods_of(workload_id)
                if names is None or p["metadata"]["name"] in names]
        uids = frozenset(pod_uid(p) for p in pods)
        if not (uids - w.info.preempted_pods) and (w.info.preempted or names is not None):
            return None
        return Preemption(uids, pods, whole=names is None)

    def preempt(self, workload_id: str, preemption: Preemption,
                reason: tuple[str, str] | None = None) -> list[Intent]:
        """Carry out a preemption: the pods to evict. A whole-workload preemption's reason
        (the scheduler's sentence) becomes its phase message."""
        w = self.workloads[workload_id]
        w.info = replace(w.info, preempted=w.info.preempted or preemption.whole,
                         preempted_pods=w.info.preempted_pods | preemption.uids)
        if preemption.whole:
            w.info = replace(w.info, has_run=False)
            w.preempt_reason = reason
        return [EvictPod(p["metadata"]["namespace"], p["metadata"]["name"])
                for p in preemption.pods]

    def rescale(self, workload_id: str, replicas: int) -> bool:
        """An inference server's autoscaler changed its replica count: the fold expects that
        many pods from now on. False when the workload is not driven."""
        w = self.workloads.get(workload_id)
        if w is None:
            return False
        # Woken from zero it starts again: Pending, Initializing, then Running once ready.
        woken = w.info.pods == 0 and replicas > 0
        w.info = replace(w.info, pods=replicas, has_run=w.info.has_run and not woken)
        return True

    def rejectable(self, workload_id: str) -> bool:
        """Whether the scheduler's "can never be placed" still concerns the workload."""
        w = self.workloads.get(workload_id)
        return w is not None and w.info.unschedulable is None and not finished(
            w.phase, w.info.desired)

    def reject(self, workload_id: str, code: str, message: str) -> list[Intent]:
        """The workload can never be placed: it fails with that reason; its unbound pods go."""
        w = self.workloads[workload_id]
        w.info = replace(w.info, unschedulable=(code, message))
        return [DeletePod(p["metadata"]["namespace"], p["metadata"]["name"], grace_seconds=0)
                for p in self.pods_of(workload_id) if not p.get("spec", {}).get("nodeName")]

    # the fold ---------------------------------------------------------------------------------
    def fold(self, workload_id: str, now: datetime) -> Step | None:
        """Fold the workload's pods as they are now; the step when something moved."""
        w = self.workloads[workload_id]
        pods = self.pods_of(workload_id)
        signature = pod_group_signature(pods) if self.pod_groups else ""
        if finished(w.phase, w.info.desired):
            # Over, but its last pods may still run (a PyTorch job's workers after its master
            # completed) while they are deleted: the scheduler hears of them until they are
            # gone, and keeps their devices until then.
            if signature == w.signature:
                return None
            w.signature = signature
            return Step(workload_id, w.phase, None, w.info.attempt, signature, pods, now)
        result = self._explained(w, fold(w.info, pods, now))
        previous, attempt = w.phase, w.info.attempt
        self._carry(w, result)
        moved = result.phase != previous
        if not moved and attempt == w.info.attempt and signature == w.signature:
            return None
        w.phase, w.signature = result.phase, signature
        return Step(workload_id, previous, result if moved else None, w.info.attempt,
                    signature, pods, now)

    @staticmethod
    def _explained(w: Workload, result: PhaseResult) -> PhaseResult:
        """The fold's result in the words of who caused it: the scheduler for a preemption,
        a scheduling rule for a stop."""
        if result.reason in ("Preempted", "Evicted") and (why := w.preempt_reason):
            then = ("waiting to be scheduled again" if result.phase == Phase.PENDING
                    else "it asked to terminate after preemption")
            result = replace(result, message=f"preempted by the scheduler ({why[0]}): "
                                             f"{why[1]}; {then}")
        if w.info.desired == "Stopped" and (why := w.stop_reason):
            result = replace(result, reason=why[0], message=why[1])
        return result

    @staticmethod
    def _carry(w: Workload, result: PhaseResult) -> None:
        """Carry the fold's verdict into the workload's state: a retry starts a new attempt,
        Running marks it as having run, pods made again end a resumption, and being placed
        again ends a preemption."""
        info = w.info
        if result.retry:
            info = replace(info, attempt=info.attempt + 1, has_run=False)
        elif result.phase == Phase.RUNNING and not info.has_run:
            info = replace(info, has_run=True)
        if result.phase != Phase.CREATING and not info.created:
            info = replace(info, created=True)
        if info.resuming and result.phase not in (Phase.RESUMING, Phase.STOPPED):
            info = replace(info, resuming=False)
        if info.preempted and result.phase in PLACED:
            info = replace(info, preempted=False)
            w.preempt_reason = None
        w.info = info


# converging the pods ------------------------------------------------------------------------

@dataclass(frozen=True)
class PodTarget:
    """A workload as recorded: what its pods must be. Pods follow the recorded attempt and
    desired phase, so a retry's pods are made only once the retry is recorded."""

    workload_id: str
    name: str
    project: str
    workload_type: WorkloadType
    spec: EffectiveSpec
    namespace: str
    attempt: int
    phase: Phase
    desired: str


def _attempt(target: PodTarget) -> WorkloadAttempt:
    return WorkloadAttempt(target.workload_id, target.name, target.project,
                           target.workload_type, target.spec, target.attempt, target.namespace)


def retire(target: PodTarget) -> list[Intent]:
    """Once the workload is over or deleted: its objects besides the pods go."""
    return [DeleteObject(ref.kind, ref.namespace, ref.name)
            for ref in object_refs(_attempt(target))]


def pods_to_go(target: PodTarget, pods: list[Pod]) -> list[Pod] | None:
    """The pods that must all go, or None while the workload keeps pods: every pod when it is
    stopped or deleted, what still runs when it is over (a PyTorch job's workers after its
    master completed)."""
    if finished(target.phase, target.desired):
        return [p for p in pods if not pod_done(p)]
    if target.desired in ("Stopped", "Deleted"):
        return pods
    return None


def _terminating(pod: Pod) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _ref(pod: Pod) -> tuple[str, str]:
    return pod["metadata"]["namespace"], pod["metadata"]["name"]


def _index(pod: Pod) -> int:
    tail = pod["metadata"]["name"].rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _replicas(target: PodTarget, pods: list[Pod]) -> list[Intent]:
    """An inference server's replicas to the count its autoscaler set: the surplus go
    gracefully, the last first (a replica finishes the requests it holds); missing ones are
    made under names no pod holds, so a replica still shutting down never delays a new one
    (waking from zero must not wait out the old replica's grace period)."""
    live = sorted((p for p in pods if attempt_of(p) == target.attempt and not _terminating(p)),
                  key=_index)
    wanted = target.spec.pods
    if len(live) >= wanted:
        return [DeletePod(*_ref(p)) for p in reversed(live[wanted:])]
    taken = {p["metadata"]["name"] for p in pods}
    wider = target.spec.model_copy(update={"pods": wanted + len(taken)})
    fresh = [m for m in build_pods(
        workload_id=target.workload_id, name=target.name, project=target.project,
        workload_type=target.workload_type, spec=wider, attempt=target.attempt,
        namespace=target.namespace) if m["metadata"]["name"] not in taken]
    return [EnsureNamespace(target.namespace),
            *(EnsureObject(m) for m in workload_objects(_attempt(target))),
            *(CreatePod(m) for m in fresh[:wanted - len(live)])]


def converge(target: PodTarget, pods: list[Pod]) -> list[Intent]:
    """What makes Kubernetes hold the pods the recorded attempt needs, and no older ones:
    pods that must go are deleted gracefully, an older attempt's at once (and one its node
    refused), missing ones made, after the objects the attempt needs (its Service first, so
    a pod's peers resolve from its start)."""
    if (going := pods_to_go(target, pods)) is not None:
        return [DeletePod(*_ref(p)) for p in going if not _terminating(p)]
    # an older attempt's pods go at once, and so does one its node refused (made again)
    intents: list[Intent] = [DeletePod(*_ref(p), grace_seconds=0) for p in pods
                             if (attempt_of(p) < target.attempt or refused_at_admission(p))
                             and not _terminating(p)]
    if target.workload_type == WorkloadType.INFERENCE:
        return intents + _replicas(target, pods)
    current = sum(1 for p in pods if attempt_of(p) == target.attempt)
    if current < target.spec.pods:
        existing = {p["metadata"]["name"] for p in pods}
        missing = [CreatePod(p) for p in build_pods(
            workload_id=target.workload_id, name=target.name, project=target.project,
            workload_type=target.workload_type, spec=target.spec, attempt=target.attempt,
            namespace=target.namespace) if p["metadata"]["name"] not in existing]
        if missing:
            intents += [EnsureNamespace(target.namespace),
                        *(EnsureObject(m) for m in workload_objects(_attempt(target))),
                        *missing]
    return intents
