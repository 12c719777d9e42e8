"""The submit form's fields and how they become the API's request body: pure, so a form's
every field maps to the spec path the API and policy name in their refusals."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TYPES = {"trainings": "training", "workspaces": "workspace", "distributed": "distributed",
         "inferences": "inference"}


@dataclass(frozen=True)
class Field:
    name: str      # the form input's name
    path: str      # where it goes in the request, as the API names it in an error
    label: str
    kind: str = "text"  # text, number, lines (one per line), pairs (name=value per line)
    help_text: str = ""  # shown under the input
    types: tuple[str, ...] = tuple(TYPES)


FIELDS = (
    Field("image", "spec.image", "Image", help_text="the container image"),
    Field("command", "spec.command", "Command"),
    Field("args", "spec.args", "Arguments"),
    Field("gpuDevicesRequest", "spec.compute.gpuDevicesRequest", "GPU devices", "number"),
    Field("gpuPortionRequest", "spec.compute.gpuPortionRequest", "GPU portion of each device",
          "number", help_text="a fraction between 0 and 1; empty: whole devices"),
    Field("cpuCoreRequest", "spec.compute.cpuCoreRequest", "CPU cores", "number"),
    Field("cpuMemoryRequest", "spec.compute.cpuMemoryRequest", "CPU memory",
          help_text="a quantity, e.g. 4Gi"),
    Field("nodePools", "spec.nodePools", "Node pools", "lines",
          help_text="one per line, in order of preference; empty: the project's defaults"),
    Field("backoffLimit", "spec.backoffLimit", "Retries (backoff limit)", "number",
          types=("trainings", "distributed")),
    Field("completions", "spec.completions", "Completions", "number", types=("trainings",)),
    Field("numWorkers", "spec.numWorkers", "Workers", "number", types=("distributed",)),
    Field("distributedFramework", "spec.distributedFramework", "Framework",
          help_text="MPI, PyTorch, TF, XGBoost or JAX", types=("distributed",)),
    Field("servingPort", "spec.servingPort.container", "Serving port", "number",
          types=("inferences",)),
    Field("environmentVariables", "spec.environmentVariables", "Environment", "pairs",
          help_text="NAME=value, one per line"),
    Field("annotations", "spec.annotations", "Annotations", "pairs",
          help_text="name=value, one per line"),
)


def fields_of(plural: str) -> list[Field]:
    return [f for f in FIELDS if plural in f.types]


def _number(text: str) -> int | float | str:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text  # the API names the field and says it is not a number


def _pairs(text: str, field: Field) -> list[dict[str, str]]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, _, value = line.partition("=")
        out.append({"name": name.strip(), "value": value.strip()})
    return out


def _set(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        body = body.setdefault(key, {})
    body[last] = value


def request_body(plural: str, form: Mapping[str, str]) -> dict[str, Any]:
    """The API's request from the form: empty inputs are left out (policy fills defaults)."""
    body: dict[str, Any] = {"name": form.get("name", "").strip(),
                            "projectId": form.get("projectId", "").strip(), "spec": {}}
    for field in fields_of(plural):
        text = (form.get(field.name) or "").strip()
        if not text:
            continue
        if field.kind == "number":
            value: Any = _number(text)
        elif field.kind == "lines":
            value = [line.strip() for line in text.splitlines() if line.strip()]
        elif field.kind == "pairs":
            value = _pairs(text, field)
        else:
            value = text
        _set(body, field.path, value)
    compute = body["spec"].get("compute", {})
    if "gpuPortionRequest" in compute:
        compute.setdefault("gpuRequestType", "portion")
    return body


def field_for(path: str, plural: str) -> str:
    """The form input an API problem's field path belongs to ('' : none, shown on top).
    A problem inside a field (annotations[0].name) belongs to the field."""
    for field in fields_of(plural):
        if path == field.path or path.startswith((field.path + ".", field.path + "[")):
            return field.name
    for name in ("name", "projectId"):
        if path == name:
            return name
    return ""


def policy_hints(effective: Mapping[str, Any] | None, plural: str
                 ) -> dict[str, dict[str, Any]]:
    """Per form input, what the effective policy says of it: its default, its rules (min,
    max, options, required) and whether it is locked (canEdit false, or imposed)."""
    hints: dict[str, dict[str, Any]] = {}
    if not effective:
        return hints
    flat: dict[str, dict[str, Any]] = {}
    for part in ("defaults", "rules", "imposed"):
        _flatten(effective.get(part) or {}, "spec", part, flat)
    for path, said in flat.items():
        name = field_for(path, plural)
        if name:
            hints.setdefault(name, {}).update(said)
    for said in hints.values():
        rules = said.get("rules") or {}
        said["locked"] = "imposed" in said or rules.get("canEdit") is False
    return hints


RULE_KEYS = {"canEdit", "required", "min", "max", "step", "options", "canAdd", "locked"}


def _flatten(tree: Mapping[str, Any], prefix: str, part: str,
             out: dict[str, dict[str, Any]]) -> None:
    """defaults/imposed: path → value; rules: path → its rule object. A value may come as
    {value, source} (the effective policy says which scope set it)."""
    for key, value in tree.items():
        path = f"{prefix}.{key}"
        if part == "rules" and isinstance(value, Mapping) and set(value) & RULE_KEYS:
            out.setdefault(path, {})["rules"] = dict(value)
        elif isinstance(value, Mapping) and not ({"value", "source"} >= set(value)
                                                 and "value" in value):
            _flatten(value, path, part, out)
        else:
            if isinstance(value, Mapping):
                value = value["value"]
            out.setdefault(path, {})[part.rstrip("s") if part != "imposed" else part] = value


# organisation: a department's or project's GPU quota per node pool --------------------------

QUOTA_FIGURES = (("deserved", "Deserved GPUs"), ("limit", "Limit (empty: none)"),
                 ("overQuotaWeight", "Over-quota weight"))


def quota_input(pool: str, figure: str) -> str:
    return f"gpu-{pool}-{figure}"


def quota_resources(form: Mapping[str, str], pools: list[str],
                    existing: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The `resources` list from the form's GPU figures per pool; the CPU and memory quotas
    it already had are kept as they were. A pool whose inputs are all empty has no quota."""
    kept = {r["nodePool"]["name"]: r for r in existing}
    out = []
    for pool in pools:
        figures = {f: (form.get(quota_input(pool, f)) or "").strip() for f, _ in QUOTA_FIGURES}
        if not any(figures.values()) and pool not in kept:
            continue
        gpu: dict[str, Any] = {}
        for figure, text in figures.items():
            if text:
                gpu[figure] = _number(text)
        if not figures["limit"]:
            gpu["limit"] = None
        entry = {key: value for key, value in (kept.get(pool) or {}).items()
                 if key in ("cpu", "memory")}
        out.append({"nodePool": {"name": pool}, **entry, "gpu": gpu})
    return out


def quota_field(path: str, resources: list[Mapping[str, Any]]) -> str:
    """The input an API problem about `resources[i].gpu.<figure>` belongs to ('' : none)."""
    for i, entry in enumerate(resources):
        for figure, _ in QUOTA_FIGURES:
            if path == f"resources[{i}].gpu.{figure}":
                return quota_input(entry["nodePool"]["name"], figure)
    return "name" if path == "name" else ""
