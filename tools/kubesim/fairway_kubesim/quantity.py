"""Kubernetes resource quantities: the same reading as the rest of Fairway."""

from fairway_contracts.quantities import (
    cpu_string,
    memory_string_mib,
    parse_quantity,
    to_int,
    to_millis,
)

__all__ = ["cpu_string", "memory_string_mib", "parse_quantity", "to_int", "to_millis"]
