"""Field paths in a spec tree: `compute.gpuDevicesRequest` reads and writes nested objects;
an itemized default is keyed `path[name]` (one entry per item of a list keyed by name)."""

import copy
from collections.abc import Mapping
from typing import Any


def item_key(key: str) -> tuple[str, str | None]:
    """(path, item name) of a key; the name is None for a whole field."""
    if key.endswith("]") and "[" in key:
        path, name = key[:-1].split("[", 1)
        return path, name
    return key, None


def items(value: Any) -> list[dict[str, Any]]:
    """The items of an itemized value (anything else reads as none)."""
    return [i for i in value if isinstance(i, Mapping)] if isinstance(value, list) else []


def get(tree: Mapping[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def put(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at `path`, creating the objects above it."""
    *parents, last = path.split(".")
    node = tree
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Values by path as the nested tree they name."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        put(out, path, copy.deepcopy(value))
    return out
