"""Workload kinds and their admission: `batch/v1` Jobs, `apps/v1` Deployments, ReplicaSets and
StatefulSets, and Kubeflow's `kubeflow.org/v1` PyTorchJob (served built in, as if its CRD were
installed).

Admission validates and defaults as the API server does (422 causes naming the field): a pod
template with containers, non-negative counts, a selector that matches the template's labels
(`apps/v1`), the restart policies each kind allows, Job's generated selector and labels. The
controllers that make pods of them are in `controllers`, their REST handlers in `workloads_api`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .errors import invalid
from .objects import _check_containers, check_sim_annotations

BATCH, BATCH_V1 = "batch", "batch/v1"
APPS, APPS_V1 = "apps", "apps/v1"
KUBEFLOW, KUBEFLOW_V1 = "kubeflow.org", "kubeflow.org/v1"
AUTOSCALING_V1 = "autoscaling/v1"

# Labels a Job's pods carry (and its generated selector matches), as the API server sets them.
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
POD_TEMPLATE_HASH = "pod-template-hash"
PYTORCH_REPLICA_TYPES = ("Master", "Worker")

Cause = tuple[str, str, str]

# plural -> (kind, group, apiVersion, short names, has a scale subresource)
KINDS: dict[str, tuple[str, str, str, list[str], bool]] = {
    "jobs": ("Job", BATCH, BATCH_V1, [], False),
    "deployments": ("Deployment", APPS, APPS_V1, ["deploy"], True),
    "replicasets": ("ReplicaSet", APPS, APPS_V1, ["rs"], True),
    "statefulsets": ("StatefulSet", APPS, APPS_V1, ["sts"], True),
    "pytorchjobs": ("PyTorchJob", KUBEFLOW, KUBEFLOW_V1, [], False),
}
KIND_PLURALS = {kind: plural for plural, (kind, *_rest) in KINDS.items()}


def _docs(group_version: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    for plural, (kind, _group, api_version, short, scale) in KINDS.items():
        if api_version != group_version:
            continue
        doc: dict[str, Any] = {"name": plural, "singularName": kind.lower(), "namespaced": True,
                               "kind": kind, "verbs": verbs}
        if short:
            doc["shortNames"] = short
        if api_version != KUBEFLOW_V1:
            doc["categories"] = ["all"]
        docs.append(doc)
        docs.append({"name": plural + "/status", "singularName": "", "namespaced": True,
                     "kind": kind, "verbs": ["get", "patch", "update"]})
        if scale:
            docs.append({"name": plural + "/scale", "singularName": "", "namespaced": True,
                         "group": "autoscaling", "version": "v1", "kind": "Scale",
                         "verbs": ["get", "patch", "update"]})
    return docs


GROUP_DOCS = {gv: _docs(gv) for gv in (BATCH_V1, APPS_V1, KUBEFLOW_V1)}
GROUPS = [{"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": "v1"}],
           "preferredVersion": {"groupVersion": gv, "version": "v1"}} for gv in GROUP_DOCS]


def add_workload_resources(store: Any) -> None:
    for plural, (kind, group, api_version, _short, _scale) in KINDS.items():
        store.add(plural, kind, namespaced=True, api_version=api_version, group=group)


# Admission ---------------------------------------------------------------------------------

def _count_causes(value: Any, at: str, required: bool = False) -> list[Cause]:
    if value is None:
        return [(at, "FieldValueRequired", "Required value")] if required else []
    if isinstance(value, bool) or not isinstance(value, int):
        return [(at, "FieldValueInvalid", f"Invalid value: {value!r}: must be an integer")]
    if value < 0:
        return [(at, "FieldValueInvalid",
                 f"Invalid value: {value}: must be greater than or equal to 0")]
    return []


def template_causes(template: Any, at: str, policies: tuple[str, ...]) -> list[Cause]:
    """A pod template as the API server checks it; `policies` are the restart policies the
    owning kind allows (a Job's pods may not restart Always, a Deployment's must)."""
    if not isinstance(template, dict):
        return [(at, "FieldValueRequired", "Required value")]
    causes: list[Cause] = []
    meta = template.get("metadata") or {}
    if not isinstance(meta, dict):
        return [(f"{at}.metadata", "FieldValueInvalid", "must be an object")]
    causes += [(f"{at}.{f}", r, m) for f, r, m in check_sim_annotations(
        meta.get("annotations") or {})]
    spec = template.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers:
        return [*causes, (f"{at}.spec.containers", "FieldValueRequired", "Required value")]
    causes += [(f"{at}.{f}", r, m) for f, r, m in _check_containers(containers)]
    policy = spec.get("restartPolicy", "Always")
    if policy not in policies:
        allowed = ", ".join(f'"{p}"' for p in policies)
        causes.append((f"{at}.spec.restartPolicy", "FieldValueNotSupported",
                       f'Unsupported value: "{policy}": supported values: {allowed}'))
    return causes


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels and matchExpressions) against labels; an empty
    selector selects nothing, as for the controllers of kube-controller-manager."""
    if not selector:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if (op == "In" and labels.get(key) not in values) or (
                op == "NotIn" and present and labels[key] in values) or (
                op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def _selector_causes(spec: Mapping[str, Any]) -> list[Cause]:
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels")
                                              or selector.get("matchExpressions")):
        return [("spec.selector", "FieldValueRequired", "Required value")]
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector_matches(selector, labels):
        return [("spec.template.metadata.labels", "FieldValueInvalid",
                 f"Invalid value: {labels!r}: `selector` does not match template `labels`")]
    return []


