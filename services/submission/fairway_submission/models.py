"""What every slice's API models share: camelCase JSON, no unknown fields, DNS names."""

import re

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NODE_TYPE = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"  # a Kubernetes label value


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class NameValue(ApiModel):
    name: str = Field(min_length=1)
    value: str
