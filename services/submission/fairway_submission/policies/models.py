"""The policy routes' request body: the scope it applies to and the policy."""

from typing import Any, Literal

from fairway_submission.models import ApiModel

ScopeKind = Literal["cluster", "department", "project"]


class PolicyMeta(ApiModel):
    scope: ScopeKind
    department_id: str | None = None
    project_id: str | None = None


class PolicyIn(ApiModel):
    meta: PolicyMeta
    policy: dict[str, Any] = {}
