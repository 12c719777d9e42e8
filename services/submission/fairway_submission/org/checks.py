"""The organisation's checks that span fields or units, each problem with its field path.

A project's quotas must fit its department's, a department's must cover its projects'; a
project may tighten its department's scheduling rules and node types, never loosen them.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fairway_submission.core.errors import Problems
from fairway_submission.org.models import (
    RESOURCES,
    NodeTypesIn,
    PoolResourcesIn,
    QuotaIn,
    SchedulingRulesIn,
)


def check_resources(resources: Sequence[PoolResourcesIn], pools: Iterable[str],
                    prefix: str = "resources") -> Problems:
    """Every problem of a `resources` list: unknown or repeated pools, negative quotas, a limit
    below its deserved quota."""
    known = set(pools)
    problems: Problems = []
    seen: set[str] = set()
    for i, entry in enumerate(resources):
        at = f"{prefix}[{i}]"
        pool = entry.node_pool.name
        if pool not in known:
            problems.append({"field": f"{at}.nodePool.name",
                             "reason": f"node pool {pool!r} does not exist"})
        elif pool in seen:
            problems.append({"field": f"{at}.nodePool.name",
                             "reason": f"node pool {pool!r} is listed twice"})
        seen.add(pool)
        for kind in RESOURCES:
            quota: QuotaIn = getattr(entry, kind)
            if quota.deserved < 0:
                problems.append({"field": f"{at}.{kind}.deserved",
                                 "reason": "must not be negative"})
            if quota.over_quota_weight < 0:
                problems.append({"field": f"{at}.{kind}.overQuotaWeight",
                                 "reason": "must not be negative"})
            if quota.limit is not None and quota.limit != -1:
                if quota.limit < 0:
                    problems.append({"field": f"{at}.{kind}.limit",
                                     "reason": "must not be negative (-1 or null: no limit)"})
                elif quota.limit < quota.deserved:
                    problems.append({"field": f"{at}.{kind}.limit",
                                     "reason": f"must be at least deserved ({quota.deserved:g})"})
    return problems


def check_default_pools(default_node_pools: Sequence[str], pools: Iterable[str],
                        prefix: str = "defaultNodePools") -> Problems:
    known = set(pools)
    return [{"field": f"{prefix}[{i}]", "reason": f"node pool {name!r} does not exist"}
            for i, name in enumerate(default_node_pools) if name not in known]


def normalise(resources: Sequence[PoolResourcesIn]) -> list[dict[str, Any]]:
    """The stored / published form: limit -1 becomes None."""
    out = []
    for entry in resources:
        item: dict[str, Any] = {"nodePool": {"name": entry.node_pool.name}}
        for kind in RESOURCES:
            quota: QuotaIn = getattr(entry, kind)
            item[kind] = {"deserved": quota.deserved,
                          "limit": None if quota.limit in (None, -1) else quota.limit,
                          "overQuotaWeight": quota.over_quota_weight}
        out.append(item)
    return out


def deserved_by_pool(resources: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for entry in resources:
        for kind in RESOURCES:
            out[(entry["nodePool"]["name"], kind)] = float(
                (entry.get(kind) or {}).get("deserved") or 0)
    return out


def check_department_fits(department: Mapping[str, Any],
                          sibling_projects: Sequence[Sequence[Mapping[str, Any]]],
                          project: Sequence[Mapping[str, Any]], prefix: str = "resources"
                          ) -> Problems:
    """A project's deserved quota must fit in what its department deserves, with the other
    projects of the department. A pool or resource the department sets no quota for is not
    checked."""
    limits = deserved_by_pool(department["resources"])
    taken: dict[tuple[str, str], float] = {}
    for resources in sibling_projects:
        for key, value in deserved_by_pool(resources).items():
            taken[key] = taken.get(key, 0) + value
    problems: Problems = []
    for i, entry in enumerate(project):
        pool = entry["nodePool"]["name"]
        for kind in RESOURCES:
            key = (pool, kind)
            want = float((entry.get(kind) or {}).get("deserved") or 0)
            if key not in limits or want == 0:
                continue
            if taken.get(key, 0) + want > limits[key]:
                problems.append({
                    "field": f"{prefix}[{i}].{kind}.deserved",
                    "reason": f"department {department['name']} deserves {limits[key]:g} "
                              f"{kind} in pool {pool}, its other projects already take "
                              f"{taken.get(key, 0):g}; over-subscription is not allowed"})
    return problems


def check_department_covers(resources: Sequence[Mapping[str, Any]],
                            projects: Sequence[Sequence[Mapping[str, Any]]],
                            prefix: str = "resources") -> Problems:
    """A department's new quota must still cover what its projects deserve."""
    taken: dict[tuple[str, str], float] = {}
    for project in projects:
        for key, value in deserved_by_pool(project).items():
            taken[key] = taken.get(key, 0) + value
    problems: Problems = []
    for i, entry in enumerate(resources):
        for kind in RESOURCES:
            key = (entry["nodePool"]["name"], kind)
            have = float((entry.get(kind) or {}).get("deserved") or 0)
            if taken.get(key, 0) > have:
                problems.append({
                    "field": f"{prefix}[{i}].{kind}.deserved",
                    "reason": f"its projects already deserve {taken[key]:g} {kind} in pool "
                              f"{key[0]}; over-subscription is not allowed"})
    return problems


