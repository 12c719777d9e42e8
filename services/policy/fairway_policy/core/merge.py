"""The effective policy of a branch: the policies of the cluster, a department and a project
merged, each entry with the scope that set it; and the check that a field carries rules at one
level of a branch only."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fairway_policy.core.fields import FIELDS, ITEMIZED
from fairway_policy.core.paths import item_key, nest
from fairway_policy.core.policies import SECTIONS, Policy, Problem, Scope


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
            path, name = item_key(key)
            if name is None:
                defaults[path] = entry.value
            else:
                defaults.setdefault(path, []).append({"name": name, "value": entry.value})
        return {
            "defaults": nest(defaults),
            "rules": nest({p: e.value for p, e in self.rules.items()}),
            "imposed": nest({p: e.value for p, e in self.imposed.items()}),
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