def admit_workload(obj: dict[str, Any]) -> None:
    """Check and default a workload object made by `objects.admit_object` (raises 422)."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise invalid(kind, name, [("spec", "FieldValueRequired", "Required value")],
                      _group(kind))
    causes = _CHECKS[kind](obj, spec)
    if causes:
        raise invalid(kind, name, causes, _group(kind))
    obj["metadata"]["generation"] = 1
    # status.replicas is a required field of these kinds (clients refuse a status without it)
    obj["status"] = {"replicas": 0} if kind in ("ReplicaSet", "StatefulSet") else {}


def _group(kind: str) -> str:
    return KINDS[KIND_PLURALS[kind]][1]


def _job(obj: dict[str, Any], spec: dict[str, Any]) -> list[Cause]:
    causes = template_causes(spec.get("template"), "spec.template", ("OnFailure", "Never"))
    for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        causes += _count_causes(spec.get(key), f"spec.{key}")
    mode = spec.get("completionMode", "NonIndexed")
    if mode != "NonIndexed":
        causes.append(("spec.completionMode", "FieldValueNotSupported",
                       f'Unsupported value: "{mode}": supported values: "NonIndexed" '
                       "(kubesim has no Indexed Jobs)"))
    if causes:
        return causes
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
    if spec.get("manualSelector") is not True:  # the API server's generated selector
        spec["selector"] = {"matchLabels": {JOB_UID_LABEL: uid}}
        template = spec["template"]
        meta = template.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), JOB_UID_LABEL: uid,
                          JOB_NAME_LABEL: name, LEGACY_JOB_UID_LABEL: uid,
                          LEGACY_JOB_NAME_LABEL: name}
    else:
        causes += _selector_causes(spec)
    return causes


def _apps(kind: str) -> Any:
    def check(obj: dict[str, Any], spec: dict[str, Any]) -> list[Cause]:
        causes = template_causes(spec.get("template"), "spec.template", ("Always",))
        causes += _count_causes(spec.get("replicas"), "spec.replicas")
        causes += _selector_causes(spec) if not causes else []
        if kind == "StatefulSet":
            policy = spec.get("podManagementPolicy", "OrderedReady")
            if policy not in ("OrderedReady", "Parallel"):
                causes.append(("spec.podManagementPolicy", "FieldValueNotSupported",
                               f'Unsupported value: "{policy}": supported values: '
                               '"OrderedReady", "Parallel"'))
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("serviceName", "")
        spec.setdefault("replicas", 1)
        if kind == "Deployment":
            spec.setdefault("strategy", {"type": "RollingUpdate"})
            spec.setdefault("revisionHistoryLimit", 10)
        return causes
    return check


def _pytorch(obj: dict[str, Any], spec: dict[str, Any]) -> list[Cause]:
    replicas = spec.get("pytorchReplicaSpecs")
    at = "spec.pytorchReplicaSpecs"
    if not isinstance(replicas, dict) or not replicas:
        return [(at, "FieldValueRequired", "Required value")]
    causes: list[Cause] = []
    for rtype, rspec in replicas.items():
        where = f"{at}.{rtype}"
        if rtype not in PYTORCH_REPLICA_TYPES:
            causes.append((where, "FieldValueNotSupported", f'Unsupported value: "{rtype}": '
                           'supported values: "Master", "Worker"'))
            continue
        if not isinstance(rspec, dict):
            causes.append((where, "FieldValueInvalid", "must be an object"))
            continue
        rspec.setdefault("replicas", 1)
        causes += _count_causes(rspec["replicas"], f"{where}.replicas")
        if rtype == "Master" and rspec["replicas"] != 1:
            causes.append((f"{where}.replicas", "FieldValueInvalid",
                           f"Invalid value: {rspec['replicas']!r}: a PyTorchJob has exactly 1 "
                           "Master replica"))
        policy = rspec.setdefault("restartPolicy", "OnFailure")
        if policy not in ("Always", "OnFailure", "Never", "ExitCode"):
            causes.append((f"{where}.restartPolicy", "FieldValueNotSupported",
                           f'Unsupported value: "{policy}": supported values: "Always", '
                           '"OnFailure", "Never", "ExitCode"'))
        causes += template_causes(rspec.get("template"), f"{where}.template",
                                  ("Always", "OnFailure", "Never"))
    run = spec.setdefault("runPolicy", {})
    if not isinstance(run, dict):
        return [*causes, ("spec.runPolicy", "FieldValueInvalid", "must be an object")]
    clean = run.setdefault("cleanPodPolicy", "None")
    if clean not in ("None", "Running", "All"):
        causes.append(("spec.runPolicy.cleanPodPolicy", "FieldValueNotSupported",
                       f'Unsupported value: "{clean}": supported values: "None", "Running", '
                       '"All"'))
    return causes


_CHECKS = {"Job": _job, "Deployment": _apps("Deployment"), "ReplicaSet": _apps("ReplicaSet"),
           "StatefulSet": _apps("StatefulSet"), "PyTorchJob": _pytorch}


def update_causes(old: Mapping[str, Any], new: dict[str, Any]) -> list[Cause]:
    """What an update may not change (the fields the API server keeps immutable), and the
    checks a create makes, on the new object."""
    kind = old["kind"]
    spec, old_spec = new.get("spec"), old.get("spec") or {}
    if not isinstance(spec, dict):
        return [("spec", "FieldValueRequired", "Required value")]
    causes: list[Cause] = []
    if kind in ("Job", "Deployment", "ReplicaSet", "StatefulSet") and \
            spec.get("selector", old_spec.get("selector")) != old_spec.get("selector"):
        causes.append(("spec.selector", "FieldValueInvalid", "Invalid value: field is "
                       "immutable"))
    spec.setdefault("selector", copy.deepcopy(old_spec.get("selector")))
    if kind == "Job":
        for key in ("template", "completions", "completionMode"):
            if spec.get(key, old_spec.get(key)) != old_spec.get(key):
                causes.append((f"spec.{key}", "FieldValueInvalid", "Invalid value: field is "
                               "immutable"))
        for key in ("template", "completions", "completionMode", "backoffLimit"):
            spec.setdefault(key, copy.deepcopy(old_spec.get(key)))
    if causes:
        return causes
    obj = dict(new, metadata=dict(new["metadata"], uid=old["metadata"]["uid"]))
    return _CHECKS[kind](obj, spec)