# scheduling rules and node types ------------------------------------------------------------

RULE_FIELDS = ("interactiveJobTimeLimitSeconds", "interactiveJobMaxIdleDurationSeconds",
               "trainingJobTimeLimitSeconds", "trainingJobMaxIdleDurationSeconds")
NODE_TYPE_KINDS = ("training", "workspace")


def stored_rules(rules: SchedulingRulesIn | None) -> dict[str, int] | None:
    """The stored / published form: only the limits that are set; None when none is."""
    if rules is None:
        return None
    out = rules.model_dump(by_alias=True, exclude_none=True)
    return out or None


def stored_node_types(node_types: NodeTypesIn | None) -> dict[str, list[str]] | None:
    if node_types is None:
        return None
    out = {k: list(dict.fromkeys(v)) for k, v in node_types.model_dump().items() if v}
    return out or None


def check_rules_tighten(rules: Mapping[str, Any] | None, department: Mapping[str, Any],
                        prefix: str = "schedulingRules") -> Problems:
    """A project may tighten its department's limits, never loosen them: a limit it sets must
    not exceed the department's. A limit it leaves unset inherits the department's."""
    theirs = department.get("scheduling_rules") or {}
    problems: Problems = []
    for key in RULE_FIELDS:
        mine, limit = (rules or {}).get(key), theirs.get(key)
        # isinstance: rules stored before the API checked them may hold anything
        if isinstance(mine, int) and isinstance(limit, int) and mine > limit:
            problems.append({
                "field": f"{prefix}.{key}",
                "reason": f"{mine:,} s would loosen department {department['name']}'s limit of "
                          f"{limit:,} s; a project may only tighten it (at most {limit:,})"})
    return problems


def check_node_types_within(node_types: Mapping[str, Any] | None, department: Mapping[str, Any],
                            prefix: str = "nodeTypes") -> Problems:
    """A project that lists node types must stay within its department's list, if any."""
    theirs = department.get("node_types") or {}
    problems: Problems = []
    for kind in NODE_TYPE_KINDS:
        allowed = theirs.get(kind) or []
        for i, name in enumerate((node_types or {}).get(kind) or []):
            if allowed and name not in allowed:
                problems.append({
                    "field": f"{prefix}.{kind}[{i}]",
                    "reason": f"node type {name!r} is not allowed by department "
                              f"{department['name']} (it allows {', '.join(allowed)})"})
    return problems
