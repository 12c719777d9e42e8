"""Label and field selectors, as the API server parses and matches them."""

from __future__ import annotations

import pytest

from fairway_kubesim.errors import ApiError
from fairway_kubesim.selectors import parse_field_selector, parse_label_selector


def obj(labels: dict[str, str] | None = None, **fields: str) -> dict:
    return {"metadata": {"name": fields.get("name", "p"), "namespace": "ns",
                         "labels": labels or {}},
            "spec": {"nodeName": fields.get("node")} if "node" in fields else {},
            "status": {"phase": fields.get("phase", "Pending")}}


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("a=b", {"a": "b"}, True),
    ("a==b", {"a": "c"}, False),
    ("a!=b", {}, True),
    ("a!=b", {"a": "b"}, False),
    ("a=b,c!=d,e in (x,y)", {"a": "b", "c": "z", "e": "y"}, True),
    ("a=b,c!=d,e in (x,y)", {"a": "b", "c": "d", "e": "y"}, False),
    ("a=b, e in (x, y)", {"a": "b", "e": "q"}, False),
    ("e notin (x,y)", {}, True),
    ("e notin (x,y)", {"e": "x"}, False),
    ("a", {"a": ""}, True),
    ("!a", {"a": ""}, False),
    ("!a,b", {"b": "1"}, True),
    ("n>3", {"n": "4"}, True),
    ("n<3", {"n": "4"}, False),
    ("fairway.io/pool=a100", {"fairway.io/pool": "a100"}, True),
])
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    match = parse_label_selector(selector)
    assert match is not None and match(obj(labels)) is expected


@pytest.mark.parametrize("selector", ["a in (x", "=b", "a=b,", "a in ()", "a b", "n>x"])
def test_bad_label_selectors_are_400(selector: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_label_selector(selector)
    assert info.value.code == 400 and info.value.reason == "BadRequest"


def test_empty_selectors_match_everything() -> None:
    assert parse_label_selector("") is None and parse_field_selector(None, "pods") is None


def test_field_selectors() -> None:
    unbound = parse_field_selector("spec.nodeName=", "pods")
    assert unbound(obj()) and not unbound(obj(node="n1"))
    on_node = parse_field_selector("spec.nodeName=n1,status.phase!=Failed", "pods")
    assert on_node(obj(node="n1", phase="Running"))
    assert not on_node(obj(node="n1", phase="Failed"))
    assert parse_field_selector("metadata.name==p,metadata.namespace=ns", "pods")(obj())
    with pytest.raises(ApiError, match=r"field label not supported: spec\.foo") as info:
        parse_field_selector("spec.foo=1", "pods")
    assert info.value.code == 400
