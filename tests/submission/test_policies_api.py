"""/api/v2/policy/<type> against a real policy service: the submission API in-process on real
PostgreSQL, talking to the policy service over a real NATS server (request/reply both for the
CRUD and for the evaluation of every submission)."""

import uuid

import pytest

from tests.submission.conftest import real_policy

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
async def api(harness, nats_url, database_url):
    """The harness wired to a policy service of its own (subjects with a test prefix)."""
    async with real_policy(harness, nats_url, database_url):
        yield harness


@pytest.fixture(scope="module")
async def org(api):
    admin = api.admin
    out = {}
    for dept, project in (("pol-ml", "pol-vision"), ("pol-other", "pol-nlp")):
        d = (await admin.post("/api/v1/org-unit/departments", json={"name": dept})).json()
        p = (await admin.post("/api/v1/org-unit/projects",
                              json={"name": project, "parentId": d["id"]})).json()
        out[dept], out[project] = d["id"], p["id"]
    out["dept_admin"] = await api.user("pol-dana", "Department administrator", "department",
                                       out["pol-ml"])
    out["researcher"] = await api.user("pol-rita", "L1 researcher", "project", out["pol-vision"])
    return out


def department(department_id: str, **policy) -> dict:
    return {"meta": {"scope": "department", "departmentId": department_id}, "policy": policy}


async def test_a_department_policy_shapes_submissions_in_its_projects(api, org):
    admin = org["dept_admin"]
    r = await admin.put("/api/v2/policy/trainings", json=department(
        org["pol-ml"], defaults={"backoffLimit": 2},
        rules={"compute": {"gpuDevicesRequest": {"max": 2}},
               "image": {"options": [{"value": "python:3.12"}, {"value": "busybox"}]}}))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["meta"]["scope"] == "department" and body["meta"]["updatedBy"] == "pol-dana"
    assert body["policy"]["rules"]["compute"] == {"gpuDevicesRequest": {"max": 2}}

    researcher = org["researcher"]
    r = await researcher.post("/api/v1/workloads/trainings", json={
        "name": "fits", "projectId": org["pol-vision"], "spec": {"image": "busybox"}})
    assert r.status_code == 202, r.text
    workload_id = r.json()["workloadId"]
    r = await researcher.post("/api/v1/workloads/trainings", json={
        "name": "too-big", "projectId": org["pol-vision"],
        "spec": {"image": "ubuntu", "compute": {"gpuDevicesRequest": 4}}})
    assert r.status_code == 422
    details = {d["field"]: d for d in r.json()["details"]}
    assert details["spec.compute.gpuDevicesRequest"]["value"] == 4
    assert details["spec.compute.gpuDevicesRequest"]["rule"] == "max: 2"
    assert details["spec.compute.gpuDevicesRequest"]["scope"] == "department pol-ml"
    assert details["spec.image"]["value"] == "ubuntu"
    # the other department is untouched
    r = await api.admin.post("/api/v1/workloads/trainings", json={
        "name": "big", "projectId": org["pol-nlp"],
        "spec": {"image": "ubuntu", "compute": {"gpuDevicesRequest": 4}}})
    assert r.status_code == 202, r.text

    # A later change does not touch what was already accepted.
    r = await admin.patch("/api/v2/policy/trainings", json=department(
        org["pol-ml"], defaults={"backoffLimit": 5}))
    assert r.status_code == 200, r.text
    assert r.json()["policy"]["rules"]["compute"] == {"gpuDevicesRequest": {"max": 2}}
    async with api.service.pool.acquire() as conn:
        effective = await conn.fetchval(
            "SELECT effective_spec FROM workloads WHERE workload_id = $1",
            uuid.UUID(workload_id))
    assert effective["backoffLimit"] == 2
    # The API shows what runs (the policy's default) and, apart, what was submitted.
    shown = (await researcher.get(f"/api/v1/workloads/{workload_id}")).json()
    assert shown["spec"]["backoffLimit"] == 2 and shown["spec"]["image"] == "busybox"
    assert shown["submittedSpec"]["image"] == "busybox"
    assert "backoffLimit" not in shown["submittedSpec"]


async def test_get_shows_own_and_effective_with_sources(api, org):
    admin = api.admin
    r = await admin.put("/api/v2/policy/workspaces", json={
        "meta": {"scope": "cluster"}, "policy": {"defaults": {"backoffLimit": 1,
                                                              "command": "sleep"}}})
    assert r.status_code == 200, r.text
    r = await admin.put("/api/v2/policy/workspaces", json={
        "meta": {"scope": "project", "projectId": org["pol-vision"]},
        "policy": {"defaults": {"backoffLimit": 3}}})
    assert r.status_code == 200, r.text

    r = await org["researcher"].get("/api/v2/policy/workspaces",
                                    params={"projectId": org["pol-vision"]})

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["meta"]["scope"] == "project"
    assert body["policy"]["defaults"] == {"backoffLimit": 3}
    assert body["effective"]["defaults"] == {"backoffLimit": 3, "command": "sleep"}
    sources = body["effective"]["sources"]["defaults"]
    assert sources["backoffLimit"]["scope"] == "project"
    assert sources["command"] == {"scope": "cluster"}
    r = await admin.delete("/api/v2/policy/workspaces", params={"scope": "cluster"})
    assert r.status_code == 204
    r = await admin.delete("/api/v2/policy/workspaces", params={"scope": "cluster"})
    assert r.status_code == 404


