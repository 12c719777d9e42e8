"""The telemetry API through the public API (submission asks the metrics service over NATS):
every telemetry type and metric type answers, a researcher sees only their projects, and bad
parameters are 422 naming the parameter."""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from fairway_contracts.telemetry import MetricType
from tests.e2e.conftest import create, ensure_simulated_pools, release
from tests.e2e.conftest import submit as submit_workload

pytestmark = pytest.mark.e2e

POOL = "a100"


def submit(api, kind: str, project_id: str, name: str, annotations: dict[str, str] | None = None,
           **spec) -> str:
    return submit_workload(api, kind, project_id, name, annotations,
                           **{"nodePools": [POOL], **spec})


async def until(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def login(stack, username: str, password: str) -> httpx.Client:
    r = httpx.post(f"{stack.api_url}/api/v1/token", json={
        "grantType": "password", "username": username, "password": password})
    assert r.status_code == 200, r.text
    return httpx.Client(base_url=stack.api_url, timeout=30,
                        headers={"Authorization": f"Bearer {r.json()['accessToken']}"})


def telemetry(client, **params) -> dict:
    response = client.get("/api/v1/workloads/telemetry", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def by_group(answer: dict) -> dict[tuple, str]:
    return {tuple(g["name"] for g in v["groups"]): v["value"] for v in answer["values"]}


@pytest.fixture(scope="module")
def org(api):
    tag = uuid.uuid4().hex[:6]
    ensure_simulated_pools(api)
    dept = create(api, "/api/v1/org-unit/departments", {
        "name": f"tl-{tag}", "resources": [{"nodePool": {"name": POOL},
                                            "gpu": {"deserved": 3}}]})
    mine = create(api, "/api/v1/org-unit/projects", {
        "name": f"tl-mine-{tag}", "parentId": dept["id"],
        "resources": [{"nodePool": {"name": POOL}, "gpu": {"deserved": 1, "limit": 1}}]})
    theirs = create(api, "/api/v1/org-unit/projects", {
        "name": f"tl-theirs-{tag}",
        "resources": [{"nodePool": {"name": POOL}, "gpu": {"deserved": 1}}]})
    runs = submit(api, "trainings", mine["id"], "runs", {"sim.fairway.io/run-seconds": "3600"})
    waits = submit(api, "workspaces", mine["id"], "waits", compute={"gpuDevicesRequest": 2})
    other = submit(api, "trainings", theirs["id"], "other",
                   {"sim.fairway.io/run-seconds": "3600"})
    yield {"dept": dept, "mine": mine, "theirs": theirs, "runs": runs, "waits": waits}
    release(api, [("trainings", runs), ("trainings", other), ("workspaces", waits)])


async def test_each_telemetry_type_answers(api, org):
    mine = org["mine"]

    def settled() -> None:
        count = telemetry(api, telemetryType="WORKLOADS_COUNT", groupBy="project,phase",
                          projectId=mine["id"])
        assert by_group(count) == {(mine["name"], "Running"): "1",
                                   (mine["name"], "Pending"): "1"}, count
        assert count["type"] == "WORKLOADS_COUNT" and count["timestamp"]
        assert count["values"][0]["groups"][0] == {
            "key": "project", "value": mine["id"], "name": mine["name"]}
        gpus = telemetry(api, telemetryType="GPU_ALLOCATION", groupBy=["type"],
                         projectId=mine["id"])
        assert by_group(gpus) == {("training",): "1", ("workspace",): "0"}, gpus
        waiting = telemetry(api, telemetryType="PENDING_TIME_DISTRIBUTION",
                            departmentId=org["dept"]["id"])
        assert sum(int(v) for v in by_group(waiting).values()) == 1
        assert {k[-1] for k in by_group(waiting)} >= {"0-1m", "1-5m", "6h+"}

    await until(settled)
    everything = telemetry(api, telemetryType="WORKLOADS_COUNT", groupBy="project")
    assert (org["theirs"]["name"],) in by_group(everything)
    none = telemetry(api, telemetryType="GPU_ALLOCATION")
    assert len(none["values"]) == 1 and none["values"][0]["groups"] == []


async def test_each_metric_type_answers_for_projects_departments_and_pools(api, org):
    start = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    metric_types = ",".join(m.value for m in MetricType)
    paths = {
        "project": f"/api/v1/org-unit/projects/{org['mine']['id']}/metrics",
        "department": f"/api/v1/org-unit/departments/{org['dept']['id']}/metrics",
        "nodepool": f"/api/v1/node-pools/{POOL}/metrics",
    }

    def sampled() -> dict[str, dict]:
        answers = {}
        end = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
        for scope, path in paths.items():
            r = api.get(path, params={"metricType": metric_types, "start": start, "end": end,
                                      "numberOfSamples": 10})
            assert r.status_code == 200, r.text
            answers[scope] = {m["type"]: m for m in r.json()["measurements"]}
            assert set(answers[scope]) == {m.value for m in MetricType}
        project = answers["project"]
        assert project["GPU_QUOTA"]["values"], "a sample was stored"
        assert project["GPU_QUOTA"]["values"][-1]["value"] == "1"
        assert project["GPU_ALLOCATION"]["values"][-1]["value"] == "1"
        assert project["GPU_REQUESTED"]["values"][-1]["value"] == "3"
        assert answers["department"]["GPU_QUOTA"]["values"][-1]["value"] == "3"
        pool = answers["nodepool"]
        assert float(pool["GPU_CAPACITY"]["values"][-1]["value"]) > 0
        assert float(pool["GPU_ALLOCATION"]["values"][-1]["value"]) >= 1
        return answers

    answers = await until(sampled, timeout=90)  # samples are stored every 15 s
    for measurements in answers.values():
        for m in measurements.values():
            assert len(m["values"]) <= 10
    assert answers["project"]["GPU_QUOTA"]["labels"] == {"projectId": org["mine"]["id"]}


def test_a_researcher_sees_only_their_projects(stack, api, org):
    user = f"tl-{uuid.uuid4().hex[:6]}"
    assert api.post("/api/v1/users", json={"username": user,
                                           "password": "researcher-pw"}).status_code == 201
    assert api.post("/api/v1/authorization/access-rules", json={
        "subjectType": "user", "subjectId": user, "roleName": "L1 researcher",
        "scopeType": "project", "scopeId": org["mine"]["id"]}).status_code == 201
    with login(stack, user, "researcher-pw") as me:
        counted = telemetry(me, telemetryType="WORKLOADS_COUNT", groupBy="project")
        assert {g[0] for g in by_group(counted)} == {org["mine"]["name"]}
        theirs = me.get("/api/v1/workloads/telemetry", params={
            "telemetryType": "WORKLOADS_COUNT", "projectId": org["theirs"]["id"]})
        assert theirs.status_code == 404 and theirs.json()["details"][0]["field"] == "projectId"
        window = {"metricType": "GPU_QUOTA", "start": "2026-01-01T00:00:00Z",
                  "end": "2030-01-01T00:00:00Z"}
        other = me.get(f"/api/v1/org-unit/projects/{org['theirs']['id']}/metrics",
                       params=window)
        assert other.status_code == 404
        own = me.get(f"/api/v1/org-unit/projects/{org['mine']['id']}/metrics", params=window)
        assert own.status_code == 200, own.text


@pytest.mark.parametrize(("params", "field"), [
    ({}, "telemetryType"),
    ({"telemetryType": "NOPE"}, "telemetryType"),
    ({"telemetryType": "WORKLOADS_COUNT", "groupBy": "project,type,phase"}, "groupBy"),
    ({"telemetryType": "WORKLOADS_COUNT", "groupBy": "colour"}, "groupBy"),
    ({"telemetryType": "WORKLOADS_COUNT", "groupBy": "type,type"}, "groupBy"),
])
def test_bad_telemetry_parameters_are_named(api, params, field):
    response = api.get("/api/v1/workloads/telemetry", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["field"] == field


@pytest.mark.parametrize(("params", "field"), [
    ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}, "metricType"),
    ({"metricType": "GPU_FOO", "start": "2026-01-01T00:00:00Z",
      "end": "2026-01-02T00:00:00Z"}, "metricType"),
    ({"metricType": "GPU_QUOTA", "start": "yesterday", "end": "2026-01-02T00:00:00Z"},
     "start"),
    ({"metricType": "GPU_QUOTA", "end": "2026-01-02T00:00:00Z"}, "start"),
    ({"metricType": "GPU_QUOTA", "start": "2026-01-02T00:00:00Z",
      "end": "2026-01-01T00:00:00Z"}, "end"),
    ({"metricType": "GPU_QUOTA", "start": "2026-01-01T00:00:00Z",
      "end": "2026-01-02T00:00:00Z", "numberOfSamples": 0}, "numberOfSamples"),
])
def test_bad_metrics_parameters_are_named(api, org, params, field):
    response = api.get(f"/api/v1/org-unit/projects/{org['mine']['id']}/metrics", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["field"] == field


def test_unknown_scopes_are_not_found(api):
    window = {"metricType": "GPU_QUOTA", "start": "2026-01-01T00:00:00Z",
              "end": "2026-01-02T00:00:00Z"}
    assert api.get("/api/v1/org-unit/projects/999999/metrics", params=window).status_code == 404
    assert api.get("/api/v1/org-unit/departments/999999/metrics",
                   params=window).status_code == 404
    assert api.get("/api/v1/node-pools/no-such-pool/metrics", params=window).status_code == 404
    unknown = api.get("/api/v1/workloads/telemetry",
                      params={"telemetryType": "WORKLOADS_COUNT", "projectId": "999999"})
    assert unknown.status_code == 404 and unknown.json()["details"][0]["field"] == "projectId"
