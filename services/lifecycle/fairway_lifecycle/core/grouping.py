"""The pod grouper: which workload a third-party pod belongs to (pure: dicts in, dataclasses out).

A third-party pod is one whose `spec.schedulerName` is Fairway's and that Fairway did not create
(no `fairway.io/workload-id` label): a Job's, a Deployment's, a training operator's. Fairway
schedules what it can name, so every such pod is put in a workload, one per *top owner*:

1. Walk the pod's owner references (the controller reference, else the first) up through the
   owners the caller knows (`Owner`, looked up by uid) to the last one. An owner the caller
   does not know still names itself in the reference (kind, name, uid), and the walk stops
   there. A CronJob is never the top: each of its Jobs is a workload of its own.
2. The top owner's kind chooses the grouper:
   - **Job** (`batch`): pods one by one (each its own unit, minimum 1), unless asked for a
     gang — `fairway.io/gang: "true"` (a gang of `parallelism`) or `fairway.io/min-members: N`
     on the Job or the pod;
   - **Deployment** (through its ReplicaSet), **ReplicaSet**, **StatefulSet**: elastic, each
     replica its own unit; the set's minimum is `fairway.io/min-members` (default 1), below
     which reclaim does not take it;
   - **PyTorchJob** (`kubeflow.org`): master and workers as one gang of every replica, or of
     `runPolicy.schedulingPolicy.minAvailable` when set;
   - **a bare pod**: itself;
   - **anything else**: its top owner, pods one by one unless `fairway.io/min-members: N`
     asks for a gang.
   A gang of one is a single pod. `replicas` is the pods the top owner wants now (a set's
   `replicas`, a Job's `parallelism`, a PyTorchJob's replicas summed): a scale changes it, and
   a Job's gang minimum with its `parallelism`.
3. The project is the pod's `fairway.io/project` label, else its namespace's
   `fairway.io/project` label (as Run:ai's `runai/queue`); with neither, the workload has no
   project and `problem` says why (it waits with that reason).
4. The priority class is the pod's `priorityClassName` when it names one of Fairway's classes
   (docs/api.md), else the `fairway.io/priority-class` label of the pod, then of the top
   owner, else `train`. Preemptibility as Run:ai sets it for third-party workloads: a
   `fairway.io/preemptibility` label (`preemptible` / `non-preemptible`) on the pod or the
   top owner, else preemptible below the `build` priority — the same rule as a native workload.

The workload id is a UUID derived from the top owner's uid, so every pod of one owner, in any
replica of lifecycle and after any restart, names the same workload.
"""

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fairway_contracts.workloads import NON_PREEMPTIBLE_FROM, PRIORITY_CLASSES

FAIRWAY_SCHEDULER = "fairway"
THIRD_PARTY = "thirdParty"
LABEL_WORKLOAD_ID = "fairway.io/workload-id"
LABEL_PROJECT = "fairway.io/project"
LABEL_PRIORITY_CLASS = "fairway.io/priority-class"
LABEL_PREEMPTIBILITY = "fairway.io/preemptibility"
KEY_MIN_MEMBERS = "fairway.io/min-members"
KEY_GANG = "fairway.io/gang"
DEFAULT_PRIORITY_CLASS = "train"
# Every third-party workload id is uuid5(this, top owner uid): stable and never a native id.
_ID_NAMESPACE = uuid.UUID("6f1c2a8e-4b7d-5e3f-9a10-7c2d8e4f5a6b")
_MAX_DEPTH = 16  # owner chains are short; a longer one is a loop in the references

Grouping = Literal["single", "gang", "elastic"]


@dataclass(frozen=True, slots=True)
class OwnerRef:
    """One `metadata.ownerReferences` entry."""

    kind: str
    name: str
    uid: str
    api_version: str = ""
    controller: bool = False


