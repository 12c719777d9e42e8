"""What every slice's API models share: camelCase JSON, no unknown fields, DNS names, and the
rules every request field keeps whatever its model: no NUL character in any text (PostgreSQL
and Kubernetes refuse it), no infinite or NaN numbers (JSON's `Infinity` and `NaN` parse in
Python), and numbers are numbers (`true` or `"3"` is not a count)."""

import re
import types
import typing
from typing import Any

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
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _numeric(field.annotation) and isinstance(value, bool | str):
            raise ValueError("must be a number, not " + (
                "true or false" if isinstance(value, bool) else "text"))
        if _has_nul(value):
            raise ValueError("must not contain the NUL character")
        return value


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
