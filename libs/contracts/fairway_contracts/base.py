"""The base model of every message: camelCase on the wire, snake_case in Python."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Contract(BaseModel):
    """A payload that crosses a service boundary.

    Unknown fields are ignored so that a newer publisher never breaks an older consumer.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()
