"""The API's request and response models (Run:ai-shaped, camelCase), and pure helpers."""

import re
import secrets
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class NameValue(ApiModel):
    name: str = Field(min_length=1)
    value: str


class TokenRequest(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    grant_type: Literal["password", "client_credentials"]
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


class UserIn(ApiModel):
    username: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][-._@A-Za-z0-9]*$")
    password: str = Field(min_length=8, max_length=256)
    groups: list[str] = Field(default_factory=list, max_length=100)


class ServiceAccountIn(ApiModel):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z][-a-z0-9]*$")


class AccessRuleIn(ApiModel):
    subject_type: Literal["user", "group", "service-account"]
    subject_id: str = Field(min_length=1, max_length=253)
    role_name: str
    scope_type: Literal["cluster", "department", "project"]
    scope_id: str | None = None


class BatchIn(ApiModel):
    ids: list[str] = Field(min_length=1, max_length=500)
    action: Literal["delete", "suspend", "resume"]


class Workload(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    workload_id: str
    name: str
    project_id: str
    project_name: str
    type: str
    created_at: datetime
    created_by: str
    desired_phase: str
    phase: str
    phase_reason: str | None
    phase_message: str | None
    priority_class_name: str
    preemptible: bool
    requested_node_pools: list[str]
    current_node_pools: list[str]
    allocated_resources: dict[str, Any]
    requested_resources: dict[str, Any]
    running_pods: int
    requested_pods: int
    total_pending_time_seconds: float
    total_running_time_seconds: float
    spec: dict[str, Any]


def with_suffix(name: str) -> str:
    """useGivenNameAsPrefix: the given name plus a short random suffix, still a DNS name."""
    return f"{name[:33]}-{secrets.token_hex(3)}"


# filterBy / sortBy on the workload list: API field → SQL column.
LIST_FIELDS = {
    "desiredPhase": "desired_phase",
    "name": "name",
    "projectId": "project_id::text",
    "projectName": "project",
    "type": "workload_type",
    "phase": "phase",
    "createdBy": "created_by",
    "createdAt": "created_at",
    "workloadId": "workload_id::text",
}
FILTER = re.compile(r"^(?P<field>[A-Za-z]+)(?P<op>==|!=|=@|>=|<=)(?P<value>.*)$")


def parse_filters(filter_by: str | None) -> list[tuple[str, str, str]]:
    """`field==value,field!=value,field=@part` → [(column, op, value)]; ValueError names the
    part that is wrong."""
    out: list[tuple[str, str, str]] = []
    if not filter_by:
        return out
    for part in filter_by.split(","):
        match = FILTER.match(part.strip())
        if not match:
            raise ValueError(f"'{part}' is not field==value, field!=value or field=@value")
        field = match["field"]
        if field not in LIST_FIELDS:
            raise ValueError(f"cannot filter by '{field}'; use one of {', '.join(LIST_FIELDS)}")
        out.append((LIST_FIELDS[field], match["op"], match["value"]))
    return out
