"""Identity's request bodies."""

from typing import Literal

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from fairway_submission.models import ApiModel


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
