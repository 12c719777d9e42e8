"""Object shapes: nodes from the profile, namespaces, and pods as the API server admits them."""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import bad_request, invalid
from .profile import DEFAULT_GPU_PRODUCT, NodeSpec
from .quantity import cpu_string, memory_string_mib, parse_quantity

KUBE_VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0-kubesim"}
KUBELET_VERSION = "v1.37.0-kubesim"
SIM_PREFIX = "sim.fairway.io/"
GPU_RESOURCE = "nvidia.com/gpu"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


_last_second: list[Any] = [None, ""]


def now_rfc3339(ts: float | None = None) -> str:
    """metav1.Time: RFC 3339, second precision, UTC."""
    second = int(time.time() if ts is None else ts)
    if _last_second[0] != second:  # called for every status write: format once a second
        _last_second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))]
    return _last_second[1]


def parse_rfc3339(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def new_uid() -> str:
    """A random (version 4) UUID, formatted without the cost of `uuid.uuid4()`."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


# Nodes -------------------------------------------------------------------------------------

def node_internal_ip(index: int) -> str:
    n = index + 1
    return f"172.{16 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"


def node_pod_cidr(index: int) -> str:
    return f"10.{64 + (index >> 8)}.{index & 255}.0/24"


GPU_UUIDS_ANNOTATION = "fairway.io/gpu-uuids"


def gpu_uuid(node: str, index: int) -> str:
    """A device's UUID, as `nvidia-smi -L` prints them, the same for a node name and index in
    every run."""
    digest = hashlib.sha1(f"{node}/{index}".encode()).hexdigest()
    return f"GPU-{uuid.UUID(digest[:32])}"


def build_node(spec: NodeSpec, index: int, created: str) -> dict[str, Any]:
    labels: dict[str, str] = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "type": "kubesim",
    }
    capacity = {
        "cpu": cpu_string(spec.cpu_millis),
        "memory": memory_string_mib(spec.memory_mib),
        "pods": str(spec.max_pods),
        "ephemeral-storage": "1073741824Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }
    if spec.gpus:
        capacity[GPU_RESOURCE] = str(spec.gpus)
        labels.update({
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.count": str(spec.gpus),
            "nvidia.com/gpu.product": spec.gpu_product or DEFAULT_GPU_PRODUCT,
        })
        if spec.gpu_memory_mib:
            labels["nvidia.com/gpu.memory"] = str(spec.gpu_memory_mib)
    labels.update(spec.labels)  # the profile's labels win, e.g. an explicit gpu.product
    if spec.gpu_product:
        labels["nvidia.com/gpu.product"] = spec.gpu_product
    digest = hashlib.sha256(spec.name.encode()).hexdigest()
    ip = node_internal_ip(index)
    cidr = node_pod_cidr(index)
    spec_obj: dict[str, Any] = {"podCIDR": cidr, "podCIDRs": [cidr],
                                "providerID": f"kubesim://{spec.name}"}
    if not spec.ready:
        spec_obj["taints"] = not_ready_taints(created)
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": spec.name,
            "uid": str(uuid.UUID(digest[:32])),
            "creationTimestamp": created,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                            **({GPU_UUIDS_ANNOTATION: ",".join(
                                gpu_uuid(spec.name, i) for i in range(spec.gpus))}
                               if spec.gpus else {})},
        },
        "spec": spec_obj,
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": node_conditions(spec.ready, created),
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": spec.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": digest[:32],
                "systemUUID": str(uuid.UUID(digest[32:64])),
                "bootID": str(uuid.UUID(hashlib.md5(digest.encode()).hexdigest())),
                "kernelVersion": "6.8.0-kubesim",
                "osImage": "kubesim",
                "containerRuntimeVersion": "containerd://2.1.0-kubesim",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def not_ready_taints(when: str) -> list[dict[str, Any]]:
    return [
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": when},
    ]


def node_conditions(ready: bool, when: str) -> list[dict[str, Any]]:
    def cond(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {"type": type_, "status": status, "lastHeartbeatTime": when,
                "lastTransitionTime": when, "reason": reason, "message": message}

    if ready:
        last = cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")
    else:
        last = cond("Ready", "False", "KubeletNotReady", "kubelet is not posting ready status "
                    "(simulated)")
    return [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
             "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID",
             "kubelet has sufficient PID available"),
        last,
    ]


def node_is_ready(node: Mapping[str, Any]) -> bool:
    for cond in node.get("status", {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


# Namespaces --------------------------------------------------------------------------------

def build_namespace(name: str, created: str, labels: Mapping[str, str] | None = None,
                    annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": new_uid(), "creationTimestamp": created,
                            "labels": {**(labels or {}), "kubernetes.io/metadata.name": name}}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"kind": "Namespace", "apiVersion": "v1", "metadata": meta,
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def admit_namespace(body: Any, created: str) -> dict[str, Any]:
    body = _check_body(body, "Namespace")
    meta = body.get("metadata") or {}
    name = _name_or_generate(meta, "Namespace", "metadata.name")
    causes: list[tuple[str, str, str]] = []
    if len(name) > 63 or not _DNS_LABEL.match(name):
        causes.append(("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": a '
                       "lowercase RFC 1123 label must consist of lower case alphanumeric "
                       "characters or '-', and must start and end with an alphanumeric "
                       "character"))
    causes += _check_meta_maps(meta)
    if causes:
        raise invalid("Namespace", name, causes)
    return build_namespace(name, created, meta.get("labels"), meta.get("annotations"))


# Pods --------------------------------------------------------------------------------------

def admit_pod(body: Any, namespace: str, created: str) -> dict[str, Any]:
    """Validate and default a pod as the API server (with its default admission) would."""
    body = _check_body(body, "Pod")
    meta = dict(body.get("metadata") or {})
    if meta.get("namespace") not in (None, "", namespace):
        raise bad_request("the namespace of the provided object does not match the namespace "
                          "sent on the request")
    name = _name_or_generate(meta, "Pod", "metadata.name")
    causes: list[tuple[str, str, str]] = []
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        causes.append(("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": a '
                       "lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                       "characters, '-' or '.', and must start and end with an alphanumeric "
                       "character"))
    causes += _check_meta_maps(meta)
    spec = body.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append(("spec.containers", "FieldValueRequired", "Required value"))
        containers = []
    causes += _check_containers(containers)
    policy = spec.get("restartPolicy", "Always")
    if policy not in ("Always", "OnFailure", "Never"):
        causes.append(("spec.restartPolicy", "FieldValueNotSupported",
                       f'Unsupported value: "{policy}": supported values: "Always", '
                       '"OnFailure", "Never"'))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
        causes.append(("spec.terminationGracePeriodSeconds", "FieldValueInvalid",
                       f"Invalid value: {grace!r}: must be greater than or equal to 0"))
    causes += check_sim_annotations(meta.get("annotations") or {})
    if causes:
        raise invalid("Pod", name, causes)

    meta.update({"name": name, "namespace": namespace, "uid": new_uid(),
                 "creationTimestamp": created})
    for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                "generation", "selfLink"):
        meta.pop(key, None)
    meta["generation"] = 1
    spec = _default_pod_spec(spec, containers)
    status = {"phase": "Pending", "qosClass": qos_class(spec["containers"])}
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec,
            "status": status}


def _check_containers(containers: list[Any]) -> list[tuple[str, str, str]]:
    causes: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        if not isinstance(container, dict):
            causes.append((f"spec.containers[{i}]", "FieldValueInvalid", "must be an object"))
            continue
        cname = container.get("name")
        if not cname:
            causes.append((f"spec.containers[{i}].name", "FieldValueRequired", "Required value"))
        elif not isinstance(cname, str) or len(cname) > 63 or not _DNS_LABEL.match(cname):
            causes.append((f"spec.containers[{i}].name", "FieldValueInvalid",
                           f'Invalid value: "{cname}": must be a lowercase RFC 1123 label'))
        elif cname in seen:
            causes.append((f"spec.containers[{i}].name", "FieldValueDuplicate",
                           f'Duplicate value: "{cname}"'))
        else:
            seen.add(cname)
        if not container.get("image"):
            causes.append((f"spec.containers[{i}].image", "FieldValueRequired",
                           "Required value"))
        causes += _check_resources(container.get("resources"), f"spec.containers[{i}]")
    return causes


def _default_pod_spec(spec: dict[str, Any], containers: list[Any]) -> dict[str, Any]:
    """The spec with the API server's defaults filled in."""
    spec = dict(spec)
    spec["containers"] = [_default_container(c) for c in containers]
    if spec.get("initContainers"):
        spec["initContainers"] = [_default_container(c) for c in spec["initContainers"]]
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = list(spec.get("tolerations") or [])
    present = {(t.get("key"), t.get("effect")) for t in tolerations if isinstance(t, dict)}
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if (key, "NoExecute") not in present:
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})
    spec["tolerations"] = tolerations
    return spec


