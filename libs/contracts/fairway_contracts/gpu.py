"""GPU requests as the API takes them (camelCase `compute`): whole devices or a fraction of each.

Submission checks them at the door and policy again after its defaults and rules (a policy's
default portion can meet a submitted memory request), with the same words; both keep the normal
form (`normal_gpu_request`) the effective spec carries. Pure.

- whole devices: `gpuDevicesRequest` N, no fraction field;
- a portion of each of `gpuDevicesRequest` devices (default 1) of one node:
  `gpuPortionRequest` (0-1], optionally `gpuPortionLimit` >= it (a dynamic fraction);
- an amount of the memory of one device: `gpuMemoryRequest`, optionally `gpuMemoryLimit` >= it;
  on one device only (share several devices by portion);
- `gpuRequestType` names which ("portion" | "memory"); inferred when absent.
"""

from collections.abc import Mapping
from typing import Any

from fairway_contracts.quantities import parse_quantity

Problem = tuple[str, str]  # (field under compute, reason)


def _size(value: Any) -> float | None:
    try:
        return float(parse_quantity(value))
    except (TypeError, ValueError):
        return None  # the field's own validation says why


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def gpu_request_problems(compute: Mapping[str, Any]) -> list[Problem]:
    """Every problem of the GPU part of `compute`, as (field, reason)."""
    return [*_kind_problems(compute), *_portion_problems(compute),
            *_memory_problems(compute), *_device_problems(compute)]


def _kind_problems(compute: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    kind = compute.get("gpuRequestType")
    portion, memory = compute.get("gpuPortionRequest"), compute.get("gpuMemoryRequest")
    if kind is not None and kind not in ("portion", "memory"):
        problems.append(("gpuRequestType", f"must be 'portion' or 'memory', not {kind!r}"))
    if portion is not None and memory is not None:
        problems.append(("gpuMemoryRequest", "give a GPU portion or GPU memory, not both"))
    if portion is not None and kind == "memory":
        problems.append(("gpuRequestType",
                         "is 'memory' but gpuPortionRequest is set; use 'portion'"))
    if memory is not None and kind == "portion":
        problems.append(("gpuRequestType",
                         "is 'portion' but gpuMemoryRequest is set; use 'memory'"))
    if kind == "portion" and portion is None:
        problems.append(("gpuPortionRequest", "is required when gpuRequestType is 'portion'"))
    if kind == "memory" and memory is None:
        problems.append(("gpuMemoryRequest", "is required when gpuRequestType is 'memory'"))
    return problems


def _portion_problems(compute: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    portion, portion_limit = compute.get("gpuPortionRequest"), compute.get("gpuPortionLimit")
    value, limit = _number(portion), _number(portion_limit)
    if value is not None and not 0 < value <= 1:
        problems.append(("gpuPortionRequest",
                         f"must be above 0 and at most 1 (a share of one GPU), not {value:g}"))
    if portion_limit is None:
        return problems
    if portion is None:
        problems.append(("gpuPortionLimit", "needs a gpuPortionRequest"))
    elif limit is not None and not 0 < limit <= 1:
        problems.append(("gpuPortionLimit", f"must be above 0 and at most 1, not {limit:g}"))
    elif limit is not None and value is not None and limit < value:
        problems.append(("gpuPortionLimit", f"must be at least gpuPortionRequest ({value:g})"))
    return problems


def _memory_problems(compute: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    memory, memory_limit = compute.get("gpuMemoryRequest"), compute.get("gpuMemoryLimit")
    size = _size(memory) if memory is not None else None
    if size is not None and size <= 0:
        problems.append(("gpuMemoryRequest", f"must be more than 0, not {memory!r}"))
    if memory_limit is None:
        return problems
    if memory is None:
        problems.append(("gpuMemoryLimit", "needs a gpuMemoryRequest"))
    else:
        cap = _size(memory_limit)
        if cap is not None and size is not None and cap < size:
            problems.append(("gpuMemoryLimit", f"must be at least gpuMemoryRequest ({memory})"))
    return problems


def _device_problems(compute: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    memory = compute.get("gpuMemoryRequest")
    fraction = (compute.get("gpuPortionRequest") is not None or memory is not None
                or compute.get("gpuRequestType") in ("portion", "memory"))
    devices = _number(compute.get("gpuDevicesRequest"))
    if fraction and devices is not None and devices < 1:
        problems.append(("gpuDevicesRequest",
                         f"must be at least 1 with a GPU fraction (the devices shared), not "
                         f"{devices:g}; leave it out for one"))
    if memory is not None and devices is not None and devices > 1:
        problems.append(("gpuDevicesRequest",
                         f"a GPU memory request shares one device, not {devices:g}; share "
                         "several devices with gpuPortionRequest"))
    return problems


def normal_gpu_request(compute: Mapping[str, Any]) -> dict[str, Any]:
    """`compute` in the effective spec's normal form (assumes no problems): a fraction has its
    request type and at least one device; whole devices carry no fraction field."""
    out = dict(compute)
    if out.get("gpuPortionRequest") is not None:
        out["gpuRequestType"] = "portion"
    elif out.get("gpuMemoryRequest") is not None:
        out["gpuRequestType"] = "memory"
    else:
        for key in ("gpuRequestType", "gpuPortionLimit", "gpuMemoryLimit"):
            out.pop(key, None)
        return out
    if not out.get("gpuDevicesRequest"):
        out["gpuDevicesRequest"] = 1
    return out
