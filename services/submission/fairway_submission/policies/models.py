"""The policy routes' request body (the scope it applies to and the policy) and answers."""

from typing import Any, Literal

from pydantic import Field

from fairway_submission.models import ApiAnswer, ApiModel, Timestamp

ScopeKind = Literal["cluster", "department", "project"]


class PolicyMeta(ApiModel):
    scope: ScopeKind
    department_id: str | None = None
    project_id: str | None = None


class PolicyIn(ApiModel):
    meta: PolicyMeta
    policy: dict[str, Any] = {}


# Responses ----------------------------------------------------------------------------------


class PolicyMetaOut(ApiAnswer):
    """The scope: a department's or project's id and name where the scope is one."""

    scope: ScopeKind
    department_id: str | None = None
    department_name: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    updated_by: str | None
    updated_at: Timestamp | None


class PolicyOut(ApiAnswer):
    type: str = Field(description="the workload type")
    meta: PolicyMetaOut
    policy: dict[str, Any] | None = Field(description="the scope's own policy; null when it "
                                                      "has none")
    effective: dict[str, Any] | None = Field(
        description="the policy in force, with the scope each default, rule and imposed "
                    "value comes from")


class PolicyWritten(PolicyOut):
    validated: bool = Field(description="true: checked only (validateOnly), not saved")
