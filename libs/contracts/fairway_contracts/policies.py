"""Policy CRUD over request/reply: submission (the public API) asks, policy owns the policies.

The policy document itself (`defaults`, `rules`, `imposed`) travels as plain JSON: the policy
service validates it and names every bad field, so a client sees the same reasons whichever way
it came in.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from fairway_contracts.base import Contract
from fairway_contracts.workloads import WorkloadType

ScopeKind = Literal["cluster", "department", "project"]


class PolicyScope(Contract):
    """Where a policy sits, with the branch it belongs to: a project carries its department;
    a department carries its projects (so a rule can be checked against the whole branch)."""

    scope: ScopeKind
    department_id: str | None = None
    project_id: str | None = None
    name: str | None = None  # the department's or project's name, for readable reasons
    project_ids: list[str] = Field(default_factory=list)  # a department's projects


class PolicyGetRequest(Contract):
    workload_type: WorkloadType
    scope: PolicyScope


class PolicyPutRequest(Contract):
    workload_type: WorkloadType
    scope: PolicyScope
    policy: dict[str, Any]
    # replace: the scope's policy becomes `policy`; patch: `policy` is merged into it (a null
    # removes a key, as in JSON merge patch).
    mode: Literal["replace", "patch"] = "replace"
    validate_only: bool = False
    updated_by: str


class PolicyDeleteRequest(Contract):
    workload_type: WorkloadType
    scope: PolicyScope


class PolicyProblem(Contract):
    field: str
    reason: str
    scope: str | None = None  # for a rule held elsewhere in the branch: that scope


class PolicyReply(Contract):
    """The scope's own policy (None when it has none) and the effective one with the source of
    every default, rule and imposed value; or the problems that refused the request."""

    ok: bool
    problems: list[PolicyProblem] = Field(default_factory=list)
    policy: dict[str, Any] | None = None
    effective: dict[str, Any] | None = None
    updated_by: str | None = None
    updated_at: datetime | None = None
    deleted: bool = False
