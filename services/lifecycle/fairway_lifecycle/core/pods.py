"""Pod manifests for a workload, from its effective spec (pure: dicts in, dicts out).

- workspace: one pod, restarted by the kubelet (restartPolicy from policy: Always);
- training: `parallelism` pods (default one) until `completions` succeed;
- distributed: a master (the workers' copy, or its own `masterSpec`) and `numWorkers` workers
  as one gang, each with `hostname` and `subdomain` so its name resolves through the
  workload's headless Service (core/objects.py), and the environment each framework's
  operator sets (PyTorch, TF, MPI, XGBoost, JAX) naming its peers by those names;
- inference: `minReplicas` replicas serving on `servingPort`.
"""

import json
import re
import shlex
from typing import Any

from fairway_contracts import EffectiveSpec, PodRole, WorkloadType
from fairway_contracts.workloads import NODE_TYPE_LABEL, Compute, NameValue
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
# The cluster's DNS domain: a pod with hostname H and subdomain S in namespace N resolves as
# H.S.N.svc.<domain> once a headless Service named S selects it.
CLUSTER_DOMAIN = "cluster.local"
# Where the MPI launcher finds its hostfile (the MPI operator's path and key).
MPI_CONFIG_DIR = "/etc/mpi"
MPI_HOSTFILE_KEY = "hostfile"
MPI_CONFIG_VOLUME = "mpi-job-config"


def namespace_for(project: str, prefix: str = "fairway-") -> str:
    return f"{prefix}{project}"


def _base(name: str) -> str:
    return _DNS.sub("-", name.lower()).strip("-")[:30] or "workload"


def pod_name(name: str, workload_id: str, role: PodRole, index: int, attempt: int) -> str:
    """DNS-1123 and at most 63 characters: <name>-<id8>-<attempt>[-<role>]-<index>."""
    suffix = "" if role in (PodRole.MAIN, PodRole.REPLICA) else f"-{role.value}"
    return f"{_base(name)}-{workload_id[:8]}-{attempt}{suffix}-{index}"


def service_name(name: str, workload_id: str) -> str:
    """The name of the workload's Service: its pods' name prefix without attempt, role and
    index (<name>-<id8>), the same for every attempt. A Service name is a DNS-1035 label (at
    most 63 characters, starting with a letter), so a name starting with a digit gets "w-"."""
    service = f"{_base(name)}-{workload_id[:8]}"
    return service if service[0].isalpha() else f"w-{service}"[:63]


def pod_host(pod: str, service: str, namespace: str) -> str:
    """The name a pod resolves by: its hostname under the headless Service (subdomain)."""
    return f"{pod}.{service}.{namespace}.svc.{CLUSTER_DOMAIN}"


def hostfile_name(name: str, workload_id: str) -> str:
    """The ConfigMap holding an MPI workload's hostfile."""
    return f"{service_name(name, workload_id)}-hostfile"


def mpi_slots(spec: EffectiveSpec) -> int:
    """Processes mpirun starts per worker: one per whole GPU, one on a CPU (or fraction)."""
    if spec.compute.fractional:
        return 1
    return max(1, spec.compute.gpu_devices_request)


def hostfile(hosts: list[str], slots: int) -> str:
    """The MPI hostfile: every worker's host and its slots, one a line (the launcher is not
    in it: it runs mpirun, the workers run the ranks)."""
    return "".join(f"{host} slots={slots}\n" for host in hosts)


def roles(workload_type: WorkloadType, spec: EffectiveSpec) -> list[tuple[PodRole, int]]:
    """(role, index) of every pod of the workload, in rank order."""
    if workload_type == WorkloadType.DISTRIBUTED:
        workers = spec.num_workers or max(1, spec.pods - 1)
        return [(PodRole.MASTER, 0)] + [(PodRole.WORKER, i) for i in range(workers)]
    if workload_type == WorkloadType.INFERENCE:
        return [(PodRole.REPLICA, i) for i in range(spec.pods)]
    return [(PodRole.MAIN, i) for i in range(spec.pods)]


