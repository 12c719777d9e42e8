"""Policies per scope: checked, merged along a branch, and applied to a submitted spec. Pure.

A policy names fields by their path in the workload `spec` (`compute.gpuDevicesRequest`,
`image`, `environmentVariables`) and holds three things per field, as Run:ai's do:

- `defaults`: filled in when the submission leaves the field out. Several scopes may set one;
  the lowest (cluster → department → project) wins. Lists keyed by name (environment variables,
  annotations, labels) merge item by item.
- `rules`: what a submission may do with the field, by the field's type (`canEdit`,
  `required`, `min`, `max`, `step`, `options`; `canAdd` and `locked` for lists keyed by name).
  A field carries rules at one level of a branch only, so nobody below can loosen them and
  nobody above is silently overridden.
- `imposed`: values that replace whatever was submitted; held by one level only, like rules.

`apply` runs defaults, then the submitted values, then the rules, then the imposed values, and
reports every violated rule with the field, the value, the rule and the scope that set it.
"""

import copy
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fairway_contracts.events import Violation
from fairway_contracts.workloads import WorkloadType

LEVELS = {"cluster": 0, "department": 1, "project": 2}
SECTIONS = ("defaults", "rules", "imposed")


@dataclass(frozen=True)
class Scope:
    kind: str  # cluster | department | project
    id: str | None = None
    name: str | None = None

    @property
    def level(self) -> int:
        return LEVELS[self.kind]

    @property
    def key(self) -> tuple[str, str | None]:
        """Identity without the name (a stored name may be older than the current one)."""
        return self.kind, self.id

    @property
    def label(self) -> str:
        if self.kind == "cluster":
            return "cluster"
        return f"{self.kind} {self.name or self.id}"

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scope": self.kind}
        if self.kind != "cluster":
            out[f"{self.kind}Id"] = self.id
            if self.name:
                out[f"{self.kind}Name"] = self.name
        return out


# field catalogue ---------------------------------------------------------------------------

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
    "servingPort": FieldSpec(INTEGER, _I),
    "autoscaling.minReplicas": FieldSpec(INTEGER, _I),
    "autoscaling.maxReplicas": FieldSpec(INTEGER, _I),
    "autoscaling.metric": FieldSpec(STRING, _I),
    "autoscaling.metricThreshold": FieldSpec(NUMBER, _I),
}
_GROUPS = frozenset(path.rsplit(".", 1)[0] for path in FIELDS if "." in path)

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|[KMGTP]i?)?$")
_UNITS = {None: 1, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


def quantity(value: str) -> float:
    match = _QUANTITY.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a quantity like 512Mi or 2G")
    return float(match[1]) * _UNITS[match[2]]


# a policy document, checked ---------------------------------------------------------------

@dataclass(frozen=True)
class Policy:
    """One scope's policy, flattened to field paths. Itemized defaults and imposed values are
    lists of {"name", "value"}; options are plain values."""

    defaults: Mapping[str, Any] = field(default_factory=dict)
    rules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    imposed: Mapping[str, Any] = field(default_factory=dict)

    def constrained(self) -> set[str]:
        """Fields this scope holds rules or imposed values for."""
        return set(self.rules) | set(self.imposed)

    def document(self) -> dict[str, Any]:
        """The nested JSON shape the API shows (and the shape `parse` reads)."""
        return {section: _nest(getattr(self, section)) for section in SECTIONS}


Problem = dict[str, str]


def parse(document: Any, workload_type: WorkloadType) -> tuple[Policy, list[Problem]]:
    """A policy from its JSON shape, with every problem named by its path (`policy.rules.
    compute.gpuDevicesRequest.max`). Fields outside the workload type's spec are refused."""
    problems: list[Problem] = []
    if not isinstance(document, Mapping):
        return Policy(), [{"field": "policy", "reason": "must be an object with defaults, "
                                                        "rules and imposed"}]
    for key in document:
        if key not in SECTIONS:
            problems.append({"field": f"policy.{key}", "reason": "is not a known section; use "
                                                                 "defaults, rules or imposed"})
    sections: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        leaves = _flatten(document.get(section) or {}, f"policy.{section}", problems,
                          rules=section == "rules")
        checked: dict[str, Any] = {}
        for path, value in leaves.items():
            at = f"policy.{section}.{path}"
            spec = FIELDS[path]
            if workload_type not in spec.types:
                problems.append({"field": at, "reason": f"is not part of a {workload_type.value}"
                                                        " spec"})
                continue
            if section == "rules":
                rule = _check_rule(value, spec.kind, at, problems)
                if rule:
                    checked[path] = rule
            else:
                ok, normal = _check_value(value, spec.kind)
                if ok:
                    checked[path] = normal
                else:
                    problems.append({"field": at, "reason": normal})
        sections[section] = checked
    return Policy(**sections), problems


def _flatten(tree: Any, at: str, problems: list[Problem], *, rules: bool,
             prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, Mapping):
        problems.append({"field": at, "reason": "must be an object keyed by spec field"})
        return {}
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if path in FIELDS:
            leaves[path] = value
        elif path in _GROUPS and isinstance(value, Mapping):
            leaves.update(_flatten(value, f"{at}.{key}", problems, rules=rules,
                                   prefix=f"{path}."))
        else:
            problems.append({"field": f"{at}.{key}", "reason": "is not a spec field a policy "
                                                              "can name"})
    return leaves


def _check_value(value: Any, kind: str) -> tuple[bool, Any]:
    """(True, the value normalised) or (False, the reason)."""
    if kind == INTEGER:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (True, value) if ok else (False, "must be a whole number")
    if kind == NUMBER:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
            value)
        return (True, value) if ok else (False, "must be a number")
    if kind == QUANTITY:
        if not isinstance(value, str) or not _QUANTITY.match(value):
            return False, "must be a quantity like 512Mi or 2G"
        return True, value
    if kind == STRING:
        return (True, value) if isinstance(value, str) else (False, "must be a string")
    if kind == BOOLEAN:
        return (True, value) if isinstance(value, bool) else (False, "must be true or false")
    if kind == STRINGS:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return (True, value) if ok else (False, "must be a list of strings")
    # itemized: [{name, value}], or Run:ai's {"instances": [...]}
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