@dataclass(frozen=True, slots=True)
class Owner:
    """An object that owns pods, as the caller knows it: its identity, references and the
    spec fields the groupers read (`parallelism`, `replicas`, `pytorchReplicaSpecs`, ...)."""

    kind: str
    name: str
    uid: str
    namespace: str = ""
    api_version: str = ""
    owner_references: tuple[OwnerRef, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    spec: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ThirdPartyWorkload:
    """One workload formed from the pods of one top owner."""

    id: str
    type: str  # THIRD_PARTY
    kind: str  # the top owner's kind ("Pod" for a bare pod)
    api_version: str
    name: str
    namespace: str
    owner_uid: str
    grouping: Grouping
    min_members: int  # the pod group's minimum: placed together (gang), or kept (elastic)
    project: str | None
    priority_class: str
    priority: int
    preemptible: bool
    pods: tuple[str, ...]
    problem: str | None = None  # why it cannot be scheduled as it is (no project)
    replicas: int | None = None  # the pods its owner wants now (None: the owner does not say)


def is_third_party(pod: Mapping[str, Any]) -> bool:
    """Scheduled by Fairway (its schedulerName) but not made by Fairway."""
    labels = pod.get("metadata", {}).get("labels") or {}
    return (pod.get("spec") or {}).get("schedulerName") == FAIRWAY_SCHEDULER and \
        LABEL_WORKLOAD_ID not in labels


def owner_refs(meta: Mapping[str, Any]) -> tuple[OwnerRef, ...]:
    """The owner references of an object's metadata, as `OwnerRef`s."""
    return tuple(OwnerRef(kind=str(r.get("kind", "")), name=str(r.get("name", "")),
                          uid=str(r.get("uid", "")), api_version=str(r.get("apiVersion", "")),
                          controller=bool(r.get("controller")))
                 for r in meta.get("ownerReferences") or () if r.get("uid"))


def owner_from_object(obj: Mapping[str, Any]) -> Owner:
    """An `Owner` from a Kubernetes object (a Job, a ReplicaSet, a custom resource ...)."""
    meta = obj.get("metadata") or {}
    return Owner(kind=str(obj.get("kind", "")), name=str(meta.get("name", "")),
                 uid=str(meta.get("uid", "")), namespace=str(meta.get("namespace", "")),
                 api_version=str(obj.get("apiVersion", "")), owner_references=owner_refs(meta),
                 labels=dict(meta.get("labels") or {}),
                 annotations=dict(meta.get("annotations") or {}),
                 spec=dict(obj.get("spec") or {}))


def workload_id(owner_uid: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, owner_uid))


def _controller_ref(refs: tuple[OwnerRef, ...]) -> OwnerRef | None:
    return next((r for r in refs if r.controller), refs[0] if refs else None)


def top_owner(pod: Mapping[str, Any], owners: Mapping[str, Owner]) -> Owner:
    """The last owner up the pod's chain of owner references (the pod itself when it has
    none); an owner missing from `owners` is known by its reference alone."""
    meta = pod.get("metadata") or {}
    here = Owner(kind="Pod", name=str(meta.get("name", "")), uid=str(meta.get("uid", "")),
                 namespace=str(meta.get("namespace", "")), api_version="v1",
                 owner_references=owner_refs(meta), labels=dict(meta.get("labels") or {}),
                 annotations=dict(meta.get("annotations") or {}),
                 spec=dict(pod.get("spec") or {}))
    seen = {here.uid}
    for _ in range(_MAX_DEPTH):
        ref = _controller_ref(here.owner_references)
        if ref is None or ref.uid in seen:
            break
        seen.add(ref.uid)
        above = owners.get(ref.uid) or Owner(kind=ref.kind, name=ref.name, uid=ref.uid,
                                             namespace=here.namespace,
                                             api_version=ref.api_version)
        if above.kind == "CronJob" and here.kind == "Job":
            break  # each run of a CronJob is a workload of its own
        here = above
    return here


