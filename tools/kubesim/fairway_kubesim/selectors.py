"""Label and field selectors, parsed and matched as the API server does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import ApiError, bad_request

Predicate = Callable[[Mapping[str, Any]], bool]

_SPECIAL = set("!=(),<> \t\n")


def _tokens(text: str) -> list[tuple[str, str]]:
    """Lex a label selector into (kind, text) tokens."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\n":
            i += 1
        elif c == "!":
            if i + 1 < n and text[i + 1] == "=":
                out.append(("op", "!="))
                i += 2
            else:
                out.append(("not", "!"))
                i += 1
        elif c == "=":
            if i + 1 < n and text[i + 1] == "=":
                out.append(("op", "=="))
                i += 2
            else:
                out.append(("op", "="))
                i += 1
        elif c in "<>":
            out.append(("op", c))
            i += 1
        elif c in "(),":
            out.append((c, c))
            i += 1
        else:
            j = i
            while j < n and text[j] not in _SPECIAL:
                j += 1
            word = text[i:j]
            out.append(("op" if word in ("in", "notin") else "id", word))
            i = j
    return out


def _parse_error(text: str, why: str) -> ApiError:
    return bad_request(f"unable to parse requirement: {why}")


# A recursive-descent parser over the token list reads best as one loop with its cases in
# the grammar's order; splitting it would scatter the grammar.
def parse_label_selector(text: str | None) -> Predicate | None:  # noqa: C901, PLR0915
    """Compile a label selector to a predicate over an object; None matches everything."""
    if text is None or not text.strip():
        return None
    toks = _tokens(text)
    reqs: list[Callable[[Mapping[str, str]], bool]] = []
    pos = 0

    def peek() -> tuple[str, str] | None:
        return toks[pos] if pos < len(toks) else None

    while True:
        tok = peek()
        if tok is None:
            raise _parse_error(text, "found '', expected: identifier")
        negate = False
        if tok[0] == "not":
            negate = True
            pos += 1
            tok = peek()
        if tok is None or tok[0] != "id":
            found = tok[1] if tok else ""
            raise _parse_error(text, f"found '{found}', expected: identifier")
        key = tok[1]
        _check_key(key, text)
        pos += 1
        tok = peek()
        if negate:
            if tok is not None and tok[0] != ",":
                raise _parse_error(text, f"found '{tok[1]}', expected: ','")
            reqs.append(lambda labels, k=key: k not in labels)
        elif tok is None or tok[0] == ",":
            reqs.append(lambda labels, k=key: k in labels)
        elif tok[0] == "op":
            op = tok[1]
            pos += 1
            if op in ("in", "notin"):
                tok = peek()
                if tok is None or tok[0] != "(":
                    raise _parse_error(text, f"found '{tok[1] if tok else ''}', expected: '('")
                pos += 1
                values: set[str] = set()
                expect_value = True
                while True:
                    tok = peek()
                    if tok is None:
                        raise _parse_error(text, "found '', expected: ')'")
                    pos += 1
                    if tok[0] == ")":
                        break
                    if tok[0] == "," and not expect_value:
                        expect_value = True
                        continue
                    if tok[0] == "id" and expect_value:
                        values.add(tok[1])
                        expect_value = False
                        continue
                    raise _parse_error(text, f"found '{tok[1]}', expected: ',', ')' or "
                                       "identifier")
                if not values:
                    raise bad_request(f"invalid selector {text!r}: for 'in', 'notin' "
                                      "operators, values set can't be empty")
                if op == "in":
                    reqs.append(lambda labels, k=key, vs=frozenset(values):
                                labels.get(k) in vs)
                else:
                    reqs.append(lambda labels, k=key, vs=frozenset(values):
                                labels.get(k) not in vs)
            else:
                tok = peek()
                value = ""
                if tok is not None and tok[0] == "id":
                    value = tok[1]
                    pos += 1
                if op in ("<", ">"):
                    try:
                        bound = int(value)
                    except ValueError:
                        raise _parse_error(text, f"for 'Gt', 'Lt' operators, the value must "
                                           f"be an integer, got {value!r}") from None
                    reqs.append(_compare(key, bound, op == ">"))
                elif op == "!=":
                    reqs.append(lambda labels, k=key, v=value: labels.get(k) != v)
                else:
                    reqs.append(lambda labels, k=key, v=value: k in labels and labels[k] == v)
        else:
            raise _parse_error(text, f"found '{tok[1]}', expected: '=', '!=', '==', 'in', "
                               "'notin'")
        tok = peek()
        if tok is None:
            break
        if tok[0] != ",":
            raise _parse_error(text, f"found '{tok[1]}', expected: ','")
        pos += 1

    def match(obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(req(labels) for req in reqs)

    return match


def _compare(key: str, bound: int, greater: bool) -> Callable[[Mapping[str, str]], bool]:
    def check(labels: Mapping[str, str]) -> bool:
        if key not in labels:
            return False
        try:
            value = int(labels[key])
        except ValueError:
            return False
        return value > bound if greater else value < bound

    return check


def _check_key(key: str, text: str) -> None:
    prefix, _, name = key.rpartition("/")
    if not name or len(name) > 63 or len(prefix) > 253:
        raise bad_request(f"unable to parse requirement: invalid label key {key!r}")


# Field selectors ---------------------------------------------------------------------------

def _path(*keys: str) -> Callable[[Mapping[str, Any]], str]:
    def get(obj: Mapping[str, Any]) -> str:
        cur: Any = obj
        for key in keys:
            if not isinstance(cur, Mapping):
                return ""
            cur = cur.get(key)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return get


_COMMON_FIELDS = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}
FIELDS: dict[str, dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "pods": {
        **_COMMON_FIELDS,
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": lambda obj: "true" if obj.get("spec", {}).get("hostNetwork")
        else "false",
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    "nodes": {
        **_COMMON_FIELDS,
        "spec.unschedulable": lambda obj: "true" if obj.get("spec", {}).get("unschedulable")
        else "false",
    },
    "namespaces": {**_COMMON_FIELDS, "status.phase": _path("status", "phase")},
    "events": {
        **_COMMON_FIELDS,
        **{f"involvedObject.{f}": _path("involvedObject", f) for f in (
            "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": _path("source", "component"),
        "type": _path("type"),
    },
}


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_field_selector(text: str | None, resource: str) -> Predicate | None:
    """Compile a field selector for `resource` (pods, nodes, namespaces)."""
    if text is None or not text.strip():
        return None
    fields = FIELDS.get(resource, _COMMON_FIELDS)
    reqs: list[tuple[Callable[[Mapping[str, Any]], str], str, bool]] = []
    for term in _split_unescaped(text, ","):
        if not term.strip():
            continue
        for op in ("!=", "==", "="):
            idx = _find_unescaped(term, op)
            if idx >= 0:
                field, value = term[:idx].strip(), _unescape(term[idx + len(op):].strip())
                negate = op == "!="
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        getter = fields.get(field)
        if getter is None:
            raise bad_request(f'field label not supported: {field}')
        reqs.append((getter, value, negate))
    if not reqs:
        return None

    def match(obj: Mapping[str, Any]) -> bool:
        for getter, value, negate in reqs:
            if (getter(obj) == value) == negate:
                return False
        return True

    return match


def _find_unescaped(term: str, op: str) -> int:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        if term.startswith(op, i):
            return i
        i += 1
    return -1


def combine(*preds: Predicate | None) -> Predicate | None:
    active = [p for p in preds if p is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]
    return lambda obj: all(p(obj) for p in active)