def _check_rule(rule: Any, kind: str, at: str, problems: list[Problem]) -> dict[str, Any]:
    if not isinstance(rule, Mapping) or not rule:
        problems.append({"field": at, "reason": "must be an object of rules, e.g. "
                                                '{"max": 4} or {"canEdit": false}'})
        return {}
    allowed = RULES_BY_KIND[kind]
    out: dict[str, Any] = {}
    for name, value in rule.items():
        where = f"{at}.{name}"
        if name not in allowed:
            problems.append({"field": where, "reason": f"is not a rule for a {kind} field; "
                                                       f"use {', '.join(sorted(allowed))}"})
        elif name in ("canEdit", "required", "canAdd"):
            if isinstance(value, bool):
                out[name] = value
            else:
                problems.append({"field": where, "reason": "must be true or false"})
        elif name in ("min", "max"):
            ok, normal = _check_value(value, kind)
            if ok:
                out[name] = normal
            else:
                problems.append({"field": where, "reason": normal})
        elif name == "step":
            if _check_value(value, NUMBER)[0] and value > 0:
                out[name] = value
            else:
                problems.append({"field": where, "reason": "must be a number above 0"})
        elif name == "options":
            values = [o.get("value") if isinstance(o, Mapping) else o
                      for o in (value if isinstance(value, list) else [])]
            if not values or not all(_check_value(v, kind)[0] for v in values):
                problems.append({"field": where, "reason": "must be a non-empty list of "
                                                           '{"value": …} of the field\'s type'})
            else:
                out[name] = values
        elif name == "locked":
            if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
                out[name] = value
            else:
                problems.append({"field": where, "reason": "must be a list of names"})
    if "min" in out and "max" in out and _number(out["min"]) > _number(out["max"]):
        problems.append({"field": f"{at}.min", "reason": f"is above max ({out['max']})"})
    return out


def _number(value: Any) -> float:
    return quantity(value) if isinstance(value, str) else float(value)


# merging along a branch --------------------------------------------------------------------

@dataclass(frozen=True)
class Sourced:
    value: Any
    scope: Scope