def framework_env(framework: str, members: list[tuple[PodRole, int, str]], hosts: list[str],
                  rank: int, spec: EffectiveSpec, workload_id: str) -> list[dict[str, str]]:
    """What each framework's launcher reads to find its peers and its own rank, as the
    Kubeflow training operator and the MPI operator set it; `hosts` are the members'
    resolvable names, the master's first."""
    port = PORTS.get(framework, 23456)
    master = hosts[0]
    world = len(members)
    role, index, _ = members[rank]
    if framework == "PyTorch":
        env = {"MASTER_ADDR": master, "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
               "RANK": str(rank), "PET_MASTER_ADDR": master, "PET_MASTER_PORT": str(port),
               "PET_NNODES": str(world), "PET_NODE_RANK": str(rank)}
        if spec.min_replicas is not None:
            # torchrun's elastic agent: between the master plus minReplicas workers and the
            # master plus maxReplicas (or every worker made) nodes meet at the rendezvous.
            most = 1 + (spec.max_replicas or spec.num_workers or world - 1)
            env.update(PET_NNODES=f"{1 + spec.min_replicas}:{most}", PET_RDZV_BACKEND="c10d",
                       PET_RDZV_ENDPOINT=f"{master}:{port}", PET_RDZV_ID=workload_id)
    elif framework == "TF":
        cluster = {"chief": [f"{hosts[0]}:{port}"],
                   "worker": [f"{h}:{port}" for h in hosts[1:]]}
        task = {"type": "chief" if role == PodRole.MASTER else "worker", "index": index}
        env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": task}, sort_keys=True)}
    elif framework == "MPI":
        # The launcher runs mpirun over the hostfile the ConfigMap mounts; the workers wait.
        env = {"OMPI_MCA_orte_default_hostfile": f"{MPI_CONFIG_DIR}/{MPI_HOSTFILE_KEY}",
               "OMPI_MCA_orte_keep_fqdn_hostnames": "true",
               "I_MPI_HYDRA_HOST_FILE": f"{MPI_CONFIG_DIR}/{MPI_HOSTFILE_KEY}",
               "FAIRWAY_MPI_ROLE": "launcher" if role == PodRole.MASTER else "worker"}
    elif framework == "XGBoost":
        env = {"MASTER_ADDR": master, "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
               "RANK": str(rank), "WORKER_ADDRS": ",".join(hosts[1:]),
               "DMLC_TRACKER_URI": master, "DMLC_TRACKER_PORT": str(port),
               "DMLC_NUM_WORKER": str(world - 1), "DMLC_TASK_ID": str(rank),
               "DMLC_ROLE": "tracker" if role == PodRole.MASTER else "worker"}
    elif framework == "JAX":
        env = {"COORDINATOR_ADDRESS": master, "COORDINATOR_PORT": str(port),
               "NUM_PROCESSES": str(world), "PROCESS_ID": str(rank),
               "JAX_COORDINATOR_ADDRESS": f"{master}:{port}", "JAX_NUM_PROCESSES": str(world),
               "JAX_PROCESS_ID": str(rank)}
    else:
        env = {}
    return [{"name": k, "value": v} for k, v in env.items()]


def _container_spec(spec: EffectiveSpec, role: PodRole
                    ) -> tuple[str, str | None, str | None, list[NameValue], Compute]:
    """(image, command, args, environment, compute) of a pod: a distributed master's own
    `masterSpec` where it gives them, else the workload's."""
    master = spec.master_spec if role == PodRole.MASTER else None
    if master is None:
        return (spec.image, spec.command, spec.args, list(spec.environment_variables),
                spec.compute)
    env = {e.name: e for e in spec.environment_variables}
    env.update({e.name: e for e in master.environment_variables})
    return (master.image or spec.image, master.command or spec.command,
            master.args or spec.args, list(env.values()), master.compute or spec.compute)


def build_pods(*, workload_id: str, name: str, project: str, workload_type: WorkloadType,
               spec: EffectiveSpec, attempt: int, namespace: str) -> list[dict[str, Any]]:
    members = [(role, index, pod_name(name, workload_id, role, index, attempt))
               for role, index in roles(workload_type, spec)]
    distributed = workload_type == WorkloadType.DISTRIBUTED
    framework = spec.distributed_framework or "PyTorch"
    service = service_name(name, workload_id)
    hosts = [pod_host(pod, service, namespace) for _, _, pod in members]
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
        image, command, args, given_env, compute = _container_spec(spec, role)
        resources: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
        gpus = compute.gpu_devices_request
        if compute.fractional:
            # A fraction holds no device of its own: a reservation pod holds each device it
            # shares, and its environment names the device and its limits (core/fractions.py).
            labels[LABEL_FRACTION] = "true"
        elif gpus:
            resources["requests"]["nvidia.com/gpu"] = str(gpus)
            resources["limits"]["nvidia.com/gpu"] = str(gpus)
        if compute.cpu_core_request:
            resources["requests"]["cpu"] = str(compute.cpu_core_request)
        if compute.cpu_memory_request:
            resources["requests"]["memory"] = compute.cpu_memory_request
        env = [{"name": e.name, "value": e.value} for e in given_env]
        env.append({"name": "FAIRWAY_WORKLOAD_ID", "value": workload_id})
        if compute.fractional:
            env += fraction_env(compute.devices_per_pod())
        if distributed:
            env += framework_env(framework, members, hosts, rank, spec, workload_id)
        container: dict[str, Any] = {
            "name": "main",
            "image": image,
            "env": env,
            "resources": resources,
        }
        if command:
            container["command"] = shlex.split(command)
        if args:
            container["args"] = shlex.split(args)
        if workload_type == WorkloadType.INFERENCE and spec.serving_port:
            container["ports"] = [{"name": "serving",
                                   "containerPort": spec.serving_port.container}]
        pod_spec: dict[str, Any] = {
            "schedulerName": SCHEDULER_NAME,
            "restartPolicy": spec.restart_policy,
            "containers": [container],
        }
        if distributed:
            # Resolvable as <pod>.<service>.<namespace>.svc...: the peers' addresses.
            pod_spec.update(hostname=pod, subdomain=service)
            if framework == "MPI" and role == PodRole.MASTER:
                pod_spec["volumes"] = [{"name": MPI_CONFIG_VOLUME, "configMap": {
                    "name": hostfile_name(name, workload_id),
                    "items": [{"key": MPI_HOSTFILE_KEY, "path": MPI_HOSTFILE_KEY}]}}]
                container["volumeMounts"] = [{"name": MPI_CONFIG_VOLUME,
                                              "mountPath": MPI_CONFIG_DIR, "readOnly": True}]
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
