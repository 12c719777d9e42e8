"""Every id in a path is parsed strictly: ASCII digits for numeric ids, the canonical
8-4-4-4-12 form for workload ids. Anything else names nothing (404), never a server error,
and never another spelling of an existing id ("١٢" read as 12, "{uuid}" or "urn:uuid:…" read
as that workload)."""

import uuid

import pytest

pytestmark = pytest.mark.infra

MALFORMED = ["²", "١٢", "-1", "+1", " 1", "1.0", "1e3", "0x1", "9" * 30, "x" * 300,
             "\u00a0", "%00", "%20", "null", "1;DROP", str(uuid.uuid4())]

# What a metrics query needs besides its path, so that the path's id is what decides.
QUERY = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z",
         "metricType": "GPU_UTILIZATION"}


async def paths_with_parameters(admin) -> list[tuple[str, str]]:
    """(method, path template) for every operation of the API with a path parameter; workload
    types get a real plural, so the id is what is tried."""
    document = (await admin.get("/api/openapi.json")).json()
    return [(method.upper(), path.replace("{workload_type}", "trainings"))
            for path, operations in document["paths"].items() if "{" in path
            for method in operations if method in ("get", "put", "patch", "post", "delete")]


async def test_no_path_id_is_a_server_error_and_a_malformed_one_names_nothing(harness):
    admin = harness.admin
    seen = []
    for method, template in await paths_with_parameters(admin):
        for bad in MALFORMED:
            path = template
            for name in ("user_id", "sa_id", "rule_id", "pool_id", "department_id",
                         "project_id", "workload_id", "pool", "policy_type"):
                path = path.replace("{" + name + "}", bad)
            r = await admin.request(method, path, params=QUERY if path.endswith("/metrics")
                                    else None,
                                    json={} if method in ("PUT", "PATCH", "POST") else None)
            seen.append((method, template))
            assert r.status_code < 500, (method, path, r.status_code, r.text)
            if method in ("GET", "DELETE") and "{" in template:
                assert r.status_code == 404, (method, path, r.status_code, r.text)
    assert len(set(seen)) >= 20


async def test_a_workload_answers_only_to_its_canonical_id(harness, default_project):
    r = await harness.admin.post("/api/v1/workloads/trainings", json={
        "name": "canonical", "projectId": default_project["id"],
        "spec": {"image": "busybox"}})
    assert r.status_code == 202, r.text
    wid = r.json()["workloadId"]
    assert (await harness.admin.get(f"/api/v1/workloads/{wid}")).status_code == 200
    assert (await harness.admin.get(f"/api/v1/workloads/{wid.upper()}")).status_code == 200
    arabic = wid.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for alias in (f"{{{wid}}}", f"urn:uuid:{wid}", wid.replace("-", ""), arabic):
        r = await harness.admin.get(f"/api/v1/workloads/{alias}")
        assert r.status_code == 404, (alias, r.text)