def _default_container(container: dict[str, Any]) -> dict[str, Any]:
    c = dict(container)
    image = str(c.get("image", ""))
    if "imagePullPolicy" not in c:
        tagged = "@" in image or ":" in image.rsplit("/", 1)[-1]
        latest = image.endswith(":latest") or not tagged
        c["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    resources = dict(c.get("resources") or {})
    limits = resources.get("limits") or {}
    if limits:
        requests = dict(resources.get("requests") or {})
        for res, qty in limits.items():
            requests.setdefault(res, qty)
        resources["requests"] = requests
    c["resources"] = resources
    return c


def _check_resources(resources: Any, at: str) -> list[tuple[str, str, str]]:
    causes: list[tuple[str, str, str]] = []
    if resources is None:
        return causes
    if not isinstance(resources, dict):
        return [(f"{at}.resources", "FieldValueInvalid", "must be an object")]
    for part in ("limits", "requests"):
        values = resources.get(part) or {}
        if not isinstance(values, dict):
            causes.append((f"{at}.resources.{part}", "FieldValueInvalid", "must be an object"))
            continue
        for res, qty in values.items():
            try:
                amount = parse_quantity(qty)
            except ValueError as exc:
                causes.append((f"{at}.resources.{part}[{res}]", "FieldValueInvalid",
                               f"Invalid value: {qty!r}: {exc}"))
                continue
            if amount < 0:
                causes.append((f"{at}.resources.{part}[{res}]", "FieldValueInvalid",
                               f'Invalid value: "{qty}": must be greater than or equal to 0'))
            if res == GPU_RESOURCE and amount != int(amount):
                causes.append((f"{at}.resources.{part}[{res}]", "FieldValueInvalid",
                               f'Invalid value: "{qty}": must be an integer'))
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    if isinstance(limits, dict) and isinstance(requests, dict):
        for res, qty in requests.items():
            if res in limits:
                try:
                    over = parse_quantity(qty) > parse_quantity(limits[res])
                except ValueError:
                    continue
                if over:
                    causes.append((f"{at}.resources.requests", "FieldValueInvalid",
                                   f'Invalid value: "{qty}": must be less than or equal to '
                                   f"{res} limit of {limits[res]}"))
            elif res == GPU_RESOURCE:
                causes.append((f"{at}.resources.limits", "FieldValueRequired",
                               f"Required value: Limit must be set for non overcommitable "
                               f"resources: {res}"))
    return causes


def qos_class(containers: list[dict[str, Any]]) -> str:
    """BestEffort / Guaranteed / Burstable from cpu and memory requests and limits."""
    any_set = False
    guaranteed = True
    for c in containers:
        resources = c.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        for res in ("cpu", "memory"):
            req, lim = requests.get(res), limits.get(res)
            if req is not None or lim is not None:
                any_set = True
            if lim is None or req is None or parse_quantity(req) != parse_quantity(lim):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def pod_requests(pod: Mapping[str, Any]) -> dict[str, float]:
    """Effective requests of a pod (sum of containers, at least the largest init container)."""
    def total(containers: list[dict[str, Any]], combine_max: bool) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in containers or ():
            for res, qty in ((c.get("resources") or {}).get("requests") or {}).items():
                value = float(parse_quantity(qty))
                out[res] = max(out.get(res, 0.0), value) if combine_max else \
                    out.get(res, 0.0) + value
        return out

    spec = pod.get("spec", {})
    main = total(spec.get("containers") or [], False)
    for res, value in total(spec.get("initContainers") or [], True).items():
        main[res] = max(main.get(res, 0.0), value)
    return main


def gpu_memory_steps(value: str | None) -> tuple[tuple[float, int], ...]:
    """`sim.fairway.io/gpu-memory-used`: "12Gi" (from the start), or "4Gi,30s=12Gi,60s=2Gi"
    (4 GiB from the start, 12 from 30 seconds after it, 2 from 60), as (seconds, MiB) steps.
    ValueError names what is wrong."""
    if value is None or not value.strip():
        return ()
    steps: list[tuple[float, int]] = []
    for i, part in enumerate(value.split(",")):
        at, sep, size = part.strip().partition("=")
        if not sep:
            at, size = ("0s" if i == 0 else ""), at
        if not at.endswith("s"):
            raise ValueError(f"step {part.strip()!r}: expected SECONDSs=SIZE, e.g. 30s=12Gi")
        try:
            seconds = float(at[:-1])
            mib = math.ceil(parse_quantity(size.strip()) / 2**20)
        except (ValueError, ArithmeticError):
            raise ValueError(f"step {part.strip()!r}: expected SECONDSs=SIZE, e.g. "
                             "30s=12Gi") from None
        if seconds < 0 or mib < 0 or (steps and seconds <= steps[-1][0]):
            raise ValueError(f"step {part.strip()!r}: seconds must grow and sizes be >= 0")
        steps.append((seconds, mib))
    return tuple(steps)


def gpu_activity(value: str | None) -> tuple[tuple[bool, float], ...]:
    """`sim.fairway.io/gpu-active`: "true" (the default: always active), "false" (never), or
    a time profile repeated from the start of its GPU process, "active:30s,idle:60s", as
    (active, seconds) phases; () means always active. ValueError names what is wrong."""
    if value is None or value.strip() in ("", "true"):
        return ()
    if value.strip() == "false":
        return ((False, 0.0),)
    phases: list[tuple[bool, float]] = []
    for part in value.split(","):
        kind, sep, length = part.strip().partition(":")
        if not sep or kind not in ("active", "idle") or not length.endswith("s"):
            raise ValueError(f"phase {part.strip()!r}: expected active:SECONDSs or "
                             "idle:SECONDSs, e.g. active:30s,idle:60s")
        try:
            seconds = float(length[:-1])
        except ValueError:
            raise ValueError(f"phase {part.strip()!r}: expected a number of seconds") from None
        if seconds <= 0:
            raise ValueError(f"phase {part.strip()!r}: seconds must be above 0")
        phases.append((kind == "active", seconds))
    return tuple(phases)


def active_at(phases: tuple[tuple[bool, float], ...], elapsed: float
              ) -> tuple[bool, float | None]:
    """Whether a GPU process with these phases is active `elapsed` seconds after it started,
    and in how many seconds that changes (None: never)."""
    if not phases:
        return True, None
    if len(phases) == 1 and phases[0][1] == 0:
        return phases[0][0], None
    if len({a for a, _ in phases}) == 1:
        return phases[0][0], None
    period = sum(s for _, s in phases)
    t = elapsed % period
    for i, (active, seconds) in enumerate(phases):
        if t < seconds - 1e-9:
            left = seconds - t
            for nxt, more in phases[i + 1:] + phases[:i]:
                if nxt != active:
                    return active, left
                left += more
            return active, None
        t -= seconds
    return phases[0][0], phases[0][1]


# annotations whose value is a profile over time, with the parser that checks it
SIM_PROFILE_ANNOTATIONS = {"gpu-active": gpu_activity, "gpu-memory-used": gpu_memory_steps}
SIM_NUMBER_ANNOTATIONS = ("pull-seconds", "start-seconds", "run-seconds", "oom-after-seconds")
SIM_CHOICE_ANNOTATIONS = {"image-pull": ("ok", "fail"), "crash": ("none", "loop")}


def _profile_causes(annotations: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    causes = []
    for suffix, parse in SIM_PROFILE_ANNOTATIONS.items():
        key = SIM_PREFIX + suffix
        if key in annotations:
            try:
                parse(str(annotations[key]))
            except ValueError as exc:
                causes.append((f"metadata.annotations[{key}]", "FieldValueInvalid",
                               f'Invalid value: "{annotations[key]}": {exc}'))
    return causes


def check_sim_annotations(annotations: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    causes: list[tuple[str, str, str]] = []
    for suffix in SIM_NUMBER_ANNOTATIONS:
        key = SIM_PREFIX + suffix
        if key in annotations:
            value = annotations[key]
            try:
                ok = float(value) >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                causes.append((f"metadata.annotations[{key}]", "FieldValueInvalid",
                               f'Invalid value: "{value}": must be a non-negative number of '
                               "seconds"))
    for suffix, choices in SIM_CHOICE_ANNOTATIONS.items():
        key = SIM_PREFIX + suffix
        if key in annotations and annotations[key] not in choices:
            causes.append((f"metadata.annotations[{key}]", "FieldValueNotSupported",
                           f'Unsupported value: "{annotations[key]}": supported values: '
                           + ", ".join(f'"{c}"' for c in choices)))
    key = SIM_PREFIX + "gpu-utilization"
    if key in annotations:
        value = annotations[key]
        try:
            ok = 0 <= float(value) <= 100
        except (TypeError, ValueError):
            ok = False
        if not ok:
            causes.append((f"metadata.annotations[{key}]", "FieldValueInvalid",
                           f'Invalid value: "{value}": must be a percentage from 0 to 100'))
    causes += _profile_causes(annotations)
    key = SIM_PREFIX + "exit-code"
    if key in annotations:
        value = annotations[key]
        try:
            ok = 0 <= int(value) <= 255
        except (TypeError, ValueError):
            ok = False
        if not ok:
            causes.append((f"metadata.annotations[{key}]", "FieldValueInvalid",
                           f'Invalid value: "{value}": must be an exit code from 0 to 255'))
    return causes


# Other kinds (events, leases) ---------------------------------------------------------------

def admit_object(body: Any, kind: str, api_version: str, namespace: str,
                 created: str) -> dict[str, Any]:
    """Validate and default a namespaced object of a kind without kind-specific rules."""
    if not isinstance(body, dict):
        raise bad_request(f"the body of the request must be a {kind} object")
    if body.get("kind") not in (None, "", kind):
        raise bad_request(f"the object provided is unrecognized (must be of type {kind}): "
                          f"kind {body.get('kind')!r}")
    if body.get("apiVersion") not in (None, "", api_version):
        raise bad_request(f"the API version in the data ({body.get('apiVersion')}) does not "
                          f"match the expected API version ({api_version})")
    meta = dict(body.get("metadata") or {})
    if meta.get("namespace") not in (None, "", namespace):
        raise bad_request("the namespace of the provided object does not match the namespace "
                          "sent on the request")
    name = _name_or_generate(meta, kind, "metadata.name")
    causes: list[tuple[str, str, str]] = []
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        causes.append(("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": a '
                       "lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                       "characters, '-' or '.', and must start and end with an alphanumeric "
                       "character"))
    causes += _check_meta_maps(meta)
    if causes:
        raise invalid(kind, name, causes)
    for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                "selfLink"):
        meta.pop(key, None)
    meta.update({"name": name, "namespace": namespace, "uid": new_uid(),
                 "creationTimestamp": created})
    obj = dict(body)
    obj.update({"kind": kind, "apiVersion": api_version, "metadata": meta})
    return obj


# Helpers -----------------------------------------------------------------------------------

def _check_body(body: Any, kind: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(f"the body of the request must be a {kind} object")
    body_kind = body.get("kind")
    if body_kind not in (None, "", kind):
        raise bad_request(f"the object provided is unrecognized (must be of type {kind}): "
                          f"kind {body_kind!r}")
    api_version = body.get("apiVersion")
    if api_version not in (None, "", "v1"):
        raise bad_request(f"the API version in the data ({api_version}) does not match the "
                          "expected API version (v1)")
    meta = body.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    return body


def _name_or_generate(meta: dict[str, Any], kind: str, field: str) -> str:
    name = meta.get("name")
    if name:
        if not isinstance(name, str):
            raise invalid(kind, str(name), [(field, "FieldValueInvalid", "must be a string")])
        return name
    prefix = meta.get("generateName")
    if prefix and isinstance(prefix, str):
        base = prefix[: 63 - 5] if len(prefix) > 58 else prefix
        return base + "".join(random.choices(_NAME_CHARS, k=5))
    raise invalid(kind, "", [(field, "FieldValueRequired",
                              "Required value: name or generateName is required")])


def _check_meta_maps(meta: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    causes: list[tuple[str, str, str]] = []
    for part in ("labels", "annotations"):
        values = meta.get(part)
        if values is None:
            continue
        if not isinstance(values, dict):
            causes.append((f"metadata.{part}", "FieldValueInvalid", "must be a map of strings"))
            continue
        for key, value in values.items():
            if not isinstance(value, str):
                causes.append((f"metadata.{part}", "FieldValueInvalid",
                               f"Invalid value: {key}: values must be strings"))
            elif part == "labels" and value and (len(value) > 63
                                                 or not _LABEL_NAME.match(value)):
                causes.append(("metadata.labels", "FieldValueInvalid",
                               f'Invalid value: "{value}": a valid label must be an empty '
                               "string or consist of alphanumeric characters, '-', '_' or "
                               "'.', and must start and end with an alphanumeric character"))
            prefix, _, kname = str(key).rpartition("/")
            if not kname or len(kname) > 63 or not _LABEL_NAME.match(kname) or (
                    prefix and not _DNS_SUBDOMAIN.match(prefix)):
                causes.append((f"metadata.{part}", "FieldValueInvalid",
                               f'Invalid value: "{key}": name part must consist of '
                               "alphanumeric characters, '-', '_' or '.'"))
    return causes
