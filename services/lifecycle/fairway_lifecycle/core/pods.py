"""Pod manifests for a workload, from its effective spec (pure: dicts in, dicts out).

- workspace: one pod, restarted by the kubelet (restartPolicy from policy: Always);
- training: `parallelism` pods (default one) until `completions` succeed;
- distributed: a master and `numWorkers` workers as one gang, with the environment each
  framework expects (PyTorch, TF, MPI, XGBoost, JAX);
- inference: `minReplicas` replicas serving on `servingPort`.
"""

import json
import re
import shlex
from typing import Any

from fairway_contracts import EffectiveSpec, PodRole, WorkloadType
from fairway_contracts.workloads import NODE_TYPE_LABEL
from fairway_lifecycle.core.fold import (
    LABEL_ATTEMPT,
    LABEL_PROJECT,
    LABEL_ROLE,
    LABEL_WORKLOAD,
)
from fairway_lifecycle.core.fractions import LABEL_FRACTION, fraction_env
from fairway_lifecycle.core.nodes import NODE_POOL_LABEL

SCHEDULER_NAME = "fairway"
_DNS = re.compile(r"[^a-z0-9-]+")
# Rendezvous ports of the frameworks; any free port works, these are their usual ones.
PORTS = {"PyTorch": 23456, "TF": 2222, "MPI": 2222, "XGBoost": 9091, "JAX": 1234}


def namespace_for(project: str, prefix: str = "fairway-") -> str:
    return f"{prefix}{project}"


def pod_name(name: str, workload_id: str, role: PodRole, index: int, attempt: int) -> str:
    """DNS-1123 and at most 63 characters: <name>-<id8>-<attempt>[-<role>]-<index>."""
    base = _DNS.sub("-", name.lower()).strip("-")[:30] or "workload"
    suffix = "" if role in (PodRole.MAIN, PodRole.REPLICA) else f"-{role.value}"
    return f"{base}-{workload_id[:8]}-{attempt}{suffix}-{index}"


def roles(workload_type: WorkloadType, spec: EffectiveSpec) -> list[tuple[PodRole, int]]:
    """(role, index) of every pod of the workload, in rank order."""
    if workload_type == WorkloadType.DISTRIBUTED:
        workers = spec.num_workers or max(1, spec.pods - 1)
        return [(PodRole.MASTER, 0)] + [(PodRole.WORKER, i) for i in range(workers)]
    if workload_type == WorkloadType.INFERENCE:
        return [(PodRole.REPLICA, i) for i in range(spec.pods)]
    return [(PodRole.MAIN, i) for i in range(spec.pods)]


def framework_env(framework: str, names: list[tuple[PodRole, int, str]], namespace: str,
                  rank: int) -> list[dict[str, str]]:
    """What each framework's launcher reads to find its peers and its own rank."""
    port = PORTS.get(framework, 23456)
    hosts = [f"{name}.{namespace}" for _, _, name in names]
    master = hosts[0]
    world = len(names)
    role, index, _ = names[rank]
    if framework == "PyTorch":
        env = {"MASTER_ADDR": master, "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
               "RANK": str(rank), "PET_NNODES": str(world), "PET_NODE_RANK": str(rank)}
    elif framework == "TF":
        cluster = {"chief": [f"{hosts[0]}:{port}"],
                   "worker": [f"{h}:{port}" for h in hosts[1:]]}
        task = {"type": "chief" if role == PodRole.MASTER else "worker", "index": index}
        env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": task}, sort_keys=True)}
    elif framework == "MPI":
        env = {"OMPI_MCA_orte_default_hostfile": "/etc/mpi/hostfile",
               "FAIRWAY_MPI_HOSTFILE": "\n".join(f"{h} slots=1" for h in hosts[1:]),
               "FAIRWAY_MPI_ROLE": "launcher" if role == PodRole.MASTER else "worker"}
    elif framework == "XGBoost":
        env = {"DMLC_TRACKER_URI": master, "DMLC_TRACKER_PORT": str(port),
               "DMLC_NUM_WORKER": str(world - 1), "DMLC_TASK_ID": str(rank),
               "DMLC_ROLE": "tracker" if role == PodRole.MASTER else "worker"}
    elif framework == "JAX":
        env = {"JAX_COORDINATOR_ADDRESS": f"{master}:{port}", "JAX_NUM_PROCESSES": str(world),
               "JAX_PROCESS_ID": str(rank)}
    else:
        env = {}
    return [{"name": k, "value": v} for k, v in env.items()]