def _number(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number >= 1 else None


def _asked(key: str, *sources: Mapping[str, str]) -> str | None:
    for source in sources:
        if key in source:
            return source[key]
    return None


def _pytorch_size(spec: Mapping[str, Any]) -> int:
    replicas = spec.get("pytorchReplicaSpecs") or {}
    total = sum(_number((r or {}).get("replicas", 1)) or 0 for r in replicas.values())
    policy = (spec.get("runPolicy") or {}).get("schedulingPolicy") or {}
    return _number(policy.get("minAvailable")) or max(total, 1)


def _count(value: Any, default: int = 1) -> int:
    try:
        return max(int(str(value if value is not None else default).strip()), 0)
    except ValueError:
        return default


def _replicas(top: Owner) -> int | None:
    """The pods the top owner wants now: follows a scale (`kubectl scale`, the /scale
    subresource, an edit of `parallelism`)."""
    if top.kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        return _count(top.spec.get("replicas"))
    if top.kind == "Job":
        return _count(top.spec.get("parallelism"))
    if top.kind == "PyTorchJob":
        replicas = top.spec.get("pytorchReplicaSpecs") or {}
        return sum(_count((r or {}).get("replicas")) for r in replicas.values())
    if top.kind == "Pod":
        return 1
    return None


def _grouping(top: Owner, pod_meta: Mapping[str, Any]) -> tuple[Grouping, int]:
    """The grouper of the top owner's kind: how its pods are grouped, and the minimum (a
    gang of one is a single pod)."""
    grouping, minimum = _kind_grouping(top, pod_meta)
    return ("single", 1) if grouping == "gang" and minimum == 1 else (grouping, minimum)


def _kind_grouping(top: Owner, pod_meta: Mapping[str, Any]) -> tuple[Grouping, int]:
    sources = (top.annotations, top.labels, pod_meta.get("annotations") or {},
               pod_meta.get("labels") or {})
    asked_min = _number(_asked(KEY_MIN_MEMBERS, *sources))
    if top.kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        return "elastic", asked_min or 1
    if top.kind == "PyTorchJob":
        return "gang", asked_min or _pytorch_size(top.spec)
    if top.kind == "Job":
        if asked_min:
            return "gang", asked_min
        if str(_asked(KEY_GANG, *sources)).lower() == "true":
            return "gang", _number(top.spec.get("parallelism", 1)) or 1
        return "single", 1
    if top.kind == "Pod":
        return "single", 1
    return ("gang", asked_min) if asked_min else ("single", 1)


def _project(pod_labels: Mapping[str, str], namespace: str,
             namespace_labels: Mapping[str, str]) -> tuple[str | None, str | None]:
    project = pod_labels.get(LABEL_PROJECT) or namespace_labels.get(LABEL_PROJECT)
    if project:
        return project, None
    return None, (f"namespace {namespace} belongs to no project: label the namespace (or the "
                  f"pod) {LABEL_PROJECT}=<project>")


def _priority(pod: Mapping[str, Any], top: Owner) -> tuple[str, int, bool]:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    named = (pod.get("spec") or {}).get("priorityClassName")
    if named not in PRIORITY_CLASSES:
        named = labels.get(LABEL_PRIORITY_CLASS) or top.labels.get(LABEL_PRIORITY_CLASS)
    if named not in PRIORITY_CLASSES:
        named = DEFAULT_PRIORITY_CLASS
    value = PRIORITY_CLASSES[named]
    asked = labels.get(LABEL_PREEMPTIBILITY) or top.labels.get(LABEL_PREEMPTIBILITY)
    if asked in ("preemptible", "non-preemptible"):
        return named, value, asked == "preemptible"
    return named, value, value < NON_PREEMPTIBLE_FROM


def group_pod(pod: Mapping[str, Any], owners: Mapping[str, Owner],
              namespace_labels: Mapping[str, str], pods: Iterable[str] = ()
              ) -> ThirdPartyWorkload:
    """The workload of one third-party pod (`pods`: the names of its top owner's pods, when
    the caller knows them; the pod alone otherwise)."""
    meta = pod.get("metadata") or {}
    top = top_owner(pod, owners)
    grouping, min_members = _grouping(top, meta)
    namespace = str(meta.get("namespace", ""))
    project, problem = _project(meta.get("labels") or {}, namespace, namespace_labels)
    priority_class, priority, preemptible = _priority(pod, top)
    names = tuple(sorted(set(pods) | {str(meta.get("name", ""))}))
    return ThirdPartyWorkload(
        id=workload_id(top.uid), type=THIRD_PARTY, kind=top.kind,
        api_version=top.api_version, name=top.name, namespace=namespace, owner_uid=top.uid,
        grouping=grouping, min_members=min_members, project=project,
        priority_class=priority_class, priority=priority, preemptible=preemptible,
        pods=names, problem=problem, replicas=_replicas(top))


def group_pods(pods: Iterable[Mapping[str, Any]], owners: Mapping[str, Owner],
               namespace_labels: Mapping[str, Mapping[str, str]]
               ) -> list[ThirdPartyWorkload]:
    """One workload per top owner of the third-party pods among `pods`, in name order; the
    first pod (by name) of each speaks for its workload's project and priority."""
    third_party = sorted((p for p in pods if is_third_party(p)),
                         key=lambda p: (p["metadata"].get("namespace", ""),
                                        p["metadata"].get("name", "")))
    members: dict[str, list[Mapping[str, Any]]] = {}
    for pod in third_party:
        members.setdefault(top_owner(pod, owners).uid, []).append(pod)
    workloads = []
    for group in members.values():
        names = [str(p["metadata"].get("name", "")) for p in group]
        ns = str(group[0]["metadata"].get("namespace", ""))
        workloads.append(group_pod(group[0], owners, namespace_labels.get(ns, {}), names))
    return sorted(workloads, key=lambda w: (w.namespace, w.kind, w.name))
