"""The objects a workload needs in Kubernetes besides its pods (pure: the workload in,
manifests out).

Lifecycle makes them before the pods of every attempt, and deletes them once the workload is
over or deleted (a stopped workload keeps them for its resumption). A name is the same for
every attempt; what an object holds may not be (a Service selects the attempt's pods, a
hostfile lists them), so an attempt's objects replace what an earlier one left.

- distributed: a headless Service (no cluster IP; it selects the attempt's pods, ready or
  not) whose name is every pod's `subdomain`, so `<pod>.<service>.<namespace>.svc` resolves
  for each peer as the frameworks' operators arrange it; MPI adds the launcher's hostfile in
  a ConfigMap (every worker with its slots).
- workspaces, trainings, inference: none yet. A type's objects are one more entry of
  `BUILDERS`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fairway_contracts import EffectiveSpec, WorkloadType
from fairway_contracts.workloads import PodRole
from fairway_lifecycle.core.fold import LABEL_ATTEMPT, LABEL_PROJECT, LABEL_WORKLOAD
from fairway_lifecycle.core.pods import (
    MPI_HOSTFILE_KEY,
    PORTS,
    hostfile,
    hostfile_name,
    mpi_slots,
    pod_host,
    pod_name,
    roles,
    service_name,
)

Manifest = dict[str, Any]

# The API path segment of each kind lifecycle makes (all core/v1, namespaced).
PLURAL_OF_KIND = {"Service": "services", "ConfigMap": "configmaps"}


@dataclass(frozen=True)
class WorkloadAttempt:
    """What an object is built from: the workload as recorded, at its current attempt."""

    workload_id: str
    name: str
    project: str
    workload_type: WorkloadType
    spec: EffectiveSpec
    attempt: int
    namespace: str


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str


def workload_objects(workload: WorkloadAttempt) -> list[Manifest]:
    """The objects the workload's attempt needs, in the order they are made."""
    builder = BUILDERS.get(workload.workload_type)
    return builder(workload) if builder is not None else []


def object_refs(workload: WorkloadAttempt) -> list[ObjectRef]:
    """What to delete when the workload is over: its objects, by kind and name."""
    return [ObjectRef(m["kind"], m["metadata"]["namespace"], m["metadata"]["name"])
            for m in workload_objects(workload)]


def _metadata(workload: WorkloadAttempt, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": workload.namespace,
            "labels": {LABEL_WORKLOAD: workload.workload_id, LABEL_PROJECT: workload.project,
                       LABEL_ATTEMPT: str(workload.attempt),
                       "fairway.io/workload-type": workload.workload_type.value},
            "annotations": {"fairway.io/workload-name": workload.name}}


def distributed_objects(workload: WorkloadAttempt) -> list[Manifest]:
    framework = workload.spec.distributed_framework or "PyTorch"
    port = PORTS.get(framework, 23456)
    service = service_name(workload.name, workload.workload_id)
    objects: list[Manifest] = [{
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(workload, service),
        "spec": {
            "clusterIP": "None",
            # This attempt's pods only: a retry's peers never meet an older attempt's.
            "selector": {LABEL_WORKLOAD: workload.workload_id,
                         LABEL_ATTEMPT: str(workload.attempt)},
            # Peers look each other up before they are ready (a rendezvous waits for all).
            "publishNotReadyAddresses": True,
            "ports": [{"name": framework.lower(), "port": port, "targetPort": port,
                       "protocol": "TCP"}],
        },
    }]
    if framework == "MPI":
        workers = [pod_host(pod_name(workload.name, workload.workload_id, role, index,
                                     workload.attempt), service, workload.namespace)
                   for role, index in roles(workload.workload_type, workload.spec)
                   if role == PodRole.WORKER]
        objects.append({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(workload, hostfile_name(workload.name, workload.workload_id)),
            "data": {MPI_HOSTFILE_KEY: hostfile(workers, mpi_slots(workload.spec))},
        })
    return objects


BUILDERS: dict[WorkloadType, Callable[[WorkloadAttempt], list[Manifest]]] = {
    WorkloadType.DISTRIBUTED: distributed_objects,
}
