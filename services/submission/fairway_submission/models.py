"""What every slice's API models share: camelCase JSON, no unknown fields in requests, DNS
names, the error body every refusal answers (`errors` documents it per operation), and the
rules every request field keeps whatever its model: no NUL character in any text (PostgreSQL
and Kubernetes refuse it), no infinite or NaN numbers (JSON's `Infinity` and `NaN` parse in
Python), numbers are numbers (`true` or `"3"` is not a count) and true or false is true or
false (not `0` or `"yes"`)."""

import functools
import re
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from fairway_contracts.kubernetes_names import env_name_problem

NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NODE_TYPE = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"  # a Kubernetes label value


def _numeric(annotation: Any) -> bool:
    """int or float, possibly optional (not bool, not a union with str)."""
    if annotation in (int, float):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(a in (int, float) for a in args)
    if origin is typing.Annotated:
        return _numeric(typing.get_args(annotation)[0])
    return False


def _boolean(annotation: Any) -> bool:
    """bool, possibly optional."""
    if annotation is bool:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args == [bool]
    return False


@functools.cache
def _field_kind(model: type[BaseModel], name: str) -> str:
    """"number", "boolean" or "" for a model's field: worked out once per field, not per
    request (every field of every body passes the check below)."""
    field = model.model_fields.get(name)
    if field is None:
        return ""
    if _numeric(field.annotation):
        return "number"
    return "boolean" if _boolean(field.annotation) else ""


def _has_nul(value: Any) -> bool:
    """In a text or a list of texts (a nested object is its own model's to check, which names
    the field inside it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(isinstance(v, str) and "\x00" in v for v in value)
    return False


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _plain_values(cls, value: Any, info: ValidationInfo) -> Any:
        kind = _field_kind(cls, info.field_name or "")
        if kind == "number" and isinstance(value, bool | str):
            raise ValueError("must be a number, not " + (
                "true or false" if isinstance(value, bool) else "text"))
        if kind == "boolean" and not isinstance(value, bool | None):
            raise ValueError("must be true or false")
        if _has_nul(value):
            raise ValueError("must not contain the NUL character")
        return value


class ApiAnswer(BaseModel):
    """A response body: camelCase JSON, built from what a route returns."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# A time as the API writes it: ISO 8601 with the offset, kept as the route wrote it.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class NameValue(ApiModel):
    name: str = Field(min_length=1, max_length=253)
    value: str = Field(max_length=262144)


class EnvironmentVariable(NameValue):
    """An environment variable: Kubernetes' rule for its name."""

    @field_validator("name")
    @classmethod
    def env_name(cls, value: str) -> str:
        if problem := env_name_problem(value):
            raise ValueError(problem)
        return value


# Errors -------------------------------------------------------------------------------------
# What every refusal answers (see `errors`): the status again, a message naming the first
# problems, and each problem with its field path.


class ErrorDetail(BaseModel):
    """One problem: the field's path (`spec.compute.gpuDevicesRequest`, `body`) and why. A
    policy's refusal adds the rule, the value it saw and the scope that set the rule."""

    model_config = ConfigDict(extra="allow")

    field: str
    reason: str


class ErrorBody(BaseModel):
    code: int = Field(description="the HTTP status, again")
    message: str
    details: list[ErrorDetail]


ERROR_MEANINGS = {
    400: "Bad request: a value that cannot be read or stored, or a query the API cannot use",
    401: "No token, a malformed or expired token, or wrong credentials",
    403: "The caller's access rules do not allow this",
    404: "Not found, or not visible to the caller",
    409: "Conflicts with the current state (a name in use, a unit still in use)",
    413: "The request body is larger than the API accepts",
    422: "Invalid request: each problem named by its field path",
    429: "Too many failed logins; try again after Retry-After seconds",
    503: "The service is starting or another Fairway service did not answer; try again after "
         "Retry-After seconds",
}


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again",
                                 "schema": {"type": "integer"}}}
ERROR_HEADERS = {
    401: {"WWW-Authenticate": {"description": "`Bearer` when the token is missing or bad",
                               "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of an operation's refusals, each with the error body it sends (and
    the headers that come with some)."""
    return {code: {"model": ErrorBody, "description": ERROR_MEANINGS[code],
                   **({"headers": ERROR_HEADERS[code]} if code in ERROR_HEADERS else {})}
            for code in codes}
