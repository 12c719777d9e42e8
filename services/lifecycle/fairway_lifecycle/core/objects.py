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
- inference: a ClusterIP Service named `serving` in front of its replicas (it selects the
  workload's pods of any attempt, ready ones only, as Kubernetes does), on port 80 for http
  (so the URL needs none) or the container's port for grpc; its DNS name is the endpoint
  (`endpoint_url`). None without a servingPort: there is nothing to route to.
- workspaces, trainings: none. A type's objects are one more entry of `BUILDERS`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fairway_contracts import EffectiveSpec, WorkloadType
from fairway_contracts.workloads import PodRole
from fairway_lifecycle.core.fold import LABEL_ATTEMPT, LABEL_PROJECT, LABEL_WORKLOAD
from fairway_lifecycle.core.pods import (
    CLUSTER_DOMAIN,
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


def inference_objects(workload: WorkloadAttempt) -> list[Manifest]:
    port = workload.spec.serving_port
    if port is None:
        return []
    return [{
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(workload, service_name(workload.name, workload.workload_id)),
        "spec": {
            "type": "ClusterIP",
            # Every attempt's replicas: the endpoint stays the same across retries.
            "selector": {LABEL_WORKLOAD: workload.workload_id},
            "ports": [{"name": "serving", "port": port.service_port,
                       "targetPort": port.container, "protocol": "TCP"}],
        },
    }]


def endpoint_url(workload_type: WorkloadType, spec: EffectiveSpec, name: str,
                 workload_id: str, namespace: str) -> str | None:
    """Where the inference server answers inside the cluster: its Service's DNS name, with
    the scheme of its protocol (None: no servingPort, or not an inference server)."""
    port = spec.serving_port
    if workload_type != WorkloadType.INFERENCE or port is None:
        return None
    host = f"{service_name(name, workload_id)}.{namespace}.svc.{CLUSTER_DOMAIN}"
    if port.protocol == "grpc":
        return f"grpc://{host}:{port.service_port}"
    return f"http://{host}"


BUILDERS: dict[WorkloadType, Callable[[WorkloadAttempt], list[Manifest]]] = {
    WorkloadType.DISTRIBUTED: distributed_objects,
    WorkloadType.INFERENCE: inference_objects,
}