@dataclass(frozen=True)
class EffectivePolicy:
    """The policy that applies in one place, each entry with the scope that set it. Itemized
    defaults are kept per item, keyed `path[name]`."""

    defaults: Mapping[str, Sourced] = field(default_factory=dict)
    rules: Mapping[str, Sourced] = field(default_factory=dict)
    imposed: Mapping[str, Sourced] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        """The API's shape: nested values per section, and the source of each entry."""
        defaults: dict[str, Any] = {}
        for key, entry in self.defaults.items():
            path, name = _item_key(key)
            if name is None:
                defaults[path] = entry.value
            else:
                defaults.setdefault(path, []).append({"name": name, "value": entry.value})
        return {
            "defaults": _nest(defaults),
            "rules": _nest({p: e.value for p, e in self.rules.items()}),
            "imposed": _nest({p: e.value for p, e in self.imposed.items()}),
            "sources": {section: {key: entry.scope.view()
                                  for key, entry in getattr(self, section).items()}
                        for section in SECTIONS},
        }


def merge(layers: Iterable[tuple[Scope, Policy]]) -> EffectivePolicy:
    """The effective policy of a branch (cluster, its department, its project, any order).
    Defaults: the lowest scope wins. Rules and imposed values: held by one scope (the API
    refuses a second); should two ever meet, the higher scope's stands."""
    ordered = sorted(layers, key=lambda layer: layer[0].level)
    defaults: dict[str, Sourced] = {}
    rules: dict[str, Sourced] = {}
    imposed: dict[str, Sourced] = {}
    for scope, policy in ordered:
        for path, value in policy.defaults.items():
            if FIELDS[path].kind == ITEMIZED:
                for item in value:
                    defaults[f"{path}[{item['name']}]"] = Sourced(item["value"], scope)
            else:
                defaults[path] = Sourced(value, scope)
        for path, rule in policy.rules.items():
            rules.setdefault(path, Sourced(dict(rule), scope))
        for path, value in policy.imposed.items():
            imposed.setdefault(path, Sourced(value, scope))
    return EffectivePolicy(dict(sorted(defaults.items())), rules, imposed)


def conflicts(scope: Scope, policy: Policy, branch: Iterable[tuple[Scope, Policy]]
              ) -> list[Problem]:
    """Every field `policy` constrains (rules or imposed values) that another scope of the
    branch already constrains, named with the scope that holds it."""
    problems: list[Problem] = []
    mine = policy.constrained()
    for other_scope, other in sorted(branch, key=lambda layer: layer[0].level):
        if other_scope.key == scope.key:
            continue
        for path in sorted(mine & other.constrained()):
            section = "rules" if path in policy.rules else "imposed"
            problems.append({
                "field": f"policy.{section}.{path}",
                "reason": f"{other_scope.label} already sets rules for {path}; a field may "
                          "carry rules at one level of a branch only",
                "scope": other_scope.label})
    return problems


def check_defaults(effective: EffectivePolicy) -> list[Problem]:
    """Defaults that the branch's own rules would refuse (a policy must not refuse what it
    fills in itself)."""
    filled = _fill_defaults(effective, {})
    # `required` without a default is the point of the rule (the submitter must give it).
    return [{"field": f"policy.defaults.{v.field.removeprefix('spec.')}",
             "reason": f"the default {v.message}"}
            for v in _check_rules(effective, filled, {}) if v.rule != "required: true"]


# applying to a submitted spec --------------------------------------------------------------

def apply(effective: EffectivePolicy, spec: Mapping[str, Any]
          ) -> tuple[dict[str, Any], list[Violation]]:
    """Defaults, then the submitted values, then the rules, then the imposed values: the spec
    to build the workload from and every violated rule."""
    result = _fill_defaults(effective, spec)
    violations = _check_rules(effective, result, spec)
    for path, entry in effective.imposed.items():
        if FIELDS[path].kind == ITEMIZED:
            items = {i["name"]: i for i in _items(_get(result, path))}
            items.update({i["name"]: dict(i) for i in entry.value})
            _set(result, path, list(items.values()))
        else:
            _set(result, path, copy.deepcopy(entry.value))
    return result, violations


