"""The workload controllers of kube-controller-manager (and Kubeflow's training operator), as
kubesim plays them: Job, Deployment, ReplicaSet, StatefulSet and PyTorchJob controllers, and the
garbage collector's cascade.

Each controller reconciles one object at a time from a work queue: every write to a workload,
and every write to a pod (or ReplicaSet) whose controller owner reference names one, queues
that owner; the queue drains on the next turn of the event loop, never inside the store write
that queued it. Pods are made from the owner's template with an owner reference
(`controller: true`, `blockOwnerDeletion: true`) and the template's `schedulerName`, through
the same admission as a pod a client creates; they are deleted gracefully, as a client's.

- **Job**: keeps `min(parallelism, completions - succeeded)` pods active (`parallelism` when
  `completions` is unset, until one succeeds); a pod that ends is counted once (it gets the
  `kubesim.fairway.io/job-counted` annotation, the job tracking finalizer's stand-in), a pod
  deleted before it ended counts as failed; more than `backoffLimit` failures end the Job with
  the `Failed` condition (`BackoffLimitExceeded`) and delete its active pods; `completions`
  successes end it `Complete`. `suspend: true` deletes its active pods and creates none. Failed
  pods are replaced at once (no back-off delay).
- **ReplicaSet**: keeps `replicas` active pods named `<replicaset>-<5 letters>`; it removes
  unscheduled pods first, then not-ready ones, then the newest.
- **Deployment**: owns one ReplicaSet per pod template, named `<deployment>-<pod-template-hash>`
  (the hash as Kubernetes computes it: FNV-32a, safe-encoded); the current template's
  ReplicaSet gets every replica and older ones are scaled to 0 at once (a rollout without the
  surge/unavailable pacing).
- **StatefulSet**: pods `<set>-0` … `<set>-N-1`, with `hostname`/`subdomain` set;
  `OrderedReady` creates ordinal i only when every lower one is Running and Ready and removes
  the highest one at a time; `Parallel` does both at once. A pod that ended is deleted and made
  again. A changed template reaches pods made after the change (as `updateStrategy: OnDelete`).
- **PyTorchJob**: pods `<name>-master-0` and `<name>-worker-<i>` with the training operator's
  labels and `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK` in their environment; a missing
  pod (evicted, deleted) is made again; conditions `Created`, `Running` (every pod running),
  `Succeeded` (the master succeeded, or every worker when there is no master), `Failed` (a pod
  failed whose replica restart policy is `Never` or `ExitCode`); `runPolicy.cleanPodPolicy`
  (`None` by default, `Running`, `All`) says which pods go when it ends.
- **Garbage collection**: deleting an owner with `propagationPolicy` `Background` (the default)
  or `Foreground` removes the owner at once and then deletes its dependents (recursively:
  Deployment → ReplicaSets → pods); `Orphan` removes the owner reference from them instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from .errors import ApiError
from .events import EventLog
from .objects import admit_pod, new_uid, now_rfc3339
from .store import DELETED, Event, Resource, Store, Stored
from .workloads import KIND_PLURALS, KINDS, POD_TEMPLATE_HASH

log = logging.getLogger("fairway_kubesim.controllers")

COUNTED_ANNOTATION = "kubesim.fairway.io/job-counted"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
STS_POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
KF_JOB_NAME = "training.kubeflow.org/job-name"
KF_OPERATOR = "training.kubeflow.org/operator-name"
KF_REPLICA_TYPE = "training.kubeflow.org/replica-type"
KF_REPLICA_INDEX = "training.kubeflow.org/replica-index"
KF_JOB_ROLE = "training.kubeflow.org/job-role"
PYTORCH_PORT = 23456
TERMINAL = ("Succeeded", "Failed")
_SAFE = "bcdfghjklmnpqrstvwxz2456789"

Key = tuple[str, str, str]  # (plural, namespace, name)


def template_hash(template: Mapping[str, Any]) -> str:
    """The pod-template-hash: FNV-32a of the template, safe-encoded as Kubernetes does
    (its hash walks the Go struct; this one walks the JSON with sorted keys)."""
    h = 0x811C9DC5
    for byte in orjson.dumps(template, option=orjson.OPT_SORT_KEYS):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in str(h))


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def _phase(pod: Mapping[str, Any]) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def _deleting(obj: Mapping[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def _active(pod: Mapping[str, Any]) -> bool:
    return not _deleting(pod) and _phase(pod) not in TERMINAL


def set_condition(status: dict[str, Any], type_: str, state: str, reason: str,
                  message: str) -> None:
    """Set a workload condition; lastTransitionTime moves only when the status changes."""
    conditions = list(status.get("conditions") or ())
    now = now_rfc3339()
    for i, cond in enumerate(conditions):
        if cond.get("type") == type_:
            if cond.get("status") == state and cond.get("reason") == reason:
                return
            when = cond.get("lastTransitionTime") if cond.get("status") == state else now
            conditions[i] = dict(cond, status=state, reason=reason, message=message,
                                 lastTransitionTime=when, lastUpdateTime=now)
            break
    else:
        conditions.append({"type": type_, "status": state, "reason": reason,
                           "message": message, "lastTransitionTime": now,
                           "lastUpdateTime": now, "lastProbeTime": now})
    status["conditions"] = conditions


def has_condition(status: Mapping[str, Any], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True"
               for c in status.get("conditions") or ())


class Controllers:
    """Every workload controller, on one work queue served from the event loop."""

    def __init__(self, store: Store, delete_pod: Callable[[Stored, int | None], Stored],
                 events: EventLog) -> None:
        self.store = store
        self.pods = store["pods"]
        self.namespaces = store["namespaces"]
        self.resources = {plural: store[plural] for plural in KINDS}
        self._by_resource = {id(r): plural for plural, r in self.resources.items()}
        self.delete_pod = delete_pod
        self.events = events
        self._queue: dict[Key, None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False
        # pods of a Job that left before the controller counted them: job uid -> phases
        self._lost: dict[str, list[str]] = {}
        # pods a Job's controller removed itself (suspend, parallelism down, the end): no
        # failures of the Job, whatever their last phase
        self._removed: set[str] = set()
        # (plural, controller uid) -> keys of the pods / ReplicaSets it controls
        self._dependents: dict[tuple[str, str], dict[tuple[str, str], None]] = {}
        self._sync = {"jobs": self._sync_job, "replicasets": self._sync_replica_set,
                      "deployments": self._sync_deployment,
                      "statefulsets": self._sync_stateful_set,
                      "pytorchjobs": self._sync_pytorch_job}
        store.listen(self._on_event)

    # queue -------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for resource in (self.pods, self.resources["replicasets"]):  # restored: no events
            for stored in resource.select():
                ref = controller_of(stored.obj)
                if ref is not None:
                    meta = stored.obj["metadata"]
                    self._dependents.setdefault((resource.plural, ref.get("uid", "")), {})[
                        (meta["namespace"], meta["name"])] = None
        for plural, resource in self.resources.items():  # e.g. restored from a snapshot
            for stored in resource.select():
                meta = stored.obj["metadata"]
                self._enqueue((plural, meta["namespace"], meta["name"]))
        self._kick()

    def stop(self) -> None:
        self._loop = None

    def _enqueue(self, key: Key) -> None:
        self._queue[key] = None
        self._kick()

    def _kick(self) -> None:
        if self._loop is not None and not self._draining and self._queue:
            self._draining = True
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._draining = False
        for _ in range(256):  # then yield to requests and watches
            if not self._queue or self._loop is None:
                break
            key = next(iter(self._queue))
            del self._queue[key]
            plural, namespace, name = key
            stored = self.resources[plural].get(namespace, name)
            if stored is None:
                continue
            try:
                self._sync[plural](stored)
            except Exception:  # one broken object must not stop every controller
                log.exception("controller: sync of %s %s/%s failed", plural, namespace, name)
        self._kick()

    def _on_event(self, resource: Resource, event: Event) -> None:
        obj = event.stored.obj
        meta = obj["metadata"]
        plural = self._by_resource.get(id(resource))
        if plural is not None and event.type != DELETED:
            self._enqueue((plural, meta["namespace"], meta["name"]))
        if resource is not self.pods and plural != "replicasets":
            return
        self._index(resource, event)
        ref = controller_of(obj)
        if ref is None:
            return
        owner_plural = KIND_PLURALS.get(ref.get("kind", ""))
        if owner_plural is None:
            return
        if owner_plural == "jobs" and event.type == DELETED and resource is self.pods:
            self._job_pod_gone(obj, ref)
        self._enqueue((owner_plural, meta["namespace"], ref["name"]))

    def _index(self, resource: Resource, event: Event) -> None:
        """Keep `_dependents` (controller uid -> the pods or ReplicaSets it controls) in step
        with a write, so a controller finds its own without reading its whole namespace."""
        meta = event.stored.obj["metadata"]
        key = (meta["namespace"], meta["name"])
        before = controller_of(event.prev.obj) if event.prev is not None else None
        now = None if event.type == DELETED else controller_of(event.stored.obj)
        if before is not None and (now is None or now.get("uid") != before.get("uid")):
            self._dependents.get((resource.plural, before.get("uid", "")), {}).pop(key, None)
        if event.type == DELETED and now is None:
            ref = controller_of(event.stored.obj)
            if ref is not None:
                owned = self._dependents.get((resource.plural, ref.get("uid", "")), {})
                owned.pop(key, None)
                if not owned:
                    self._dependents.pop((resource.plural, ref.get("uid", "")), None)
        elif now is not None:
            self._dependents.setdefault((resource.plural, now.get("uid", "")), {})[key] = None

    def _job_pod_gone(self, pod: Mapping[str, Any], ref: Mapping[str, Any]) -> None:
        """A Job's pod left: one the controller had not counted (nor removed itself) is
        counted at the Job's next sync, as failed unless it had succeeded."""
        meta = pod["metadata"]
        if meta.get("uid") in self._removed:
            self._removed.discard(meta["uid"])
            return
        job = self.resources["jobs"].get(meta["namespace"], ref["name"])
        if job is None or job.obj["metadata"]["uid"] != ref["uid"]:
            return  # the Job is gone (the garbage collector removes its pods)
        if not (meta.get("annotations") or {}).get(COUNTED_ANNOTATION):
            self._lost.setdefault(ref["uid"], []).append(_phase(pod))

    # helpers -----------------------------------------------------------------------------

    def _owned(self, resource: Resource, owner: Mapping[str, Any]) -> list[Stored]:
        """What `owner` controls among `resource`'s objects, in name order."""
        uid = owner["metadata"]["uid"]
        found = []
        for namespace, name in sorted(self._dependents.get((resource.plural, uid), ())):
            stored = resource.get(namespace, name)
            if stored is not None and (ref := controller_of(stored.obj)) is not None and \
                    ref.get("uid") == uid:
                found.append(stored)
        return found

    def _create_pod(self, owner: Mapping[str, Any], template: Mapping[str, Any],
                    name: str | None = None, labels: Mapping[str, str] | None = None,
                    spec_change: Callable[[dict[str, Any]], None] | None = None) -> bool:
        namespace = owner["metadata"]["namespace"]
        ns = self.namespaces.get("", namespace)
        if ns is None or _deleting(ns.obj):
            return False
        tmeta = template.get("metadata") or {}
        meta: dict[str, Any] = {
            "labels": {**(tmeta.get("labels") or {}), **(labels or {})},
            "ownerReferences": [owner_reference(owner)]}
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        if name:
            meta["name"] = name
        else:
            meta["generateName"] = owner["metadata"]["name"] + "-"
        spec = copy.deepcopy(template.get("spec") or {})
        if spec_change is not None:
            spec_change(spec)
        for _ in range(5):  # a generated name may be taken
            try:
                pod = admit_pod({"metadata": dict(meta), "spec": spec}, namespace,
                                now_rfc3339())
                self.pods.create(pod)
            except ApiError as exc:
                if exc.code == 409 and not name:
                    continue
                self.events.record(owner, "Warning", "FailedCreate", f"Error creating: "
                                   f"{exc.message}", component=self._component(owner))
                return False
            self.events.record(owner, "Normal", "SuccessfulCreate", f"Created pod: "
                               f"{pod['metadata']['name']}", component=self._component(owner))
            return True
        return False

    @staticmethod
    def _component(owner: Mapping[str, Any]) -> str:
        if owner["kind"] == "PyTorchJob":
            return "pytorchjob-controller"
        return owner["kind"].lower() + "-controller"

    def _remove_pods(self, owner: Mapping[str, Any], pods: Iterable[Stored],
                     grace: int | None = None) -> None:
        for stored in pods:
            if owner["kind"] == "Job":
                self._removed.add(stored.obj["metadata"]["uid"])
            with contextlib.suppress(ApiError):
                self.delete_pod(stored, grace)
            self.events.record(owner, "Normal", "SuccessfulDelete", f"Deleted pod: "
                               f"{stored.obj['metadata']['name']}",
                               component=self._component(owner))

    def _write_status(self, resource: Resource, stored: Stored, status: dict[str, Any]
                      ) -> None:
        if status == (stored.obj.get("status") or {}):
            return
        obj = self.store.copy(stored)
        obj["status"] = status
        resource.update(obj)

    # Job ---------------------------------------------------------------------------------

    def _sync_job(self, stored: Stored) -> None:
        job = stored.obj
        if _deleting(job):
            return
        jobs = self.resources["jobs"]
        spec = job["spec"]
        status = copy.deepcopy(job.get("status") or {})
        uid = job["metadata"]["uid"]
        succeeded, failed = int(status.get("succeeded") or 0), int(status.get("failed") or 0)
        for phase in self._lost.pop(uid, ()):
            if phase == "Succeeded":
                succeeded += 1
            else:
                failed += 1
        pods = self._owned(self.pods, job)
        for pod in pods:
            phase = _phase(pod.obj)
            if phase in TERMINAL and pod.obj["metadata"]["uid"] not in self._removed and not (
                    pod.obj["metadata"].get("annotations") or {}).get(COUNTED_ANNOTATION):
                self._mark_counted(pod)
                if phase == "Succeeded":
                    succeeded += 1
                else:
                    failed += 1
        active = [p for p in pods if _active(p.obj)]
        finished = has_condition(status, "Complete") or has_condition(status, "Failed")
        completions = spec.get("completions")
        now = now_rfc3339()
        if not finished:
            status.setdefault("startTime", now)
            if failed > int(spec.get("backoffLimit", 6)):
                set_condition(status, "FailureTarget", "True", "BackoffLimitExceeded",
                              "Job has reached the specified backoff limit")
                set_condition(status, "Failed", "True", "BackoffLimitExceeded",
                              "Job has reached the specified backoff limit")
                self._remove_pods(job, active)
                active = []
            elif (completions is not None and succeeded >= completions) or (
                    completions is None and succeeded > 0 and not active):
                set_condition(status, "SuccessCriteriaMet", "True", "CompletionsReached",
                              "Reached expected number of succeeded pods")
                set_condition(status, "Complete", "True", "CompletionsReached",
                              "Reached expected number of succeeded pods")
                status["completionTime"] = now
                self._remove_pods(job, active)
                active = []
            else:
                active = self._job_pods(job, active, succeeded, status)
        status.update({"active": len(active), "succeeded": succeeded, "failed": failed,
                       "ready": sum(1 for p in active if _ready(p.obj)),
                       "terminating": sum(1 for p in pods if _deleting(p.obj)
                                          and _phase(p.obj) not in TERMINAL)})
        self._write_status(jobs, jobs.get(job["metadata"]["namespace"],
                                          job["metadata"]["name"]) or stored, status)

    def _job_pods(self, job: Mapping[str, Any], active: list[Stored], succeeded: int,
                  status: dict[str, Any]) -> list[Stored]:
        spec = job["spec"]
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1))
        if spec.get("suspend"):
            wanted = 0
            set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended")
        else:
            if has_condition(status, "Suspended"):
                set_condition(status, "Suspended", "False", "JobResumed", "Job resumed")
            if completions is None:
                wanted = parallelism if succeeded == 0 else len(active)
            else:
                wanted = min(parallelism, completions - succeeded)
        if len(active) > wanted:
            newest = sorted(active, key=lambda p: (p.obj["metadata"]["creationTimestamp"],
                                                   p.obj["metadata"]["name"]))
            self._remove_pods(job, newest[wanted:])
            return newest[:wanted]
        for _ in range(wanted - len(active)):
            self._create_pod(job, spec["template"])
        return [p for p in self._owned(self.pods, job) if _active(p.obj)]

    def _mark_counted(self, pod: Stored) -> None:
        meta = pod.obj["metadata"]

        def mark(obj: dict[str, Any]) -> None:
            obj["metadata"].setdefault("annotations", {})[COUNTED_ANNOTATION] = "true"

        with contextlib.suppress(ApiError):
            self.pods.mutate(meta["namespace"], meta["name"], mark)

    # ReplicaSet --------------------------------------------------------------------------

    def _sync_replica_set(self, stored: Stored) -> None:
        rs = stored.obj
        if _deleting(rs):
            return
        spec = rs["spec"]
        pods = [p for p in self._owned(self.pods, rs) if _active(p.obj)]
        wanted = int(spec.get("replicas", 1))
        if len(pods) < wanted:
            for _ in range(wanted - len(pods)):
                self._create_pod(rs, spec["template"])
            pods = [p for p in self._owned(self.pods, rs) if _active(p.obj)]
        elif len(pods) > wanted:
            def rank(p: Stored) -> tuple[int, int, str, str]:  # the first ones go first
                meta = p.obj["metadata"]
                return (1 if (p.obj.get("spec") or {}).get("nodeName") else 0,
                        1 if _ready(p.obj) else 0,
                        _negate(meta["creationTimestamp"]), _negate(meta["name"]))
            ordered = sorted(pods, key=rank)
            self._remove_pods(rs, ordered[:len(pods) - wanted])
            pods = ordered[len(pods) - wanted:]
        ready = sum(1 for p in pods if _ready(p.obj))
        labels = {k: v for k, v in ((rs["spec"].get("selector") or {}).get("matchLabels")
                                    or {}).items()}
        status = {"replicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
                  "fullyLabeledReplicas": sum(1 for p in pods if all(
                      (p.obj["metadata"].get("labels") or {}).get(k) == v
                      for k, v in labels.items())),
                  "observedGeneration": rs["metadata"].get("generation", 1)}
        replica_sets = self.resources["replicasets"]
        meta = rs["metadata"]
        self._write_status(replica_sets, replica_sets.get(meta["namespace"], meta["name"])
                           or stored, status)

    # Deployment --------------------------------------------------------------------------

    def _sync_deployment(self, stored: Stored) -> None:
        deploy = stored.obj
        if _deleting(deploy):
            return
        replica_sets = self.resources["replicasets"]
        meta, spec = deploy["metadata"], deploy["spec"]
        namespace = meta["namespace"]
        hash_ = template_hash(spec["template"])
        name = f"{meta['name']}-{hash_}"
        owned = self._owned(replica_sets, deploy)
        replicas = int(spec.get("replicas", 1))
        current = next((s for s in owned if s.obj["metadata"]["name"] == name), None)
        revision = 1 + max((int((s.obj["metadata"].get("annotations") or {}).get(
            REVISION_ANNOTATION, "0")) for s in owned), default=0)
        if current is None:
            template = copy.deepcopy(spec["template"])
            tmeta = template.setdefault("metadata", {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), POD_TEMPLATE_HASH: hash_}
            selector = copy.deepcopy(spec["selector"])
            selector["matchLabels"] = {**(selector.get("matchLabels") or {}),
                                       POD_TEMPLATE_HASH: hash_}
            rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
                "name": name, "namespace": namespace, "uid": new_uid(),
                "creationTimestamp": now_rfc3339(), "generation": 1,
                "labels": dict(tmeta["labels"]),
                "annotations": {REVISION_ANNOTATION: str(revision)},
                "ownerReferences": [owner_reference(deploy)]},
                "spec": {"replicas": replicas, "selector": selector, "template": template},
                "status": {}}
            ns = self.namespaces.get("", namespace)
            if ns is None or _deleting(ns.obj):
                return
            with contextlib.suppress(ApiError):
                current = replica_sets.create(rs)
                self.events.record(deploy, "Normal", "ScalingReplicaSet",
                                   f"Scaled up replica set {name} from 0 to {replicas}",
                                   component="deployment-controller")
        elif int(current.obj["spec"].get("replicas", 0)) != replicas:
            self._scale(replica_sets, current, replicas, deploy)
        for old in owned:
            if old is not current and int(old.obj["spec"].get("replicas", 0)) != 0:
                self._scale(replica_sets, old, 0, deploy)
        owned = self._owned(replica_sets, deploy)
        total = sum(int((s.obj.get("status") or {}).get("replicas") or 0) for s in owned)
        ready = sum(int((s.obj.get("status") or {}).get("readyReplicas") or 0) for s in owned)
        updated = next((int((s.obj.get("status") or {}).get("replicas") or 0) for s in owned
                        if s.obj["metadata"]["name"] == name), 0)
        status = copy.deepcopy(deploy.get("status") or {})
        status.update({"observedGeneration": meta.get("generation", 1), "replicas": total,
                       "updatedReplicas": updated, "readyReplicas": ready,
                       "availableReplicas": ready,
                       "unavailableReplicas": max(0, replicas - ready)})
        if ready >= replicas:
            set_condition(status, "Available", "True", "MinimumReplicasAvailable",
                          "Deployment has minimum availability.")
        else:
            set_condition(status, "Available", "False", "MinimumReplicasUnavailable",
                          "Deployment does not have minimum availability.")
        done = updated == replicas == total and ready >= replicas
        set_condition(status, "Progressing", "True",
                      "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                      f'ReplicaSet "{name}" has successfully progressed.' if done
                      else f'ReplicaSet "{name}" is progressing.')
        deployments = self.resources["deployments"]
        self._write_status(deployments, deployments.get(namespace, meta["name"]) or stored,
                           status)

    def _scale(self, resource: Resource, stored: Stored, replicas: int,
               owner: Mapping[str, Any]) -> None:
        meta = stored.obj["metadata"]
        before = stored.obj["spec"].get("replicas", 0)

        def scale(obj: dict[str, Any]) -> None:
            obj["spec"]["replicas"] = replicas
            obj["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1

        resource.mutate(meta["namespace"], meta["name"], scale)
        way = "up" if replicas > before else "down"
        self.events.record(owner, "Normal", "ScalingReplicaSet", f"Scaled {way} replica set "
                           f"{meta['name']} from {before} to {replicas}",
                           component="deployment-controller")

    # StatefulSet -------------------------------------------------------------------------

    def _sync_stateful_set(self, stored: Stored) -> None:
        sts = stored.obj
        if _deleting(sts):
            return
        meta, spec = sts["metadata"], sts["spec"]
        name, replicas = meta["name"], int(spec.get("replicas", 1))
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        by_ordinal: dict[int, Stored] = {}
        for pod in self._owned(self.pods, sts):
            ordinal = _ordinal(pod.obj["metadata"]["name"], name)
            if ordinal is not None:
                by_ordinal[ordinal] = pod
        for pod in by_ordinal.values():  # an ended pod is made again
            if _phase(pod.obj) in TERMINAL and not _deleting(pod.obj):
                self._remove_pods(sts, [pod], 0)
        for ordinal in range(replicas):
            pod = by_ordinal.get(ordinal)
            if pod is None:
                self._create_pod(sts, spec["template"], name=f"{name}-{ordinal}",
                                 labels={STS_POD_NAME_LABEL: f"{name}-{ordinal}",
                                         POD_INDEX_LABEL: str(ordinal)},
                                 spec_change=_stateful_identity(f"{name}-{ordinal}",
                                                                spec.get("serviceName")))
                if ordered:
                    break
            elif ordered and not (_phase(pod.obj) == "Running" and _ready(pod.obj)
                                  and not _deleting(pod.obj)):
                break
        extra = sorted((o for o in by_ordinal if o >= replicas), reverse=True)
        if extra:
            if not ordered:
                self._remove_pods(sts, [by_ordinal[o] for o in extra
                                        if not _deleting(by_ordinal[o].obj)])
            elif not any(_deleting(by_ordinal[o].obj) for o in extra):
                self._remove_pods(sts, [by_ordinal[extra[0]]])
        pods = [p for p in self._owned(self.pods, sts) if not _deleting(p.obj)]
        ready = sum(1 for p in pods if _ready(p.obj))
        status = {"observedGeneration": meta.get("generation", 1), "replicas": len(pods),
                  "readyReplicas": ready, "currentReplicas": len(pods),
                  "updatedReplicas": len(pods), "availableReplicas": ready}
        sets = self.resources["statefulsets"]
        self._write_status(sets, sets.get(meta["namespace"], name) or stored, status)

    # PyTorchJob --------------------------------------------------------------------------

    def _sync_pytorch_job(self, stored: Stored) -> None:
        job = stored.obj
        if _deleting(job):
            return
        meta, spec = job["metadata"], job["spec"]
        name = meta["name"]
        status = copy.deepcopy(job.get("status") or {})
        expected = _pytorch_pods(name, spec["pytorchReplicaSpecs"])
        pods = {p.obj["metadata"]["name"]: p for p in self._owned(self.pods, job)}
        if not status.get("conditions"):
            set_condition(status, "Created", "True", "PyTorchJobCreated",
                          f"PyTorchJob {name} is created.")
        counts, failed_pod = _pytorch_tally(spec["pytorchReplicaSpecs"], expected, pods)
        status["replicaStatuses"] = counts
        if not (has_condition(status, "Succeeded") or has_condition(status, "Failed")):
            status.setdefault("startTime", now_rfc3339())
            if self._pytorch_ended(job, status, counts, failed_pod):
                status["completionTime"] = now_rfc3339()
                clean = (spec.get("runPolicy") or {}).get("cleanPodPolicy", "None")
                if clean == "All":
                    self._remove_pods(job, [p for p in pods.values() if not _deleting(p.obj)])
                elif clean == "Running":
                    self._remove_pods(job, [p for p in pods.values() if _active(p.obj)])
            else:
                for pod_name, (rtype, index) in expected.items():
                    if pod_name not in pods:  # new, or evicted / deleted: made again
                        self._create_pytorch_pod(job, pod_name, rtype, index, expected)
                if expected and all(pod_name in pods and _phase(pods[pod_name].obj) ==
                                    "Running" for pod_name in expected):
                    set_condition(status, "Running", "True", "PyTorchJobRunning",
                                  f"PyTorchJob {name} is running.")
        jobs = self.resources["pytorchjobs"]
        self._write_status(jobs, jobs.get(meta["namespace"], name) or stored, status)

    @staticmethod
    def _pytorch_ended(job: Mapping[str, Any], status: dict[str, Any],
                       counts: Mapping[str, Mapping[str, int]], failed_pod: str | None
                       ) -> bool:
        """Set Failed or Succeeded when the job ended; whether it did."""
        name, replica_specs = job["metadata"]["name"], job["spec"]["pytorchReplicaSpecs"]
        if failed_pod is not None:
            set_condition(status, "Running", "False", "PyTorchJobFailed",
                          f"PyTorchJob {name} is failed.")
            set_condition(status, "Failed", "True", "PyTorchJobFailed",
                          f"PyTorchJob {name} is failed because pod {failed_pod} failed.")
            return True
        leader = "Master" if "Master" in counts else "Worker"
        lead = counts.get(leader)
        if lead and lead["succeeded"] == int(replica_specs[leader].get("replicas", 1)):
            set_condition(status, "Running", "False", "PyTorchJobSucceeded",
                          f"PyTorchJob {name} is successfully completed.")
            set_condition(status, "Succeeded", "True", "PyTorchJobSucceeded",
                          f"PyTorchJob {name} is successfully completed.")
            return True
        return False

    def _create_pytorch_pod(self, job: Mapping[str, Any], pod_name: str, rtype: str,
                            index: int, expected: Mapping[str, Any]) -> None:
        name = job["metadata"]["name"]
        rspec = job["spec"]["pytorchReplicaSpecs"][rtype]
        labels = {KF_JOB_NAME: name, KF_OPERATOR: "pytorchjob-controller",
                  KF_REPLICA_TYPE: rtype.lower(), KF_REPLICA_INDEX: str(index)}
        if rtype == "Master":
            labels[KF_JOB_ROLE] = "master"
        has_master = "Master" in job["spec"]["pytorchReplicaSpecs"]
        rank = index if rtype == "Master" or not has_master else index + 1
        master = f"{name}-master-0" if has_master else f"{name}-worker-0"
        env = [{"name": "MASTER_PORT", "value": str(PYTORCH_PORT)},
               {"name": "MASTER_ADDR", "value": master},
               {"name": "WORLD_SIZE", "value": str(len(expected))},
               {"name": "RANK", "value": str(rank)},
               {"name": "PYTHONUNBUFFERED", "value": "1"}]
        policy = rspec.get("restartPolicy", "OnFailure")

        def change(spec: dict[str, Any]) -> None:
            spec["restartPolicy"] = "Never" if policy == "ExitCode" else policy
            spec["hostname"], spec["subdomain"] = pod_name, name
            for container in spec.get("containers") or ():
                names = {e.get("name") for e in env}
                container["env"] = [e for e in container.get("env") or ()
                                    if e.get("name") not in names] + env

        self._create_pod(job, rspec["template"], name=pod_name, labels=labels,
                         spec_change=change)

    # garbage collector -------------------------------------------------------------------

    def collect(self, owner: Mapping[str, Any], policy: str) -> None:
        """What happens to the dependents of an owner just deleted (`propagationPolicy`)."""
        uid, namespace = owner["metadata"]["uid"], owner["metadata"]["namespace"]
        for resource in (self.resources["replicasets"], self.pods):
            for stored in resource.select(namespace):
                refs = stored.obj["metadata"].get("ownerReferences") or ()
                if not any(r.get("uid") == uid for r in refs):
                    continue
                name = stored.obj["metadata"]["name"]
                if policy == "Orphan":
                    def orphan(obj: dict[str, Any]) -> None:
                        obj["metadata"]["ownerReferences"] = [
                            r for r in obj["metadata"].get("ownerReferences") or ()
                            if r.get("uid") != uid]
                    with contextlib.suppress(ApiError):
                        resource.mutate(namespace, name, orphan)
                elif resource is self.pods:
                    with contextlib.suppress(ApiError):
                        self.delete_pod(stored, None)
                else:
                    with contextlib.suppress(ApiError):
                        gone = resource.delete(namespace, name)
                        self.collect(gone.obj, policy)


def _negate(text: str) -> str:
    """A key that sorts strings newest (largest) first."""
    return "".join(chr(0x10FFFF - ord(c)) for c in text)


def _ordinal(pod_name: str, set_name: str) -> int | None:
    prefix = set_name + "-"
    if not pod_name.startswith(prefix):
        return None
    rest = pod_name[len(prefix):]
    return int(rest) if rest.isdigit() else None


def _stateful_identity(pod_name: str, service: str | None) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        spec["hostname"] = pod_name
        if service:
            spec["subdomain"] = service
    return change


def _pytorch_pods(name: str, replica_specs: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    """Pod name -> (replica type, index), master first."""
    pods: dict[str, tuple[str, int]] = {}
    for rtype in ("Master", "Worker"):
        rspec = replica_specs.get(rtype)
        if rspec:
            for i in range(int(rspec.get("replicas", 1))):
                pods[f"{name}-{rtype.lower()}-{i}"] = (rtype, i)
    return pods


def _pytorch_tally(replica_specs: Mapping[str, Any], expected: Mapping[str, tuple[str, int]],
                   pods: Mapping[str, Stored]) -> tuple[dict[str, dict[str, int]], str | None]:
    """replicaStatuses (active, succeeded, failed per replica type), and a pod whose failure
    fails the job (its replica does not restart: `Never` or `ExitCode`)."""
    counts: dict[str, dict[str, int]] = {}
    failed_pod = None
    for pod_name, (rtype, _index) in expected.items():
        tally = counts.setdefault(rtype, {"active": 0, "succeeded": 0, "failed": 0})
        pod = pods.get(pod_name)
        if pod is None:
            continue
        phase = _phase(pod.obj)
        if phase == "Succeeded":
            tally["succeeded"] += 1
        elif phase == "Failed":
            tally["failed"] += 1
            if replica_specs[rtype].get("restartPolicy") in ("Never", "ExitCode"):
                failed_pod = pod_name
        elif not _deleting(pod.obj):
            tally["active"] += 1
    return counts, failed_pod
