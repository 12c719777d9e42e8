"""Issue 7 on the whole stack: org changes reach the ORG stream (last value per subject), the
four workload types are accepted and published, a researcher sees only their project, and the
CLI drives the tour with a real login."""

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import nats
import pytest
from typer.testing import CliRunner

from fairway_cli.main import app

pytestmark = pytest.mark.e2e


async def last_on(nats_url: str, subject: str) -> dict:
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.jetstream().get_last_msg("FAIRWAY_ORG", subject)
        return json.loads(msg.data)
    finally:
        await nc.close()


async def eventually(check, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await check()
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


def login(stack, username: str, password: str) -> httpx.Client:
    r = httpx.post(f"{stack.api_url}/api/v1/token", json={
        "grantType": "password", "username": username, "password": password})
    assert r.status_code == 200, r.text
    return httpx.Client(base_url=stack.api_url, timeout=30,
                        headers={"Authorization": f"Bearer {r.json()['accessToken']}"})


async def test_org_changes_are_published_with_their_quotas(stack, api):
    # No label: a labelled pool would change which pool every node of the shared stack is in.
    r = api.post("/api/v1/node-pools", json={"name": "e2e-pool",
                                             "placementStrategy": {"gpu": "spread"}})
    assert r.status_code == 201, r.text
    dept = api.post("/api/v1/org-unit/departments", json={
        "name": "e2e-dept", "resources": [{"nodePool": {"name": "default"},
                                           "gpu": {"deserved": 8}}]}).json()
    project = api.post("/api/v1/org-unit/projects", json={
        "name": "e2e-team", "parentId": dept["id"],
        "resources": [{"nodePool": {"name": "default"},
                       "gpu": {"deserved": 2, "limit": 4, "overQuotaWeight": 3}}]}).json()
    api.put(f"/api/v1/org-unit/projects/{project['id']}", json={
        "resources": [{"nodePool": {"name": "default"}, "gpu": {"deserved": 3}}]})

    async def project_event():
        event = await last_on(stack.nats_url, f"fairway.org.project.{project['id']}")
        assert event["resources"][0]["gpu"]["deserved"] == 3
        return event

    event = await eventually(project_event)
    assert event["name"] == "e2e-team" and event["departmentId"] == dept["id"]
    department = await eventually(lambda: last_on(stack.nats_url,
                                                  f"fairway.org.department.{dept['id']}"))
    assert department["resources"][0]["gpu"]["deserved"] == 8
    pool = await eventually(lambda: last_on(stack.nats_url, "fairway.org.nodepool.e2e-pool"))
    assert pool["gpuPlacementStrategy"] == "spread" and pool["labelKey"] is None


def test_each_type_is_accepted_and_a_researcher_sees_only_their_project(stack, api):
    projects = {}
    for name in ("e2e-mine", "e2e-theirs"):
        projects[name] = api.post("/api/v1/org-unit/projects", json={"name": name}).json()["id"]
    specs = {
        "workspaces": {}, "trainings": {"annotations": [
            {"name": "sim.fairway.io/run-seconds", "value": "1"}]},
        "distributed": {"numWorkers": 1}, "inferences": {"servingPort": 8000},
    }
    ids = {}
    for plural, extra in specs.items():
        r = api.post(f"/api/v1/workloads/{plural}", json={
            "name": f"e2e-{plural}", "projectId": projects["e2e-theirs"],
            "spec": {"image": "busybox", **extra}})
        assert r.status_code == 202, r.text
        ids[plural] = r.json()["workloadId"]
    user = f"res-{uuid.uuid4().hex[:6]}"
    assert api.post("/api/v1/users", json={"username": user,
                                           "password": "researcher-pw"}).status_code == 201
    assert api.post("/api/v1/authorization/access-rules", json={
        "subjectType": "user", "subjectId": user, "roleName": "L1 researcher",
        "scopeType": "project", "scopeId": projects["e2e-mine"]}).status_code == 201
    with login(stack, user, "researcher-pw") as me:
        listed = me.get("/api/v1/workloads", params={"limit": 500}).json()
        assert all(w["projectName"] == "e2e-mine" for w in listed["workloads"])
        for plural, wid in ids.items():
            assert me.get(f"/api/v1/workloads/{wid}").status_code == 404
            assert me.post(f"/api/v1/workloads/{plural}/{wid}/suspend").status_code == 404
            assert me.delete(f"/api/v1/workloads/{plural}/{wid}").status_code == 404
        r = me.post("/api/v1/workloads/trainings", json={
            "name": "mine", "projectId": projects["e2e-mine"], "spec": {"image": "busybox"}})
        assert r.status_code == 202


def test_cli_tour_with_a_real_login(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRWAY_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setenv("FAIRWAY_STATE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("FAIRWAY_TOKEN", raising=False)
    monkeypatch.delenv("FAIRWAY_API_URL", raising=False)
    creds = json.loads((Path(stack.state_dir) / "admin.json").read_text())
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env={"COLUMNS": "220"})
        assert result.exit_code == code, result.output
        return result.output

    cli("login", "--url", stack.api_url, "-u", creds["username"], "--password",
        creds["password"])
    cli("project", "create", "cli-e2e", "--gpu", "1")
    cli("project", "set", "cli-e2e")
    cli("submit", "training", "t1", "-i", "busybox", "-g", "1",
        "--annotation", "sim.fairway.io/run-seconds=30")
    cli("submit", "workspace", "w1", "-i", "busybox")
    cli("submit", "distributed", "d1", "-i", "busybox", "--workers", "1")
    cli("submit", "inference", "i1", "-i", "busybox", "--serving-port", "8000")
    # three 8-GPU pods as one gang: each fits a node, the gang never fits beside the rest
    cli("submit", "distributed", "huge", "-i", "busybox", "--workers", "2", "-g", "8")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        huge = json.loads(cli("describe", "huge", "--json"))
        if huge["phase"] == "Pending" and huge["phaseMessage"]:
            break
        time.sleep(0.5)
    assert huge["phase"] == "Pending" and huge["phaseMessage"], huge
    described = cli("describe", "huge")
    assert "pending because" in described and huge["phaseMessage"][:30] in described
    line = next(ln for ln in cli("list").splitlines() if ln.split()[:1] == ["huge"])
    assert "Pending" in line
    listing = cli("list")
    for name in ("t1", "w1", "d1", "i1"):
        assert any(ln.split()[:1] == [name] for ln in listing.splitlines()), listing
    assert "t1" in cli("describe", "t1")
    cli("suspend", "t1")
    cli("resume", "t1")
    cli("delete", "w1")
    assert json.loads(cli("describe", "w1", "--json"))["desiredPhase"] == "Deleted"


def test_nodes_come_from_the_inventory(stack, api, monkeypatch, tmp_path):
    deadline = time.monotonic() + 30
    while True:
        nodes = api.get("/api/v1/nodes").json()["nodes"]
        if nodes or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert nodes and all(n["gpus"] >= 0 for n in nodes)
    monkeypatch.setenv("FAIRWAY_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setenv("FAIRWAY_STATE_DIR", str(stack.state_dir))
    result = CliRunner().invoke(app, ["top", "nodes"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert nodes[0]["name"] in result.output and "total" in result.output
