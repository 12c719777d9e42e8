"""The spec fields a policy may name, by their path in the workload spec, with their kind (which
decides the values they take and the rules that apply to them) and the workload types whose spec
has them."""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fairway_contracts.quantities import SIZE_PATTERN, quantity_value
from fairway_contracts.workloads import WorkloadType

INTEGER, NUMBER, QUANTITY, STRING, BOOLEAN, ITEMIZED, STRINGS = (
    "integer", "number", "quantity", "string", "boolean", "itemized", "strings")

RULES_BY_KIND: Mapping[str, frozenset[str]] = {
    INTEGER: frozenset({"canEdit", "required", "min", "max", "step"}),
    NUMBER: frozenset({"canEdit", "required", "min", "max", "step"}),
    QUANTITY: frozenset({"canEdit", "required", "min", "max"}),
    STRING: frozenset({"canEdit", "required", "options"}),
    BOOLEAN: frozenset({"canEdit", "required"}),
    ITEMIZED: frozenset({"canEdit", "required", "canAdd", "locked"}),
    STRINGS: frozenset({"canEdit", "required"}),
}

_ALL = frozenset(WorkloadType)
_T, _D, _I = (frozenset({WorkloadType.TRAINING}), frozenset({WorkloadType.DISTRIBUTED}),
              frozenset({WorkloadType.INFERENCE}))


@dataclass(frozen=True)
class FieldSpec:
    kind: str
    types: frozenset[WorkloadType] = _ALL


# Every spec field a policy may name, by its path in the workload spec.
FIELDS: Mapping[str, FieldSpec] = {
    "image": FieldSpec(STRING),
    "command": FieldSpec(STRING),
    "args": FieldSpec(STRING),
    "environmentVariables": FieldSpec(ITEMIZED),
    "annotations": FieldSpec(ITEMIZED),
    "labels": FieldSpec(ITEMIZED),
    "compute.gpuDevicesRequest": FieldSpec(INTEGER),
    "compute.gpuRequestType": FieldSpec(STRING),
    "compute.gpuPortionRequest": FieldSpec(NUMBER),
    "compute.gpuPortionLimit": FieldSpec(NUMBER),
    "compute.gpuMemoryRequest": FieldSpec(QUANTITY),
    "compute.gpuMemoryLimit": FieldSpec(QUANTITY),
    "compute.cpuCoreRequest": FieldSpec(NUMBER),
    "compute.cpuCoreLimit": FieldSpec(NUMBER),
    "compute.cpuMemoryRequest": FieldSpec(QUANTITY),
    "compute.cpuMemoryLimit": FieldSpec(QUANTITY),
    "nodePools": FieldSpec(STRINGS),
    "nodeType": FieldSpec(STRING),
    "topology.requiredPlacement": FieldSpec(STRING),
    "topology.preferredPlacement": FieldSpec(STRING),
    "priorityClass": FieldSpec(STRING),
    "preemptibility": FieldSpec(STRING),
    "backoffLimit": FieldSpec(INTEGER),
    "restartPolicy": FieldSpec(STRING),
    "terminateAfterPreemption": FieldSpec(BOOLEAN),
    "autoDeletionTimeAfterCompletionSeconds": FieldSpec(INTEGER),
    "completions": FieldSpec(INTEGER, _T),
    "parallelism": FieldSpec(INTEGER, _T),
    "distributedFramework": FieldSpec(STRING, _D),
    "numWorkers": FieldSpec(INTEGER, _D),
    "minReplicas": FieldSpec(INTEGER, _D),
    "maxReplicas": FieldSpec(INTEGER, _D),
    "masterSpecSameAsWorker": FieldSpec(BOOLEAN, _D),
    "servingPort.container": FieldSpec(INTEGER, _I),
    "servingPort.protocol": FieldSpec(STRING, _I),
    "servingPort.authorizationType": FieldSpec(STRING, _I),
    "servingPort.clusterLocalAccessOnly": FieldSpec(BOOLEAN, _I),
    "autoscaling.minReplicas": FieldSpec(INTEGER, _I),
    "autoscaling.maxReplicas": FieldSpec(INTEGER, _I),
    "autoscaling.metric": FieldSpec(STRING, _I),
    "autoscaling.metricThreshold": FieldSpec(NUMBER, _I),
    "autoscaling.initializationTimeoutSeconds": FieldSpec(INTEGER, _I),
    "autoscaling.scaleToZeroRetentionSeconds": FieldSpec(INTEGER, _I),
}
# Fields that became objects: a policy written for the old shape names the object itself with
# a leaf's value or rules (`servingPort: 8000`, `servingPort: {min: 8000}`), and means the field
# below it that carries the old meaning.
RENAMED: Mapping[str, str] = {"servingPort": "servingPort.container"}
# Objects of the spec that hold catalogued fields (`compute`, `autoscaling`).
GROUPS = frozenset(path.rsplit(".", 1)[0] for path in FIELDS if "." in path)

# A quantity in a policy has the spec's own form for sizes (512Mi, 2G).
_SIZE = re.compile(SIZE_PATTERN)


def check_value(value: Any, kind: str) -> tuple[bool, Any]:
    """(True, the value normalised) or (False, the reason)."""
    if kind == ITEMIZED:
        return _check_items(value)
    if kind == INTEGER:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (True, value) if ok else (False, "must be a whole number")
    if kind == NUMBER:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
            value)
        return (True, value) if ok else (False, "must be a number")
    if kind == QUANTITY:
        if not isinstance(value, str) or not _SIZE.match(value):
            return False, "must be a quantity like 512Mi or 2G"
        return True, value
    if kind == STRING:
        return (True, value) if isinstance(value, str) else (False, "must be a string")
    if kind == BOOLEAN:
        return (True, value) if isinstance(value, bool) else (False, "must be true or false")
    ok = isinstance(value, list) and all(isinstance(v, str) for v in value)  # STRINGS
    return (True, value) if ok else (False, "must be a list of strings")


def _check_items(value: Any) -> tuple[bool, Any]:
    """An itemized value: [{name, value}], or Run:ai's {"instances": [...]}."""
    if isinstance(value, Mapping) and set(value) <= {"instances"}:
        value = value.get("instances") or []
    if not isinstance(value, list):
        return False, "must be a list of {name, value}"
    items, names = [], set()
    for item in value:
        if (not isinstance(item, Mapping) or not isinstance(item.get("name"), str)
                or not item["name"] or not isinstance(item.get("value", ""), str)):
            return False, "each item needs a name and a string value"
        if item["name"] in names:
            return False, f"{item['name']!r} is listed twice"
        names.add(item["name"])
        items.append({"name": item["name"], "value": item.get("value", "")})
    return True, items


def number(value: Any) -> float:
    """A numeric or quantity field's value as a number, to compare with a rule's bounds.
    ValueError (or TypeError) when it is neither."""
    return quantity_value(value) if isinstance(value, str) else float(value)
