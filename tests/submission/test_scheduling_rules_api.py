"""Scheduling rules and node types on departments and projects: validation by field path, a
project tightening but never loosening its department, the org events carrying them, and a
workload's node type checked at submission."""

from datetime import UTC, datetime

import pytest

from fairway_contracts import Phase, WorkloadType
from fairway_contracts.events import PhaseChanged
from fairway_submission import repository as repo
from tests.submission.conftest import start_harness

pytestmark = pytest.mark.infra

HOUR = 3600


@pytest.fixture(scope="module")
async def harness(database_url, tmp_path_factory):
    # A module of its own: the department and project names below must not meet other tests'.
    h = await start_harness(database_url, tmp_path_factory.mktemp("rules-state"))
    yield h
    for c in h.clients:
        await c.aclose()
    await h.service.pool.close()


@pytest.fixture(scope="module")
async def research(harness) -> dict:
    r = await harness.admin.post("/api/v1/org-unit/departments", json={
        "name": "sr-research",
        "schedulingRules": {"interactiveJobMaxIdleDurationSeconds": HOUR,
                            "trainingJobTimeLimitSeconds": 3 * 24 * HOUR},
        "nodeTypes": {"workspace": ["t4", "a100"], "training": ["a100"]}})
    assert r.status_code == 201, r.text
    return r.json()


async def test_department_rules_are_stored_shown_and_published(harness, research):
    assert research["schedulingRules"] == {"interactiveJobMaxIdleDurationSeconds": HOUR,
                                           "trainingJobTimeLimitSeconds": 3 * 24 * HOUR}
    assert research["nodeTypes"] == {"workspace": ["t4", "a100"], "training": ["a100"]}
    got = (await harness.admin.get(f"/api/v1/org-unit/departments/{research['id']}")).json()
    assert got["schedulingRules"] == research["schedulingRules"]
    events = await harness.outbox(f"fairway.org.department.{research['id']}")
    last = events[-1][1]
    assert last["schedulingRules"] == {
        "interactiveJobTimeLimitSeconds": None, "interactiveJobMaxIdleDurationSeconds": HOUR,
        "trainingJobTimeLimitSeconds": 3 * 24 * HOUR, "trainingJobMaxIdleDurationSeconds": None}
    assert last["nodeTypes"] == {"training": ["a100"], "workspace": ["t4", "a100"]}


@pytest.mark.parametrize(("rules", "field", "reason"), [
    ({"trainingJobTimeLimitSeconds": 0}, "schedulingRules.trainingJobTimeLimitSeconds",
     "greater than or equal to 1"),
    ({"interactiveJobMaxIdleDurationSeconds": "an hour"},
     "schedulingRules.interactiveJobMaxIdleDurationSeconds", "must be a number, not text"),
    ({"trainingJobIdleSeconds": 60}, "schedulingRules.trainingJobIdleSeconds",
     "is not a known field"),
    ({"interactiveJobTimeLimitSeconds": 10**9},
     "schedulingRules.interactiveJobTimeLimitSeconds", "less than or equal to"),
])
async def test_invalid_rules_name_the_field(harness, rules, field, reason):
    r = await harness.admin.post("/api/v1/org-unit/departments", json={
        "name": "sr-invalid", "schedulingRules": rules})
    assert r.status_code == 422, r.text
    detail = next(d for d in r.json()["details"] if d["field"] == field)
    assert reason in detail["reason"]


async def test_invalid_node_type_names_the_field(harness):
    r = await harness.admin.post("/api/v1/org-unit/departments", json={
        "name": "sr-invalid", "nodeTypes": {"workspace": ["ok", "not a label!"]}})
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["details"]] == ["nodeTypes.workspace[1]"]


async def test_project_may_tighten_its_department(harness, research):
    r = await harness.admin.post("/api/v1/org-unit/projects", json={
        "name": "sr-tight", "parentId": research["id"],
        "schedulingRules": {"interactiveJobMaxIdleDurationSeconds": 600,
                            "interactiveJobTimeLimitSeconds": 8 * HOUR},
        "nodeTypes": {"workspace": ["t4"]}})
    assert r.status_code == 201, r.text
    project = r.json()
    assert project["schedulingRules"] == {"interactiveJobMaxIdleDurationSeconds": 600,
                                          "interactiveJobTimeLimitSeconds": 8 * HOUR}
    events = await harness.outbox(f"fairway.org.project.{project['id']}")
    assert events[-1][1]["schedulingRules"]["interactiveJobMaxIdleDurationSeconds"] == 600
    assert events[-1][1]["departmentId"] == research["id"]


async def test_project_cannot_loosen_its_department(harness, research):
    r = await harness.admin.post("/api/v1/org-unit/projects", json={
        "name": "sr-loose", "parentId": research["id"],
        "schedulingRules": {"interactiveJobMaxIdleDurationSeconds": 2 * HOUR}})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["details"] == [{
        "field": "schedulingRules.interactiveJobMaxIdleDurationSeconds",
        "reason": "7,200 s would loosen department sr-research's limit of 3,600 s; a project "
                  "may only tighten it (at most 3,600)"}]
    assert "sr-research" in body["message"]
    r = await harness.admin.get("/api/v1/org-unit/projects")
    assert "sr-loose" not in [p["name"] for p in r.json()["projects"]]


