"""Organisation requests (node pools, departments, projects) and their checks. Pure.

Quotas per node pool: GPUs in devices, CPU in cores, memory in MiB. `limit` None or -1 means
no limit of its own; `deserved` and `overQuotaWeight` are never negative.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, field_validator

from fairway_submission.domain import ApiModel

ORG_NAME = re.compile(r"^[a-z][-a-z0-9]*$")
ORG_NAME_RULE = "must be lowercase letters, digits and '-', starting with a letter (at most 63)"
RESOURCES = ("gpu", "cpu", "memory")


def _check_name(value: str) -> str:
    if not ORG_NAME.match(value) or len(value) > 63:
        raise ValueError(ORG_NAME_RULE)
    return value


class QuotaIn(ApiModel):
    deserved: float = 0
    limit: float | None = None
    over_quota_weight: float = 1


class PoolRef(ApiModel):
    name: str = Field(min_length=1)


class PoolResourcesIn(ApiModel):
    node_pool: PoolRef
    gpu: QuotaIn = Field(default_factory=QuotaIn)
    cpu: QuotaIn = Field(default_factory=QuotaIn)
    memory: QuotaIn = Field(default_factory=QuotaIn)


class OrgUnitIn(ApiModel):
    name: str
    resources: list[PoolResourcesIn] = Field(default_factory=list)
    default_node_pools: list[str] = Field(default_factory=list)
    scheduling_rules: dict[str, Any] | None = None

    _name = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))


class DepartmentIn(OrgUnitIn):
    pass


class ProjectIn(OrgUnitIn):
    parent_id: str | None = None


class OrgUnitUpdate(ApiModel):
    """PUT/PATCH body: every field optional; the name cannot change."""

    resources: list[PoolResourcesIn] | None = None
    default_node_pools: list[str] | None = None
    scheduling_rules: dict[str, Any] | None = None


class PlacementStrategy(ApiModel):
    gpu: Literal["binpack", "spread"] = "binpack"
    cpu: Literal["binpack", "spread"] = "binpack"


class GpuResourceOptimization(ApiModel):
    swap_enabled: bool = False
    cpu_swap_memory_size: str | None = None
    reserved_gpu_memory_for_swap_operations: str | None = None
    node_level_scheduler_enabled: bool = False


class NodePoolIn(ApiModel):
    name: str
    label_key: str | None = Field(default=None, min_length=1, max_length=253)
    label_value: str | None = Field(default=None, max_length=63)
    placement_strategy: PlacementStrategy = Field(default_factory=PlacementStrategy)
    min_guaranteed_runtime: str | None = Field(default=None, pattern=r"^[0-9]+[smhd]$")
    gpu_resource_optimization: GpuResourceOptimization = Field(
        default_factory=GpuResourceOptimization)

    _name = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))


class NodePoolUpdate(ApiModel):
    label_key: str | None = Field(default=None, min_length=1, max_length=253)
    label_value: str | None = Field(default=None, max_length=63)
    placement_strategy: PlacementStrategy | None = None
    min_guaranteed_runtime: str | None = Field(default=None, pattern=r"^[0-9]+[smhd]$")
    gpu_resource_optimization: GpuResourceOptimization | None = None


Problems = list[dict[str, str]]


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
