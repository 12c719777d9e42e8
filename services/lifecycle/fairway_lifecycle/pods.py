"""Pod manifests for a workload, from its effective spec (pure: dicts in, dicts out)."""

import re
import shlex
from typing import Any

from fairway_contracts import EffectiveSpec, PodRole, WorkloadType
from fairway_lifecycle.fold import LABEL_ATTEMPT, LABEL_PROJECT, LABEL_ROLE, LABEL_WORKLOAD

SCHEDULER_NAME = "fairway"
_DNS = re.compile(r"[^a-z0-9-]+")


def namespace_for(project: str, prefix: str = "fairway-") -> str:
    return f"{prefix}{project}"


def pod_name(name: str, workload_id: str, role: PodRole, index: int, attempt: int) -> str:
    """DNS-1123 and at most 63 characters: <name>-<id8>-<attempt>-<role><index>."""
    base = _DNS.sub("-", name.lower()).strip("-")[:30] or "workload"
    suffix = "" if role == PodRole.MAIN else f"-{role.value}"
    return f"{base}-{workload_id[:8]}-{attempt}{suffix}-{index}"


def build_pods(*, workload_id: str, name: str, project: str, workload_type: WorkloadType,
               spec: EffectiveSpec, attempt: int, namespace: str) -> list[dict[str, Any]]:
    pods = []
    for index in range(spec.pods):
        role = PodRole.MAIN
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
        resources: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
        gpus = spec.compute.gpu_devices_request
        if gpus:
            resources["requests"]["nvidia.com/gpu"] = str(gpus)
            resources["limits"]["nvidia.com/gpu"] = str(gpus)
        if spec.compute.cpu_core_request:
            resources["requests"]["cpu"] = str(spec.compute.cpu_core_request)
        if spec.compute.cpu_memory_request:
            resources["requests"]["memory"] = spec.compute.cpu_memory_request
        container: dict[str, Any] = {
            "name": "main",
            "image": spec.image,
            "env": [{"name": e.name, "value": e.value} for e in spec.environment_variables],
            "resources": resources,
        }
        if spec.command:
            container["command"] = shlex.split(spec.command)
        if spec.args:
            container["args"] = shlex.split(spec.args)
        pods.append({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name(name, workload_id, role, index, attempt),
                "namespace": namespace,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": {
                "schedulerName": SCHEDULER_NAME,
                "restartPolicy": spec.restart_policy,
                "containers": [container],
            },
        })
    return pods
