"""Identity's request bodies and answers."""

from typing import Annotated, Literal

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from fairway_submission.models import ApiAnswer, ApiModel, Timestamp


class TokenRequest(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    grant_type: Literal["password", "client_credentials"]
    username: str | None = Field(default=None, max_length=256)
    password: str | None = Field(default=None, max_length=256)
    client_id: str | None = Field(default=None, max_length=256)
    client_secret: str | None = Field(default=None, max_length=256)


class UserIn(ApiModel):
    username: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][-._@A-Za-z0-9]*$")
    password: str = Field(min_length=8, max_length=256)
    groups: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=100)


class ServiceAccountIn(ApiModel):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z][-a-z0-9]*$")


class AccessRuleIn(ApiModel):
    subject_type: Literal["user", "group", "service-account"]
    subject_id: str = Field(min_length=1, max_length=253)
    role_name: str = Field(max_length=64)
    scope_type: Literal["cluster", "department", "project"]
    scope_id: str | None = Field(default=None, max_length=20)


# Responses ----------------------------------------------------------------------------------


class TokenOut(ApiAnswer):
    access_token: str
    expires_in: int = Field(description="seconds")
    token_type: Literal["Bearer"]


class GrantOut(ApiAnswer):
    role_name: str
    scope_type: Literal["cluster", "department", "project"]
    scope_id: str | None


class MeOut(ApiAnswer):
    subject: str
    subject_type: Literal["user", "service-account"]
    access_rules: list[GrantOut]


class UserCreated(ApiAnswer):
    id: str
    username: str
    groups: list[str]


class UserOut(UserCreated):
    created_at: Timestamp


class UserList(ApiAnswer):
    users: list[UserOut]


class ServiceAccountCreated(ApiAnswer):
    id: str
    name: str
    client_id: str
    client_secret: str = Field(description="shown this once; only its hash is kept")


class ServiceAccountOut(ApiAnswer):
    id: str
    name: str
    client_id: str
    created_by: str
    created_at: Timestamp


class ServiceAccountList(ApiAnswer):
    service_accounts: list[ServiceAccountOut]


class AccessRuleOut(ApiAnswer):
    id: int
    subject_type: Literal["user", "group", "service-account"]
    subject_id: str
    role_name: str
    scope_type: Literal["cluster", "department", "project"]
    scope_id: str | None
    created_by: str
    created_at: Timestamp


class AccessRuleList(ApiAnswer):
    access_rules: list[AccessRuleOut]
    total_count: int
