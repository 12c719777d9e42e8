"""Scopes, and one scope's policy document, checked.

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
"""

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fairway_contracts.policies import PolicyProblem, PolicyScope
from fairway_contracts.workloads import WorkloadType
from fairway_policy.core.fields import (
    FIELDS,
    GROUPS,
    NUMBER,
    RENAMED,
    RULES_BY_KIND,
    check_value,
    number,
)
from fairway_policy.core.paths import nest

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


def scope_of(scope: PolicyScope) -> Scope:
    """The scope a CRUD request names."""
    if scope.scope == "cluster":
        return Scope("cluster")
    if scope.scope == "department":
        return Scope("department", scope.department_id, scope.name)
    return Scope("project", scope.project_id, scope.name)


def scope_problems(scope: PolicyScope) -> list[PolicyProblem]:
    """The ids a CRUD request's scope lacks (a project needs its department's too)."""
    needs = {"cluster": (), "department": ("department_id",),
             "project": ("department_id", "project_id")}[scope.scope]
    return [PolicyProblem(field=f"meta.{name.replace('_id', 'Id')}",
                          reason=f"is required for the {scope.scope} scope")
            for name in needs if not getattr(scope, name)]


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
        return {section: nest(getattr(self, section)) for section in SECTIONS}


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
    sections = {section: _parse_section(document.get(section) or {}, section, workload_type,
                                        problems)
                for section in SECTIONS}
    return Policy(**sections), problems


def _parse_section(tree: Any, section: str, workload_type: WorkloadType,
                   problems: list[Problem]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for path, value in _flatten(tree, f"policy.{section}", problems).items():
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
            continue
        ok, normal = check_value(value, spec.kind)
        if ok:
            checked[path] = normal
        else:
            problems.append({"field": at, "reason": normal})
    return checked


def _flatten(tree: Any, at: str, problems: list[Problem], prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, Mapping):
        problems.append({"field": at, "reason": "must be an object keyed by spec field"})
        return {}
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if path in RENAMED and _old_shape(value, path):
            path = RENAMED[path]
        if path in FIELDS:
            leaves[path] = value
        elif path in GROUPS and isinstance(value, Mapping):
            leaves.update(_flatten(value, f"{at}.{key}", problems, prefix=f"{path}."))
        else:
            problems.append({"field": f"{at}.{key}", "reason": "is not a spec field a policy "
                                                              "can name"})
    return leaves


def _old_shape(value: Any, path: str) -> bool:
    """True when a renamed field's value is a leaf's (a value, or rules) rather than the
    object's fields."""
    if not isinstance(value, Mapping):
        return True
    return not any(f"{path}.{key}" in FIELDS for key in value)


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
            continue
        ok, normal = _rule_value(name, value, kind)
        if ok:
            out[name] = normal
        else:
            problems.append({"field": where, "reason": normal})
    if "min" in out and "max" in out and number(out["min"]) > number(out["max"]):
        problems.append({"field": f"{at}.min", "reason": f"is above max ({out['max']})"})
    return out


def _rule_value(name: str, value: Any, kind: str) -> tuple[bool, Any]:
    """(True, the rule's value normalised) or (False, the reason), for a rule the field's
    kind takes."""
    if name in ("canEdit", "required", "canAdd"):
        return (True, value) if isinstance(value, bool) else (False, "must be true or false")
    if name in ("min", "max"):
        return check_value(value, kind)
    if name == "step":
        if check_value(value, NUMBER)[0] and value > 0:
            return True, value
        return False, "must be a number above 0"
    if name == "options":
        values = [o.get("value") if isinstance(o, Mapping) else o
                  for o in (value if isinstance(value, list) else [])]
        if values and all(check_value(v, kind)[0] for v in values):
            return True, values
        return False, 'must be a non-empty list of {"value": …} of the field\'s type'
    # locked
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return True, value
    return False, "must be a list of names"


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