def build_pods(*, workload_id: str, name: str, project: str, workload_type: WorkloadType,
               spec: EffectiveSpec, attempt: int, namespace: str) -> list[dict[str, Any]]:
    members = [(role, index, pod_name(name, workload_id, role, index, attempt))
               for role, index in roles(workload_type, spec)]
    pods = []
    for rank, (role, _index, pod) in enumerate(members):
        labels = {item.name: item.value for item in spec.labels}
        labels.update({
            LABEL_WORKLOAD: workload_id,
            LABEL_PROJECT: project,
            LABEL_ROLE: role.value,
            LABEL_ATTEMPT: str(attempt),
            "fairway.io/workload-type": workload_type.value,
        })
        annotations = {item.name: item.value for item in spec.annotations}
        annotations["fairway.io/workload-name"] = name
        annotations["fairway.io/priority-class"] = spec.priority_class
        annotations["fairway.io/preemptible"] = str(spec.preemptible).lower()
        resources: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
        gpus = spec.compute.gpu_devices_request
        if spec.compute.fractional:
            # A fraction holds no device of its own: a reservation pod holds each device it
            # shares, and its environment names the device and its limits (core/fractions.py).
            labels[LABEL_FRACTION] = "true"
        elif gpus:
            resources["requests"]["nvidia.com/gpu"] = str(gpus)
            resources["limits"]["nvidia.com/gpu"] = str(gpus)
        if spec.compute.cpu_core_request:
            resources["requests"]["cpu"] = str(spec.compute.cpu_core_request)
        if spec.compute.cpu_memory_request:
            resources["requests"]["memory"] = spec.compute.cpu_memory_request
        env = [{"name": e.name, "value": e.value} for e in spec.environment_variables]
        env.append({"name": "FAIRWAY_WORKLOAD_ID", "value": workload_id})
        if spec.compute.fractional:
            env += fraction_env(spec.compute.devices_per_pod())
        if workload_type == WorkloadType.DISTRIBUTED:
            env += framework_env(spec.distributed_framework or "PyTorch", members, namespace,
                                 rank)
        container: dict[str, Any] = {
            "name": "main",
            "image": spec.image,
            "env": env,
            "resources": resources,
        }
        if spec.command:
            container["command"] = shlex.split(spec.command)
        if spec.args:
            container["args"] = shlex.split(spec.args)
        if workload_type == WorkloadType.INFERENCE and spec.serving_port:
            container["ports"] = [{"name": "serving",
                                   "containerPort": spec.serving_port.container}]
        pod_spec: dict[str, Any] = {
            "schedulerName": SCHEDULER_NAME,
            "restartPolicy": spec.restart_policy,
            "containers": [container],
        }
        if spec.node_type:
            # The node type the project allowed and the workload picked (Run:ai's nodeType).
            pod_spec["nodeSelector"] = {NODE_TYPE_LABEL: spec.node_type}
        if spec.node_pools and "default" not in spec.node_pools:
            # The scheduler picks the node; the affinity keeps any other scheduler (and a
            # human reading the pod) inside the pools the workload asked for.
            pod_spec["affinity"] = {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": NODE_POOL_LABEL, "operator": "In",
                                           "values": list(spec.node_pools)}]}]}}}
        pods.append({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod,
                "namespace": namespace,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": pod_spec,
        })
    return pods