async def test_rules_live_at_one_level_of_a_branch(api, org):
    r = await api.admin.put("/api/v2/policy/inferences", json={
        "meta": {"scope": "project", "projectId": org["pol-vision"]},
        "policy": {"rules": {"servingPort": {"min": 8000}}}})
    assert r.status_code == 200, r.text

    r = await org["dept_admin"].put("/api/v2/policy/inferences", json=department(
        org["pol-ml"], rules={"servingPort": {"max": 9000}}))

    assert r.status_code == 422
    [detail] = r.json()["details"]
    assert detail["field"] == "policy.rules.servingPort.container"  # its old shape
    assert detail["scope"] == "project pol-vision"
    # the same rule in another branch is fine
    r = await api.admin.put("/api/v2/policy/inferences", json=department(
        org["pol-other"], rules={"servingPort": {"max": 9000}}))
    assert r.status_code == 200, r.text


async def test_validate_only_and_bad_policies(api, org):
    admin = org["dept_admin"]
    r = await admin.put("/api/v2/policy/distributed", params={"validateOnly": "true"},
                        json=department(org["pol-ml"], defaults={"numWorkers": 2}))
    assert r.status_code == 200 and r.json()["validated"] is True
    r = await admin.get("/api/v2/policy/distributed", params={"departmentId": org["pol-ml"]})
    assert r.json()["policy"] is None

    r = await admin.put("/api/v2/policy/distributed", json=department(
        org["pol-ml"], rules={"numWorkers": {"max": "many"}, "image": {"step": 2}},
        defaults={"gpus": 1}))
    assert r.status_code == 422
    assert {d["field"] for d in r.json()["details"]} == {
        "policy.rules.numWorkers.max", "policy.rules.image.step", "policy.defaults.gpus"}
    r = await admin.put("/api/v2/policy/spaceships", json=department(org["pol-ml"]))
    assert r.status_code == 404
    r = await admin.put("/api/v2/policy/trainings", json={"meta": {"scope": "galaxy"}})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "meta.scope"


ACCESS = [
    # (who, method, scope params, expected status)
    ("researcher", "get", {"projectId": "pol-vision"}, 200),
    ("researcher", "get", {"projectId": "pol-nlp"}, 404),
    ("researcher", "get", {"departmentId": "pol-ml"}, 404),
    ("researcher", "put", {"projectId": "pol-vision"}, 403),
    ("dept_admin", "put", {"departmentId": "pol-ml"}, 200),
    ("dept_admin", "put", {"projectId": "pol-vision"}, 200),
    ("dept_admin", "put", {"departmentId": "pol-other"}, 404),
    ("dept_admin", "put", {}, 403),  # the cluster is a system administrator's
    ("dept_admin", "get", {}, 200),
]


@pytest.mark.parametrize(("who", "method", "params", "status"), ACCESS)
async def test_who_may_see_and_set_policies_where(api, org, who, method, params, status):
    client = org[who]
    ids = {key: org[value] for key, value in params.items()}
    if method == "get":
        r = await client.get("/api/v2/policy/workspaces", params=ids)
    else:
        scope = "project" if "projectId" in ids else "department" if ids else "cluster"
        r = await client.put("/api/v2/policy/workspaces", params={"validateOnly": "true"},
                             json={"meta": {"scope": scope, **ids}, "policy": {}})
    assert r.status_code == status, r.text


async def test_a_policy_default_kubernetes_would_refuse_is_refused_at_submission(api, org):
    """A default is a value like any other: one that no pod could carry (here arguments that
    cannot be split) makes the submission 422 naming the field, not a workload that waits."""
    r = await api.admin.put("/api/v2/policy/trainings", json=department(
        org["pol-other"], defaults={"args": "python train.py --name 'unterminated"}))
    assert r.status_code == 200, r.text
    r = await api.admin.post("/api/v1/workloads/trainings", json={
        "name": "takes-default", "projectId": org["pol-nlp"], "spec": {"image": "busybox"}})
    assert r.status_code == 422, r.text
    [detail] = [d for d in r.json()["details"] if d["field"] == "spec.args"]
    assert "cannot be split" in detail["reason"] and "after policy" in detail["reason"]
    r = await api.admin.post("/api/v1/workloads/trainings", json={
        "name": "own-args", "projectId": org["pol-nlp"],
        "spec": {"image": "busybox", "args": "python train.py"}})
    assert r.status_code == 202, r.text
    r = await api.admin.put("/api/v2/policy/trainings", json=department(org["pol-other"]))
    assert r.status_code == 200, r.text


async def test_a_policy_default_for_an_elastic_bound_shows_in_the_workload_s_spec(api):
    admin = api.admin
    d = (await admin.post("/api/v1/org-unit/departments", json={"name": "pol-elastic"})).json()
    p = (await admin.post("/api/v1/org-unit/projects",
                          json={"name": "pol-elastic-a", "parentId": d["id"]})).json()
    r = await admin.put("/api/v2/policy/distributed", json=department(
        d["id"], defaults={"minReplicas": 1}, rules={"maxReplicas": {"max": 4}}))
    assert r.status_code == 200, r.text

    r = await admin.post("/api/v1/workloads/distributed", json={
        "name": "elastic", "projectId": p["id"],
        "spec": {"image": "busybox", "numWorkers": 3, "maxReplicas": 4}})
    assert r.status_code == 202, r.text
    shown = (await admin.get(f"/api/v1/workloads/{r.json()['workloadId']}")).json()
    assert (shown["spec"]["minReplicas"], shown["spec"]["minPods"]) == (1, 2)  # the default
    assert "minReplicas" not in shown["submittedSpec"]

    r = await admin.post("/api/v1/workloads/distributed", json={
        "name": "too-elastic", "projectId": p["id"],
        "spec": {"image": "busybox", "numWorkers": 3, "maxReplicas": 6}})
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["details"]] == ["spec.maxReplicas"]
