"""A workload's pod logs end to end: a training submitted through the API runs on kubesim, and
its log comes back through `GET /api/v1/workloads/{id}/pods/{pod}/logs` (whole, its tail,
followed as it is written) and through `fairway logs`, and what Kubernetes recorded about its
pod through `GET /api/v1/workloads/{id}/kubernetes-events`; a caller who may not see the
workload can read neither."""

import time
import uuid

import httpx
import pytest
from typer.testing import CliRunner

from fairway_cli.main import app
from tests.e2e.conftest import submit
from tests.e2e.test_organisation_and_access import login

pytestmark = pytest.mark.e2e

SCRIPT = "loading data\nepoch 1 loss=0.91\nepoch 2 loss=0.52\nepoch 3 loss=0.33"
STARTED = "[kubesim] container main started (image busybox)"


def wait_running(api, workload_id: str, timeout: float = 60.0) -> dict:
    """The workload's one pod once it runs."""
    deadline = time.monotonic() + timeout
    while True:
        pods = api.get(f"/api/v1/workloads/{workload_id}/pods").json()["pods"]
        if pods and pods[0]["phase"] == "Running":
            return pods[0]
        assert time.monotonic() < deadline, api.get(f"/api/v1/workloads/{workload_id}").json()
        time.sleep(0.3)


def test_a_trainings_log_through_the_api_and_the_cli(stack, api, default_project_id, held,
                                                      monkeypatch):
    wid = submit(api, "trainings", default_project_id, f"logs-{uuid.uuid4().hex[:6]}",
                 {"sim.fairway.io/log": SCRIPT, "sim.fairway.io/run-seconds": "7"})
    held.append(("trainings", wid))
    pod = wait_running(api, wid)["name"]
    path = f"/api/v1/workloads/{wid}/pods/{pod}/logs"

    whole = api.get(path)
    assert whole.status_code == 200, whole.text
    assert whole.headers["content-type"].startswith("text/plain")
    assert whole.text.splitlines()[0] == STARTED
    last = api.get(path, params={"tailLines": 1}).text.splitlines()
    assert len(last) == 1 and (last[0] in SCRIPT.splitlines() or last[0] == STARTED)
    stamped = api.get(path, params={"timestamps": "true"}).text.splitlines()[0]
    assert stamped.endswith(" " + STARTED) and stamped[:4].isdigit()

    # followed: the lines come as they are written and the answer ends with the container
    began = time.monotonic()
    arrivals = []
    with api.stream("GET", path, params={"follow": "true"},
                    timeout=httpx.Timeout(30.0, read=60.0)) as response:
        assert response.status_code == 200
        for chunk in response.iter_text():
            arrivals.append((time.monotonic() - began, chunk))
    followed = "".join(text for _, text in arrivals).splitlines()
    assert followed[:5] == [STARTED, *SCRIPT.splitlines()]
    assert followed[-1] == "[kubesim] container main exited with code 0 (Completed)"
    assert len(arrivals) >= 2 and arrivals[-1][0] - arrivals[0][0] > 1.0

    # refusals name what is wrong
    other = api.get(f"/api/v1/workloads/{wid}/pods/not-a-pod/logs")
    assert other.status_code == 404 and "not-a-pod" in other.json()["message"]
    missing = api.get(f"/api/v1/workloads/{uuid.uuid4()}/pods/{pod}/logs")
    assert missing.status_code == 404
    negative = api.get(path, params={"tailLines": -1})
    assert negative.status_code == 422 and negative.json()["details"][0]["field"].endswith(
        "tailLines")
    previous = api.get(path, params={"previous": "true"})
    assert previous.status_code == 409, previous.text
    assert previous.json()["details"][0]["field"] == "previous"
    container = api.get(path, params={"container": "sidecar"})
    assert container.status_code == 400 and container.json()["details"][0]["field"] == \
        "container"

    # what Kubernetes recorded about the pod, oldest first
    events = api.get(f"/api/v1/workloads/{wid}/kubernetes-events")
    assert events.status_code == 200, events.text
    reasons = [e["reason"] for e in events.json()["events"]]
    assert reasons[:1] == ["Scheduled"] and {"Pulled", "Started"} <= set(reasons), reasons
    assert {e["pod"] for e in events.json()["events"]} == {pod}

    # the CLI: the workload's first pod, named on stderr when there is a choice
    monkeypatch.setenv("FAIRWAY_STATE_DIR", str(stack.state_dir))
    monkeypatch.delenv("FAIRWAY_API_URL", raising=False)
    monkeypatch.delenv("FAIRWAY_TOKEN", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["logs", wid, "--tail", "1"])
    assert result.exit_code == 0, result.output
    assert result.output == "[kubesim] container main exited with code 0 (Completed)\n"
    result = runner.invoke(app, ["logs", wid, "-f", "--timestamps"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].endswith(" " + STARTED)
    result = runner.invoke(app, ["logs", wid, "--pod", "nope"])
    assert result.exit_code == 1 and "has no pod 'nope'" in result.output


def test_logs_are_refused_outside_the_callers_scope(stack, api, held):
    projects = {name: api.post("/api/v1/org-unit/projects", json={"name": name}).json()["id"]
                for name in (f"logs-mine-{uuid.uuid4().hex[:4]}",
                             f"logs-theirs-{uuid.uuid4().hex[:4]}")}
    mine, theirs = projects.values()
    wid = submit(api, "trainings", theirs, "their-training", compute={})
    held.append(("trainings", wid))
    pod = wait_running(api, wid)["name"]
    user = f"logs-{uuid.uuid4().hex[:6]}"
    assert api.post("/api/v1/users", json={"username": user,
                                           "password": "researcher-pw"}).status_code == 201
    assert api.post("/api/v1/authorization/access-rules", json={
        "subjectType": "user", "subjectId": user, "roleName": "L1 researcher",
        "scopeType": "project", "scopeId": mine}).status_code == 201
    assert api.get(f"/api/v1/workloads/{wid}/pods/{pod}/logs").status_code == 200
    with login(stack, user, "researcher-pw") as me:
        refused = me.get(f"/api/v1/workloads/{wid}/pods/{pod}/logs")
        assert refused.status_code == 404, refused.text
        assert me.get(f"/api/v1/workloads/{wid}/pods").status_code == 404  # as the pods
        assert me.get(f"/api/v1/workloads/{wid}/kubernetes-events").status_code == 404
    anonymous = httpx.get(f"{stack.api_url}/api/v1/workloads/{wid}/pods/{pod}/logs")
    assert anonymous.status_code == 401
