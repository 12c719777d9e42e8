"""What every slice's API models share: camelCase JSON, no unknown fields in requests, DNS
names, and the error body every refusal answers (`errors` documents it per operation)."""

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NODE_TYPE = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"  # a Kubernetes label value


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ApiAnswer(BaseModel):
    """A response body: camelCase JSON, built from what a route returns."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# A time as the API writes it: ISO 8601 with the offset, kept as the route wrote it.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class NameValue(ApiModel):
    name: str = Field(min_length=1)
    value: str


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
