"""The committed OpenAPI document is the one the API serves, and it describes the API: who
must bring a token, every status an operation answers with the body it sends, and the shape of
every success."""

import json
from pathlib import Path

import fairway_submission
from fairway_submission.openapi import render

COMMITTED = Path(fairway_submission.__file__).parents[1] / "openapi.json"


def operations() -> list[tuple[str, str, dict]]:
    doc = json.loads(COMMITTED.read_text())
    return [(method.upper(), path, op) for path, item in doc["paths"].items()
            for method, op in item.items()]


def schema_of(response: dict) -> dict | None:
    return response.get("content", {}).get("application/json", {}).get("schema")


def test_committed_openapi_document_is_current():
    assert COMMITTED.read_text() == render(), (
        "services/submission/openapi.json is stale: run "
        "`.venv/bin/python -m fairway_submission.openapi > services/submission/openapi.json`")


def test_every_documented_path_is_under_api_v1_or_the_v2_policies():
    paths = json.loads(COMMITTED.read_text())["paths"]
    assert all(p.startswith(("/api/v1/", "/api/v2/policy/")) for p in paths)
    assert "/api/v2/policy/{policy_type}" in paths and "/api/v1/workloads/telemetry" in paths
    for path in ("/api/v1/token", "/api/v1/users", "/api/v1/service-accounts",
                 "/api/v1/authorization/access-rules", "/api/v1/node-pools",
                 "/api/v1/org-unit/departments", "/api/v1/org-unit/projects",
                 "/api/v1/workloads/workspaces", "/api/v1/workloads/trainings",
                 "/api/v1/workloads/distributed", "/api/v1/workloads/inferences",
                 "/api/v1/workloads", "/api/v1/workloads/batch",
                 "/api/v1/workloads/{workload_id}/pods",
                 "/api/v1/workloads/{workload_id}/pods/{pod}/logs",
                 "/api/v1/workloads/{workload_id}/events"):
        assert path in paths, path


def test_every_operation_but_the_token_needs_a_bearer_token():
    schemes = json.loads(COMMITTED.read_text())["components"]["securitySchemes"]
    assert schemes == {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                  "description": "A token from POST /api/v1/token"}}
    for method, path, op in operations():
        if (method, path) == ("POST", "/api/v1/token"):
            assert "security" not in op
        else:
            assert op.get("security") == [{"bearer": []}], (method, path)
            assert "401" in op["responses"], (method, path)
        # The token travels in the scheme, not as a header parameter of each operation.
        assert all(p["in"] != "header" for p in op.get("parameters", [])), (method, path)


def test_every_refusal_is_documented_with_the_error_body_the_api_sends():
    doc = json.loads(COMMITTED.read_text())
    assert set(doc["components"]["schemas"]["ErrorBody"]["required"]) == {
        "code", "message", "details"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for method, path, op in operations():
        refusals = {code: r for code, r in op["responses"].items() if code[0] in "45"}
        assert "503" in refusals, (method, path)  # starting, or a peer did not answer
        if op.get("parameters") or "requestBody" in op:
            assert "422" in refusals, (method, path)
        for code, response in refusals.items():
            assert schema_of(response) == {"$ref": "#/components/schemas/ErrorBody"}, (
                method, path, code)
        if "requestBody" in op:
            assert "413" in refusals, (method, path)


def test_every_success_has_a_documented_shape():
    doc = json.loads(COMMITTED.read_text())
    components = doc["components"]["schemas"]
    for method, path, op in operations():
        [(code, response)] = [(c, r) for c, r in op["responses"].items() if c[0] == "2"]
        if code == "204":
            assert schema_of(response) is None, (method, path)
            continue
        if "text/plain" in response.get("content", {}):  # a pod's log
            assert response["content"]["text/plain"]["schema"] == {"type": "string"}
            continue
        ref = schema_of(response)["$ref"].split("/")[-1]
        assert components[ref].get("properties"), (method, path, ref)