def _fill_defaults(effective: EffectivePolicy, spec: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(dict(spec))
    for key, entry in effective.defaults.items():
        path, name = _item_key(key)
        if name is None:
            if _get(result, path) is None:
                _set(result, path, copy.deepcopy(entry.value))
            continue
        items = _items(_get(result, path))
        if all(i.get("name") != name for i in items):
            _set(result, path, [*items, {"name": name, "value": entry.value}])
    return result


def _check_rules(effective: EffectivePolicy, result: Mapping[str, Any],
                 submitted: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    for path, entry in effective.rules.items():
        kind = FIELDS[path].kind
        rule, scope = entry.value, entry.scope

        def refuse(message: str, rule_text: str, value: Any, at: str = path,
                   by: str = scope.label) -> None:
            out.append(Violation(field=f"spec.{at}", message=f"{message} (set by {by})",
                                 rule=rule_text, value=value, scope=by))

        value = _get(result, path)
        sent = _get(submitted, path)
        if kind == ITEMIZED:
            _check_items(effective, path, rule, _items(sent), refuse)
        elif rule.get("canEdit") is False and sent is not None:
            default = effective.defaults.get(path)
            if default is None or sent != default.value:
                fixed = ("may not be set" if default is None
                         else f"may not be changed from {default.value!r}")
                refuse(f"{sent!r}: {path} {fixed}", "canEdit: false", sent)
        if rule.get("required") and value in (None, "", []):
            refuse(f"{path} is required", "required: true", value)
        if value is None or kind in (ITEMIZED, STRINGS, BOOLEAN):
            continue
        if "options" in rule and value not in rule["options"]:
            allowed = ", ".join(repr(o) for o in rule["options"])
            refuse(f"{value!r} is not allowed; options: {allowed}", f"options: [{allowed}]",
                   value)
        try:
            number = _number(value) if kind in (INTEGER, NUMBER, QUANTITY) else None
        except (TypeError, ValueError):
            continue  # a malformed value is the spec check's to report
        if number is None:
            continue
        if "min" in rule and number < _number(rule["min"]):
            refuse(f"{value!r} is below the minimum of {rule['min']!r}", f"min: {rule['min']}",
                   value)
        if "max" in rule and number > _number(rule["max"]):
            refuse(f"{value!r} is above the maximum of {rule['max']!r}", f"max: {rule['max']}",
                   value)
        if "step" in rule:
            base = _number(rule.get("min", 0))
            steps = (number - base) / rule["step"]
            if not math.isclose(steps, round(steps), abs_tol=1e-9):
                refuse(f"{value!r} is not a multiple of {rule['step']!r}"
                       + (f" above {rule['min']!r}" if "min" in rule else ""),
                       f"step: {rule['step']}", value)
    return out


def _check_items(effective: EffectivePolicy, path: str, rule: Mapping[str, Any],
                 sent: list[dict[str, Any]], refuse: Any) -> None:
    defaults = {key: entry.value for key, entry in effective.defaults.items()
                if _item_key(key)[0] == path}
    default_of = {_item_key(key)[1]: value for key, value in defaults.items()}
    locked = set(rule.get("locked", ()))
    for index, item in enumerate(sent):
        name, value = item.get("name"), item.get("value")
        at = f"{path}[{index}]"
        known = name in default_of
        if rule.get("canEdit") is False and (not known or default_of[name] != value):
            refuse(f"{name}: {path} may not be edited", "canEdit: false", item, at)
        elif name in locked and (not known or default_of[name] != value):
            what = (f"may not be changed from {default_of[name]!r}" if known
                    else "may not be set")
            refuse(f"{name} is locked and {what}", f"locked: [{', '.join(sorted(locked))}]",
                   item, at)
        elif rule.get("canAdd") is False and not known:
            refuse(f"{name}: adding to {path} is not allowed", "canAdd: false", item, at)


# paths ----------------------------------------------------------------------------------

def _item_key(key: str) -> tuple[str, str | None]:
    if key.endswith("]") and "[" in key:
        path, name = key[:-1].split("[", 1)
        return path, name
    return key, None


def _items(value: Any) -> list[dict[str, Any]]:
    return [i for i in value if isinstance(i, Mapping)] if isinstance(value, list) else []


def _get(tree: Mapping[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = tree
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in flat.items():
        _set(out, path, copy.deepcopy(value))
    return out


def patch(document: Any, changes: Any) -> Any:
    """JSON merge patch (RFC 7386): `changes` merged into `document`, a null removes a key."""
    if not isinstance(changes, Mapping):
        return copy.deepcopy(changes)
    out = dict(document) if isinstance(document, Mapping) else {}
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = patch(out.get(key), value)
    return out
