"""Discovery of third-party workloads: pods whose `schedulerName` is Fairway's and that Fairway
did not create (a Job's, a Deployment's, a training operator's), grouped by top owner and
announced on NATS (`ThirdPartyWorkloadChanged`, last value per workload).

The pods come from the watch of pods that are not Fairway's (`ForeignUsageTracker`'s: one
watch serves both). A change marks its namespace; a short pause later each marked namespace
is grouped again: the owners its pods name are read with the official client (Jobs, CronJobs,
ReplicaSets, Deployments, StatefulSets, DaemonSets, PyTorchJobs; an owner that is gone or of
another kind stands for itself, as `core.grouping` says), the namespace's labels too (the
project), and every workload whose announcement changed is published; one whose pods all
went is announced `gone`. Each replica can be limited to some namespaces (`namespace_filter`),
so a sharded lifecycle announces each workload once.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fairway_bus import publish_model
from fairway_contracts import subjects
from fairway_contracts.events import (
    PodGroupChanged,
    PodPlacement,
    PreemptDecision,
    SchedulingPending,
    ThirdPartyWorkloadChanged,
)
from fairway_contracts.workloads import Compute, Phase, WorkloadType, utcnow
from fairway_lifecycle.core.fractions import LABEL_FRACTION, bind_in_flight
from fairway_lifecycle.core.grouping import (
    Owner,
    OwnerRef,
    group_pods,
    is_third_party,
    owner_from_object,
)
from fairway_lifecycle.core.thirdparty import (
    announcement,
    missing_owners,
    pods_to_tell,
    waiting_condition,
)
from fairway_lifecycle.kube import Kube
from fairway_lifecycle.sharing import FractionBind

log = logging.getLogger("fairway.lifecycle.thirdparty")

GROUP_PAUSE = 0.2  # seconds a burst of pod changes gathers before its namespaces are grouped
RETRY_SECONDS = 2.0  # after the API or NATS failed: the namespace is grouped again then
SEQUENCE_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # pod group sequences count from here


def _fraction_compute(event: ThirdPartyWorkloadChanged) -> Compute | None:
    """A third-party fraction's request as a native fraction's compute (one device: a
    portion, or an amount of its memory); None: it asks for whole GPUs or none."""
    if event.gpu_portion is not None:
        return Compute(gpu_devices_request=1, gpu_request_type="portion",
                       gpu_portion_request=event.gpu_portion)
    if event.gpu_memory_mib is not None:
        return Compute(gpu_devices_request=1, gpu_request_type="memory",
                       gpu_memory_request=f"{event.gpu_memory_mib}Mi")
    return None


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


class ThirdPartyDiscovery:
    def __init__(self, kube: Kube, *, namespace_filter: Callable[[str], bool] | None = None):
        self.kube = kube
        self.namespace_filter = namespace_filter
        self.pods: dict[str, dict[str, dict[str, Any]]] = {}  # namespace -> name -> pod
        self.owners: dict[str, Owner] = {}  # by uid
        self.unreadable: set[str] = set()  # owner uids that are gone or of an unread kind
        self.announced: dict[str, ThirdPartyWorkloadChanged] = {}  # by workload id
        self.gone: set[str] = set()  # workloads announced gone (a late delete is done)
        self._sequences: dict[str, int] = {}  # the last pod group sequence per workload
        # why each workload's pods wait, as the scheduler last said (its PodScheduled
        # condition): told to the waiting pods, and to the ones its owner makes later
        self.waiting: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._readers: dict[tuple[str, str], Callable[[str, str, str], Any]] | None = None

    def readers(self) -> dict[tuple[str, str], Callable[[str, str, str], Any]]:
        """(API group, kind) -> a call reading one (namespace, name, version) as JSON; made
        at the first read."""
        if self._readers is not None:
            return self._readers
        batch, apps = client.BatchV1Api(self.kube.api), client.AppsV1Api(self.kube.api)
        custom = client.CustomObjectsApi(self.kube.api)
        self._readers = {
            ("batch", "Job"): lambda ns, name, _: batch.read_namespaced_job(
                name, ns, _preload_content=False),
            ("batch", "CronJob"): lambda ns, name, _: batch.read_namespaced_cron_job(
                name, ns, _preload_content=False),
            ("apps", "ReplicaSet"): lambda ns, name, _: apps.read_namespaced_replica_set(
                name, ns, _preload_content=False),
            ("apps", "Deployment"): lambda ns, name, _: apps.read_namespaced_deployment(
                name, ns, _preload_content=False),
            ("apps", "StatefulSet"): lambda ns, name, _: apps.read_namespaced_stateful_set(
                name, ns, _preload_content=False),
            ("apps", "DaemonSet"): lambda ns, name, _: apps.read_namespaced_daemon_set(
                name, ns, _preload_content=False),
            ("kubeflow.org", "PyTorchJob"): lambda ns, name, version: (
                custom.get_namespaced_custom_object("kubeflow.org", version, ns,
                                                    "pytorchjobs", name,
                                                    _preload_content=False)),
        }
        return self._readers

    def start(self, runtime: Any) -> None:
        runtime.background(self._loop(runtime), "third-party-discovery")

    # pods (from the watch of pods that are not Fairway's) -------------------------------------
    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        if self.namespace_filter is not None and not self.namespace_filter(namespace):
            return
        pods = self.pods.setdefault(namespace, {})
        if kind != "DELETED" and is_third_party(pod):
            pods[name] = pod
        elif pods.pop(name, None) is None:
            if not pods:
                del self.pods[namespace]
            return  # neither was nor is a third-party pod: nothing to group again
        if not pods:
            del self.pods[namespace]
        self._dirty.add(namespace)
        self._wake.set()

    # grouping -------------------------------------------------------------------------------
    async def _loop(self, runtime: Any) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(GROUP_PAUSE)
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            failed = set()
            for namespace in sorted(dirty):
                try:
                    await self.announce(runtime.js, namespace)
                except Exception:  # the API server or NATS away a moment: again shortly
                    log.warning("grouping the third-party pods of %s failed", namespace,
                                exc_info=True)
                    failed.add(namespace)
            if failed:
                await asyncio.sleep(RETRY_SECONDS)  # never a hot loop
                self._dirty |= failed
                self._wake.set()

    async def announce(self, js: Any, namespace: str) -> list[ThirdPartyWorkloadChanged]:
        """Group the namespace's third-party pods and publish what changed. The events
        published."""
        pods = dict(self.pods.get(namespace, {}))
        await self._read_owners(list(pods.values()))
        labels = await self._namespace_labels(namespace) if pods else {}
        now = utcnow()
        changed: list[ThirdPartyWorkloadChanged] = []
        present: set[str] = set()
        for workload in group_pods(pods.values(), self.owners, {namespace: labels}):
            present.add(workload.id)
            event = announcement(workload, pods, now)
            last = self.announced.get(workload.id)
            if last is None or last.event_id != event.event_id:
                changed.append(event)
        for wid, last in list(self.announced.items()):
            if last.namespace == namespace and wid not in present and not last.gone:
                changed.append(last.model_copy(update={
                    "gone": True, "pods": [], "pod_summaries": [], "observed_at": now,
                    "phase": Phase.DELETED, "phase_reason": "Deleted",
                    "phase_message": f"its {last.kind} {last.name} and its pods are gone",
                    "event_id": f"{last.event_id}:gone"}))
        for event in changed:
            await publish_model(js, subjects.thirdparty_workload(event.workload_id), event,
                                msg_id=event.event_id)
            await self._publish_pod_group(js, event)
            if event.gone:
                self.announced.pop(event.workload_id, None)
                self.waiting.pop(event.workload_id, None)
                self.gone.add(event.workload_id)
            else:
                self.announced[event.workload_id] = event
            log.info("third-party workload %s", "gone" if event.gone else "changed",
                     extra={"workload_id": event.workload_id, "fields": {
                         "kind": event.kind, "name": event.name, "namespace": namespace,
                         "pods": len(event.pods), "project": event.project}})
        for wid in sorted(present & self.waiting.keys() & self.announced.keys()):
            await self._tell_waiting(self.announced[wid])  # pods made since it was said
        return changed

    def name_of(self, workload_id: str) -> str:
        """A third-party workload's name (its top owner's), else its id."""
        event = self.announced.get(workload_id)
        return event.name if event is not None else workload_id

    def namespace_of(self, workload_id: str) -> str | None:
        """The namespace of a third-party workload this replica announced (its pods')."""
        event = self.announced.get(workload_id)
        return event.namespace if event is not None else None

    def _next_sequence(self, workload_id: str) -> int:
        """A pod group's sequence: grows by at least one per event, and across restarts (it
        starts from the clock: tenths of a second since 2026; past 32 bits in 2032, so every
        store of a pod group's sequence is 64 bits)."""
        clock = int((utcnow() - SEQUENCE_EPOCH).total_seconds() * 10)
        sequence = max(self._sequences.get(workload_id, 0) + 1, clock)
        self._sequences[workload_id] = sequence
        return sequence

    async def _publish_pod_group(self, js: Any, event: ThirdPartyWorkloadChanged) -> None:
        """The workload's pods for the scheduler (as lifecycle publishes a native workload's),
        once it has a project: it places the unbound ones, releases what finished ones held."""
        if not event.project:
            return
        sequence = self._next_sequence(event.workload_id)
        group = PodGroupChanged(
            event_id=f"pg:{event.workload_id}:{sequence}", workload_id=event.workload_id,
            name=event.name, project=event.project, workload_type=WorkloadType.TRAINING,
            sequence=sequence, phase=event.phase, pods=event.pod_summaries,
            time=event.observed_at)
        await publish_model(js, subjects.podgroup(event.project, event.workload_id), group,
                            msg_id=group.event_id)

    async def preempt(self, decision: PreemptDecision, grace_seconds: int | None) -> bool:
        """Evict the pods a preemption names (all of them: None) through the eviction API,
        as Kubernetes would; their owner's controller makes them again and they wait for
        the scheduler. True when the workload is one this replica announced."""
        event = self.announced.get(decision.workload_id)
        if event is None:
            return False
        for pod in decision.pods if decision.pods is not None else event.pods:
            outcome = await self.kube.evict(event.namespace, pod, grace_seconds)
            log.info("evicted third-party pod %s (%s): %s", pod, decision.reason, outcome,
                     extra={"workload_id": decision.workload_id})
        return True

    def announced_here(self, workload_id: str) -> bool:
        """Whether this replica announced the workload (a third-party one it discovered)."""
        return workload_id in self.announced

    async def pending(self, event: SchedulingPending) -> bool:
        """Say on each of a third-party workload's waiting pods why it waits, as
        kube-scheduler does (condition `PodScheduled` False, reason `Unschedulable`, the
        scheduler's code and message, and a `FailedScheduling` Warning event); the pods its
        owner makes later are told too. True when the workload is one this replica
        announced."""
        announced = self.announced.get(event.workload_id)
        if announced is None:
            return False
        if not event.pending:
            self.waiting.pop(event.workload_id, None)  # binding sets PodScheduled True
            return True
        self.waiting[event.workload_id] = waiting_condition(event.code, event.message,
                                                            event.changed_at)
        await self._tell_waiting(announced)
        return True

    async def _tell_waiting(self, announced: ThirdPartyWorkloadChanged) -> None:
        condition = self.waiting[announced.workload_id]
        pods = self.pods.get(announced.namespace, {})
        members = {name: pods[name] for name in announced.pods if name in pods}
        for name in pods_to_tell(members.values(), condition):
            pod = members[name]
            if await self.kube.set_pod_condition(announced.namespace, name,
                                                 condition) == "patched":
                await self.kube.record_event(pod, "FailedScheduling", condition["message"],
                                             "Warning")
                # as written: not written again before the watch brings the pod back
                said = pod.setdefault("status", {}).setdefault("conditions", [])
                said[:] = [c for c in said if c.get("type") != "PodScheduled"] + [condition]

    async def fraction_compute(self, workload_id: str, namespace: str, pod: str
                               ) -> Compute | None:
        """What a third-party fraction pod asks for, as a native fraction's compute (one
        device: a portion, or an amount of its memory); the pod is labelled a fraction pod
        first, so the GPU sharing counts it on its device as a native one. None: not a
        third-party fraction this replica announced."""
        event = self.announced.get(workload_id)
        compute = _fraction_compute(event) if event is not None else None
        if compute is not None:
            await self.kube.label(namespace, pod, {LABEL_FRACTION: "true"})
        return compute

    def unbound_fractions(self) -> list[FractionBind]:
        """Third-party fraction pods that carry the node they are to be bound to but are not
        bound: their bind was under way when lifecycle stopped (as the native ones)."""
        members = {(e.namespace, pod): e for e in self.announced.values() for pod in e.pods}
        found, now = [], time.monotonic()
        for namespace, pods in self.pods.items():
            for name, pod in pods.items():
                event = members.get((namespace, name))
                compute = _fraction_compute(event) if event is not None else None
                in_flight = bind_in_flight(pod)
                if (compute is None or in_flight is None
                        or (pod["metadata"].get("labels") or {}).get(LABEL_FRACTION) != "true"):
                    continue
                node, devices = in_flight
                found.append(FractionBind(namespace, PodPlacement(
                    pod=name, node=node, gpu_devices=devices), compute,
                    event.name, now))
        return found

    async def delete_owner(self, workload_id: str) -> bool:
        """Delete a third-party workload's top owner, its dependents in the background (the
        garbage collector's cascade); True when the workload is one this replica announced
        (gone already counts as done)."""
        if workload_id in self.gone:
            return True  # its owner and pods went already
        event = self.announced.get(workload_id)
        if event is None:
            return False
        body = client.V1DeleteOptions(propagation_policy="Background")
        group = _group(event.api_version)
        version = event.api_version.split("/")[-1]
        calls: dict[tuple[str, str], Callable[[], Any]] = {
            ("", "Pod"): lambda: self.kube.core.delete_namespaced_pod(
                event.name, event.namespace, body=body),
            ("batch", "Job"): lambda: client.BatchV1Api(self.kube.api).delete_namespaced_job(
                event.name, event.namespace, body=body),
            ("apps", "ReplicaSet"): lambda: client.AppsV1Api(
                self.kube.api).delete_namespaced_replica_set(event.name, event.namespace,
                                                             body=body),
            ("apps", "Deployment"): lambda: client.AppsV1Api(
                self.kube.api).delete_namespaced_deployment(event.name, event.namespace,
                                                            body=body),
            ("apps", "StatefulSet"): lambda: client.AppsV1Api(
                self.kube.api).delete_namespaced_stateful_set(event.name, event.namespace,
                                                              body=body),
            ("apps", "DaemonSet"): lambda: client.AppsV1Api(
                self.kube.api).delete_namespaced_daemon_set(event.name, event.namespace,
                                                            body=body),
        }
        call = calls.get((group, event.kind)) or (lambda: client.CustomObjectsApi(
            self.kube.api).delete_namespaced_custom_object(
            group, version, event.namespace, f"{event.kind.lower()}s", event.name,
            body=body))
        try:
            await asyncio.to_thread(call)
        except ApiException as exc:
            if exc.status != 404:
                raise
        log.info("deleted the top owner of a third-party workload", extra={
            "workload_id": workload_id, "fields": {"kind": event.kind, "name": event.name,
                                                   "namespace": event.namespace}})
        return True

    async def _read_owners(self, pods: list[dict[str, Any]]) -> None:
        """Read the owners the pods' chains name (each pass: a Job's parallelism may change);
        a 404 or a kind with no reader leaves the reference standing for itself."""
        for owner in [o for o in self.owners.values()
                      if o.namespace in {p["metadata"].get("namespace") for p in pods}]:
            del self.owners[owner.uid]  # read again below
        while wanted := missing_owners(pods, self.owners, self.unreadable):
            for uid, (namespace, ref) in wanted.items():
                obj = await self._read(namespace, ref)
                if obj is None:
                    self.unreadable.add(uid)
                else:
                    self.owners[uid] = owner_from_object(obj)

    async def _read(self, namespace: str, ref: OwnerRef) -> dict[str, Any] | None:
        reader = self.readers().get((_group(ref.api_version), ref.kind))
        if reader is None:
            return None
        version = ref.api_version.split("/")[-1]
        try:
            response = await asyncio.to_thread(reader, namespace, ref.name, version)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        obj = json.loads(response.data)
        if (obj.get("metadata") or {}).get("uid") != ref.uid:
            return None  # another object of that name now: the one the pod named is gone
        return obj

    async def _namespace_labels(self, namespace: str) -> dict[str, str]:
        try:
            found = await asyncio.to_thread(self.kube.core.read_namespace, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return {}
            raise
        return dict(found.metadata.labels or {})
