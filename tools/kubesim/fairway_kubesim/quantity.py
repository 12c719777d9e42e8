"""Kubernetes resource quantities ("500m", "2", "16Gi", "1e3") to numbers."""

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


def parse_quantity(value: object) -> Decimal:
    """Parse a quantity; raises ValueError on anything Kubernetes would reject."""
    if isinstance(value, bool):
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    if isinstance(value, int | float):
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


def to_millis(value: object) -> int:
    """CPU quantity to millicores, rounded up as the API server rounds."""
    return math.ceil(parse_quantity(value) * 1000)


def to_int(value: object) -> int:
    """Quantity to a whole number (memory bytes, GPUs, pods), rounded up."""
    return math.ceil(parse_quantity(value))


def cpu_string(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_string_mib(mib: int) -> str:
    return f"{mib * 1024}Ki"
