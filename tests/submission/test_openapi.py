"""The committed OpenAPI document is the one the API serves."""

from pathlib import Path

import fairway_submission
from fairway_submission.openapi import render

COMMITTED = Path(fairway_submission.__file__).parents[1] / "openapi.json"


def test_committed_openapi_document_is_current():
    assert COMMITTED.read_text() == render(), (
        "services/submission/openapi.json is stale: run "
        "`.venv/bin/python -m fairway_submission.openapi > services/submission/openapi.json`")


def test_every_documented_path_is_under_api_v1_or_the_v2_policies():
    import json

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
                 "/api/v1/workloads/{workload_id}/events"):
        assert path in paths, path
