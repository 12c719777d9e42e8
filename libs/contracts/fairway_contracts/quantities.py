"""Kubernetes resource quantities ("500m", "2", "16Gi", "1e3") read one way everywhere.

The grammar is the API server's (decimal and binary suffixes, exponents); `parse_quantity`
refuses what Kubernetes would refuse, so a quantity accepted at the door is one a pod can carry.
Conversions round up, as the API server rounds a request it stores.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?\d+))?$"
)
# The unsigned form the API accepts in a spec (memory sizes): digits, an optional fraction and
# one suffix. Used as a JSON-schema pattern, so the OpenAPI document states it too.
SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|[KMGTPE]i?)?$"
MIB = 2**20


def parse_quantity(value: object) -> Decimal:
    """A quantity as a number; ValueError on anything Kubernetes would reject."""
    if isinstance(value, bool):
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"quantities must be finite: {value!r}")
        return Decimal(str(value))
    if not isinstance(value, str):
        raise ValueError(f"quantities must be strings or numbers: {value!r}")
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"quantities must match the regular expression "
                         f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}")
    number, suffix, exponent = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"bad quantity {value!r}") from exc
    if exponent is not None:
        return base * (Decimal(10) ** int(exponent))
    return base * _SUFFIX[suffix or ""]


def quantity_value(value: object) -> float:
    """A quantity as a float (bytes for memory, cores for CPU), for comparisons."""
    return float(parse_quantity(value))


def to_millis(value: object) -> int:
    """A CPU quantity in millicores, rounded up."""
    return math.ceil(parse_quantity(value) * 1000)


def to_int(value: object) -> int:
    """A quantity as a whole number (memory bytes, GPUs, pods), rounded up."""
    return math.ceil(parse_quantity(value))


def memory_mib(value: object | None) -> int:
    """A memory quantity in MiB, rounded up; 0 when absent or unreadable (the API checked
    the quantities it stored, so unreadable means a node's odd status, read as nothing)."""
    if value is None or value == "":
        return 0
    try:
        return math.ceil(parse_quantity(value) / MIB)
    except ValueError:
        return 0


def cpu_millis(value: object | None) -> int:
    """A CPU quantity ("500m", "2", 1.5) in millicores, rounded up; 0 when absent or
    unreadable."""
    if value is None or value == "":
        return 0
    try:
        return to_millis(value)
    except ValueError:
        return 0


def cpu_string(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_string_mib(mib: int) -> str:
    return f"{mib * 1024}Ki"