async def test_project_update_cannot_loosen_and_can_clear(harness, research):
    r = await harness.admin.post("/api/v1/org-unit/projects", json={
        "name": "sr-update", "parentId": research["id"]})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await harness.admin.put(f"/api/v1/org-unit/projects/{pid}", json={
        "schedulingRules": {"trainingJobTimeLimitSeconds": 4 * 24 * HOUR}})
    assert r.status_code == 422, r.text
    assert r.json()["details"][0]["field"] == "schedulingRules.trainingJobTimeLimitSeconds"
    r = await harness.admin.put(f"/api/v1/org-unit/projects/{pid}", json={
        "nodeTypes": {"training": ["h100"]}})
    assert r.status_code == 422, r.text
    assert r.json()["details"] == [{
        "field": "nodeTypes.training[0]",
        "reason": "node type 'h100' is not allowed by department sr-research (it allows a100)"}]
    r = await harness.admin.put(f"/api/v1/org-unit/projects/{pid}", json={
        "schedulingRules": {"trainingJobTimeLimitSeconds": HOUR}})
    assert r.status_code == 200, r.text
    assert r.json()["schedulingRules"] == {"trainingJobTimeLimitSeconds": HOUR}
    r = await harness.admin.put(f"/api/v1/org-unit/projects/{pid}", json={
        "schedulingRules": None})
    assert r.status_code == 200 and r.json()["schedulingRules"] is None
    events = await harness.outbox(f"fairway.org.project.{pid}")
    assert events[-1][1]["schedulingRules"] is None
    assert events[-2][1]["schedulingRules"]["trainingJobTimeLimitSeconds"] == HOUR


async def _submit(harness, project_id: str, kind: str, name: str, **spec):
    return await harness.admin.post(f"/api/v1/workloads/{kind}", json={
        "name": name, "projectId": project_id, "spec": {"image": "python:3.12", **spec}})


async def test_workload_must_pick_an_allowed_node_type(harness, research):
    projects = (await harness.admin.get("/api/v1/org-unit/projects")).json()["projects"]
    tight = next(p for p in projects if p["name"] == "sr-tight")
    r = await _submit(harness, tight["id"], "workspaces", "nt-missing")
    assert r.status_code == 422, r.text
    assert r.json()["details"] == [{
        "field": "spec.nodeType",
        "reason": "is required: project sr-tight runs workspaces only on node types t4; "
                  "pick one"}]
    r = await _submit(harness, tight["id"], "workspaces", "nt-wrong", nodeType="a100")
    assert r.status_code == 422, r.text
    assert r.json()["details"][0]["reason"] == (
        "node type 'a100' is not allowed for workspaces by project sr-tight; use one of t4")
    r = await _submit(harness, tight["id"], "workspaces", "nt-bad", nodeType="no spaces")
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == "spec.nodeType"
    r = await _submit(harness, tight["id"], "workspaces", "nt-ok", nodeType="t4")
    assert r.status_code == 202, r.text
    events = await harness.outbox("fairway.workload.submitted.sr-tight.")
    assert events[-1][1]["spec"]["nodeType"] == "t4"
    # trainings follow the department's training list (the project sets none of its own)
    r = await _submit(harness, tight["id"], "trainings", "nt-train", nodeType="t4")
    assert r.status_code == 422
    assert "by department sr-research; use one of a100" in r.json()["details"][0]["reason"]
    r = await _submit(harness, tight["id"], "trainings", "nt-train", nodeType="a100")
    assert r.status_code == 202, r.text
    # inference is interactive work: the workspace list applies to it
    r = await _submit(harness, tight["id"], "inferences", "nt-serve")
    assert r.status_code == 422, r.text
    assert r.json()["details"] == [{
        "field": "spec.nodeType",
        "reason": "is required: project sr-tight runs inference workloads only on node types "
                  "t4; pick one"}]
    r = await _submit(harness, tight["id"], "inferences", "nt-serve", nodeType="t4")
    assert r.status_code == 202, r.text


async def test_no_node_types_means_any_node(harness, default_project):
    r = await _submit(harness, default_project["id"], "workspaces", "nt-free")
    assert r.status_code == 202, r.text
    events = await harness.outbox("fairway.workload.submitted.default.")
    assert events[-1][1]["spec"]["nodeType"] is None


async def test_a_rule_stop_shows_as_desired_stopped_in_the_view(harness, default_project):
    r = await _submit(harness, default_project["id"], "workspaces", "rule-stopped")
    busy = await _submit(harness, default_project["id"], "workspaces", "user-kept")
    assert r.status_code == 202 and busy.status_code == 202

    def stopping(wid: str, reason: str) -> PhaseChanged:
        return PhaseChanged(event_id=f"{wid}:9", workload_id=wid, name="w", project="default",
                            workload_type=WorkloadType.WORKSPACE, sequence=9,
                            previous_phase=Phase.RUNNING, phase=Phase.STOPPING, reason=reason,
                            message="stopped: idle for 4 s", time=datetime.now(UTC))

    async with harness.service.pool.acquire() as conn:
        await repo.apply_phase(conn, stopping(r.json()["workloadId"], "IdleGpuLimitReached"))
        # any other reason for Stopping leaves the desired phase to the API
        await repo.apply_phase(conn, stopping(busy.json()["workloadId"], "Stopping"))
    view = (await harness.admin.get(f"/api/v1/workloads/{r.json()['workloadId']}")).json()
    assert (view["phase"], view["desiredPhase"], view["phaseReason"]) == (
        "Stopping", "Stopped", "IdleGpuLimitReached")
    other = (await harness.admin.get(f"/api/v1/workloads/{busy.json()['workloadId']}")).json()
    assert other["desiredPhase"] == "Running"
