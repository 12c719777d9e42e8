"""PATCH bodies as the API server applies them: JSON merge patch (RFC 7386), strategic merge
patch for the simple cases clients send, and JSON patch (RFC 6902: add, remove, replace, test,
copy, move).

Strategic merge here means: maps merge as in a merge patch; lists whose elements carry a known
merge key (`conditions` by `type`, `containers` / `containerStatuses` by `name`, ...) merge
element by element, `{"$patch": "delete", <key>: ...}` removes one element, `$patch: replace`
replaces a map, `$setElementOrder/...` and `$retainKeys` are accepted and ignored; other lists
are replaced.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request, invalid

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

# list field name -> merge key, as in the Kubernetes API's patchMergeKey tags
MERGE_KEYS = {
    "conditions": "type",
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "ephemeralContainerStatuses": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ownerReferences": "uid",
    "podIPs": "ip",
    "hostIPs": "ip",
    "imagePullSecrets": "name",
    "readinessGates": "conditionType",
    "resourceClaims": "name",
}


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Return `target` with `patch` applied (target is not changed)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request("a JSON patch must be a list of operations")
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise bad_request("a merge patch must be a JSON object")
    if media == MERGE:
        return merge_patch(target, patch)
    if media == STRATEGIC:
        if target.get("kind") == "EndpointSlice":  # its lists are atomic: nothing merges
            return merge_patch(target, patch)
        return strategic_merge(target, patch)
    raise ApiError(415, "UnsupportedMediaType",
                   f"the body of the request was in an unknown format - accepted media types "
                   f"include: {JSON_PATCH}, {MERGE}, {STRATEGIC}")


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge(target: Any, patch: Any, field: str | None = None) -> Any:
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        if patch.get("$patch") == "delete":
            return None
        out = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
                continue
            if key.startswith("$deleteFromPrimitiveList/"):
                name = key.split("/", 1)[1]
                if isinstance(out.get(name), list) and isinstance(value, list):
                    out[name] = [v for v in out[name] if v not in value]
                continue
            if value is None:
                out.pop(key, None)
            elif isinstance(value, list) and key in MERGE_KEYS:
                out[key] = _merge_list(out.get(key), value, MERGE_KEYS[key], key)
            else:
                out[key] = strategic_merge(out.get(key), value, key)
        return out
    return copy.deepcopy(patch)


def _merge_list(target: Any, patch: list[Any], key: str, field: str) -> list[Any]:
    if field == "ports" and all(isinstance(p, dict) and "port" in p and key not in p
                                for p in patch):
        key = "port"  # a Service's ports merge by port, a container's by containerPort
    items = [dict(x) if isinstance(x, dict) else x for x in (target or [])]
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    for element in patch:
        if not isinstance(element, dict) or key not in element:
            raise invalid("Patch", "", [(field, "FieldValueRequired",
                                         f"every element of {field} needs its merge key "
                                         f"{key!r}")])
        index = next((i for i, x in enumerate(items)
                      if isinstance(x, dict) and x.get(key) == element[key]), None)
        if element.get("$patch") == "delete":
            if index is not None:
                del items[index]
            continue
        if index is None:
            items.append(strategic_merge({}, element))
        else:
            items[index] = strategic_merge(items[index], element)
    return items


# JSON patch ---------------------------------------------------------------------------------

def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    for part in parts:
        if isinstance(doc, dict):
            if part not in doc:
                raise _unprocessable(f"path {path!r} does not exist")
            doc = doc[part]
        elif isinstance(doc, list):
            doc = doc[_index(doc, part, path, allow_end=False)]
        else:
            raise _unprocessable(f"path {path!r} does not exist")
    return doc


def _index(seq: list[Any], part: str, path: str, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return len(seq)
    try:
        i = int(part)
    except ValueError:
        raise _unprocessable(f"invalid array index in {path!r}") from None
    if i < 0 or i > len(seq) or (i == len(seq) and not allow_end):
        raise _unprocessable(f"array index out of range in {path!r}")
    return i


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                    f"request: {message}")


def json_patch(target: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    doc: Any = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request("every JSON patch operation needs `op` and `path`")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if kind == "test":
            if _walk(doc, parts, path) != op.get("value"):
                raise _unprocessable(f"testing value {path} failed")
            continue
        if kind in ("copy", "move"):
            src_parts = _pointer(op.get("from", ""))
            value = copy.deepcopy(_walk(doc, src_parts, op.get("from", "")))
            if kind == "move":
                doc = _remove(doc, src_parts, op.get("from", ""))
            doc = _add(doc, parts, path, value, replace=False)
        elif kind == "add":
            doc = _add(doc, parts, path, copy.deepcopy(op.get("value")), replace=False)
        elif kind == "replace":
            _walk(doc, parts, path)
            doc = _add(doc, parts, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "remove":
            doc = _remove(doc, parts, path)
        else:
            raise bad_request(f"unknown JSON patch operation {kind!r}")
    if not isinstance(doc, dict):
        raise _unprocessable("the patched document is not an object")
    return doc


def _add(doc: Any, parts: list[str], path: str, value: Any, replace: bool) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        i = _index(parent, last, path, allow_end=not replace)
        if replace:
            parent[i] = value
        else:
            parent.insert(i, value)
    else:
        raise _unprocessable(f"path {path!r} does not exist")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        raise _unprocessable("cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"path {path!r} does not exist")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, path, allow_end=False)]
    else:
        raise _unprocessable(f"path {path!r} does not exist")
    return doc
