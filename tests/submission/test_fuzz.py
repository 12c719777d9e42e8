"""Fuzz the API from its own OpenAPI document: for every operation, bodies, path and query
values generated from the schema and then broken in random ways (wrong types, missing and
unknown fields, huge numbers, NUL characters, deep nesting). Nothing answers 5xx; every error
is the JSON error shape. The policy service is the real one over NATS (policy routes and every
submission's evaluation). Deterministic (seeded), so a failure reproduces."""

import random
from typing import Any

import pytest

from tests.submission.conftest import real_policy

pytestmark = pytest.mark.infra

ROUNDS = 25
NASTY_STRINGS = ["", " ", "\x00", "a" * 5000, "../../etc/passwd", "'; DROP TABLE x; --",
                 "名前", "-1", "1e309", "99999999999999999999999", "default", "%s%n",
                 "00000000-0000-0000-0000-000000000000", "1"]
NASTY_NUMBERS = [0, -1, 1, 0.5, 2**63, -(2**63), 1e308, -1e308, 10**30, 3.7]


def resolve(schema: dict, doc: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].split("/")[-1]]
    return schema


def nasty(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice(NASTY_STRINGS)
    if kind == 1:
        return rng.choice(NASTY_NUMBERS)
    if kind == 2:
        return rng.choice([None, True, False])
    if kind == 3:
        return rng.choice(NASTY_STRINGS[:3])
    if kind == 4:
        return [nasty(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(["x", "name", "spec", "gpu"]): nasty(rng, depth + 1)
            for _ in range(rng.randrange(3))}


def generate(schema: dict, doc: dict, rng: random.Random, depth: int = 0) -> Any:
    """A value that mostly fits `schema`, sometimes not."""
    schema = resolve(schema, doc)
    if depth > 6 or rng.random() < 0.08:
        return nasty(rng, depth)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return generate(rng.choice(schema[key]), doc, rng, depth + 1)
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        out = {}
        required = set(schema.get("required", []))
        for name, sub in schema.get("properties", {}).items():
            if (name in required and rng.random() < 0.9) or rng.random() < 0.5:
                out[name] = generate(sub, doc, rng, depth + 1)
        if rng.random() < 0.1:
            out["unexpected"] = nasty(rng)
        return out
    if kind == "array":
        return [generate(schema.get("items", {}), doc, rng, depth + 1)
                for _ in range(rng.randrange(4))]
    if kind == "string":
        return rng.choice([*NASTY_STRINGS, "busybox", "team-a", "portion", "memory"])
    if kind == "integer":
        return rng.choice([0, 1, 2, 3, -1, 64, 65, 2**40])
    if kind == "number":
        return rng.choice(NASTY_NUMBERS)
    if kind == "boolean":
        return rng.random() < 0.5
    return nasty(rng, depth)


@pytest.fixture(scope="module")
async def api(harness, nats_url, database_url):
    async with real_policy(harness, nats_url, database_url):
        yield harness


async def test_no_5xx_from_anything_the_openapi_allows_or_breaks(api, default_project):
    admin = api.admin
    r = await admin.get("/api/v2/policy/trainings")
    assert r.status_code == 200, r.text  # the real policy service answers
    doc = (await admin.get("/api/openapi.json")).json()
    rng = random.Random(7)
    seen = 0
    for path, operations in sorted(doc["paths"].items()):
        for method, op in sorted(operations.items()):
            if method == "delete" and "{" not in path:
                continue
            if path == "/api/v1/token":
                continue  # covered by the login tests (and would trip the rate limiter)
            body_schema = (op.get("requestBody", {}).get("content", {})
                           .get("application/json", {}).get("schema"))
            for _ in range(ROUNDS):
                url = path
                for param in op.get("parameters", []):
                    if param["in"] == "path":
                        value = rng.choice([default_project["id"], "1", "default",
                                            "trainings", "99999999999999999999",
                                            "00000000-0000-0000-0000-000000000000", "%00",
                                            "x" * 300])
                        url = url.replace("{" + param["name"] + "}", value)
                query = {p["name"]: generate(p.get("schema", {}), doc, rng)
                         for p in op.get("parameters", [])
                         if p["in"] == "query" and rng.random() < 0.6}
                query = {k: str(v) for k, v in query.items() if v is not None}
                kwargs: dict[str, Any] = {"params": query}
                if body_schema is not None:
                    body = generate(body_schema, doc, rng)
                    if isinstance(body, dict) and "projectId" in body and rng.random() < 0.5:
                        body["projectId"] = default_project["id"]
                    kwargs["json"] = body
                r = await admin.request(method.upper(), url, **kwargs)
                seen += 1
                assert r.status_code < 500, (method, url, kwargs, r.text)
                if r.status_code >= 400:
                    error = r.json()
                    assert set(error) == {"code", "message", "details"}, error
                    assert "Traceback" not in r.text
    assert seen > 500
