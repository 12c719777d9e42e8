"""An effective policy applied to a submitted spec: defaults, then the submitted values, then
the rules, then the imposed values; every violated rule is reported with the field, the value,
the rule and the scope that set it."""

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

from fairway_contracts.events import Violation
from fairway_policy.core.fields import (
    BOOLEAN,
    FIELDS,
    INTEGER,
    ITEMIZED,
    NUMBER,
    QUANTITY,
    STRINGS,
    number,
)
from fairway_policy.core.merge import EffectivePolicy
from fairway_policy.core.paths import get, item_key, items, put
from fairway_policy.core.policies import Problem

# refuse(message, rule, value, at=the rule's field): report one violated rule
Refuse = Callable[..., None]


def apply(effective: EffectivePolicy, spec: Mapping[str, Any]
          ) -> tuple[dict[str, Any], list[Violation]]:
    """Defaults, then the submitted values, then the rules, then the imposed values: the spec
    to build the workload from and every violated rule."""
    result = _fill_defaults(effective, spec)
    violations = _check_rules(effective, result, spec)
    for path, entry in effective.imposed.items():
        if FIELDS[path].kind == ITEMIZED:
            by_name = {i["name"]: i for i in items(get(result, path))}
            by_name.update({i["name"]: dict(i) for i in entry.value})
            put(result, path, list(by_name.values()))
        else:
            put(result, path, copy.deepcopy(entry.value))
    return result, violations


def check_defaults(effective: EffectivePolicy) -> list[Problem]:
    """Defaults that the branch's own rules would refuse (a policy must not refuse what it
    fills in itself)."""
    filled = _fill_defaults(effective, {})
    # `required` without a default is the point of the rule (the submitter must give it).
    return [{"field": f"policy.defaults.{v.field.removeprefix('spec.')}",
             "reason": f"the default {v.message}"}
            for v in _check_rules(effective, filled, {}) if v.rule != "required: true"]


def _fill_defaults(effective: EffectivePolicy, spec: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(dict(spec))
    for key, entry in effective.defaults.items():
        path, name = item_key(key)
        if name is None:
            if get(result, path) is None:
                put(result, path, copy.deepcopy(entry.value))
            continue
        present = items(get(result, path))
        if all(i.get("name") != name for i in present):
            put(result, path, [*present, {"name": name, "value": entry.value}])
    return result


def _check_rules(effective: EffectivePolicy, result: Mapping[str, Any],
                 submitted: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    for path, entry in effective.rules.items():
        kind = FIELDS[path].kind
        rule, by = entry.value, entry.scope.label

        def refuse(message: str, rule_text: str, value: Any, at: str = path,
                   by: str = by) -> None:
            out.append(Violation(field=f"spec.{at}", message=f"{message} (set by {by})",
                                 rule=rule_text, value=value, scope=by))

        value = get(result, path)
        sent = get(submitted, path)
        if kind == ITEMIZED:
            _check_items(effective, path, rule, items(sent), refuse)
        elif rule.get("canEdit") is False and sent is not None:
            _check_fixed(effective, path, sent, refuse)
        if rule.get("required") and value in (None, "", []):
            refuse(f"{path} is required", "required: true", value)
        if value is None or kind in (ITEMIZED, STRINGS, BOOLEAN):
            continue
        if "options" in rule and value not in rule["options"]:
            allowed = ", ".join(repr(o) for o in rule["options"])
            refuse(f"{value!r} is not allowed; options: {allowed}", f"options: [{allowed}]",
                   value)
        if kind in (INTEGER, NUMBER, QUANTITY):
            _check_bounds(rule, value, refuse)
    return out


def _check_fixed(effective: EffectivePolicy, path: str, sent: Any, refuse: Refuse) -> None:
    """`canEdit: false`: the submission may leave the field out or give its default."""
    default = effective.defaults.get(path)
    if default is None or sent != default.value:
        fixed = ("may not be set" if default is None
                 else f"may not be changed from {default.value!r}")
        refuse(f"{sent!r}: {path} {fixed}", "canEdit: false", sent)


def _check_bounds(rule: Mapping[str, Any], value: Any, refuse: Refuse) -> None:
    """`min`, `max` and `step` of a numeric or quantity field."""
    try:
        amount = number(value)
    except (TypeError, ValueError):
        return  # a malformed value is the spec check's to report
    if "min" in rule and amount < number(rule["min"]):
        refuse(f"{value!r} is below the minimum of {rule['min']!r}", f"min: {rule['min']}",
               value)
    if "max" in rule and amount > number(rule["max"]):
        refuse(f"{value!r} is above the maximum of {rule['max']!r}", f"max: {rule['max']}",
               value)
    if "step" in rule:
        base = number(rule.get("min", 0))
        steps = (amount - base) / rule["step"]
        if not math.isclose(steps, round(steps), abs_tol=1e-9):
            refuse(f"{value!r} is not a multiple of {rule['step']!r}"
                   + (f" above {rule['min']!r}" if "min" in rule else ""),
                   f"step: {rule['step']}", value)


def _check_items(effective: EffectivePolicy, path: str, rule: Mapping[str, Any],
                 sent: list[dict[str, Any]], refuse: Refuse) -> None:
    default_of = {item_key(key)[1]: entry.value for key, entry in effective.defaults.items()
                  if item_key(key)[0] == path}
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
