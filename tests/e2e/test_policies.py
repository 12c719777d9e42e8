"""Issue 8 (policies) on the whole stack: a department administrator sets a training policy with
the CLI; a researcher in one of the department's projects sees it, gets its default filled in,
and has a value refused with the reason (field, value, rule, and the scope that set it)."""

import httpx
import pytest
from typer.testing import CliRunner

from fairway_cli.main import app

pytestmark = pytest.mark.e2e

POLICY = """\
defaults:
  priorityClass: low
rules:
  compute:
    gpuDevicesRequest:
      max: 2
  image:
    options:
      - value: busybox
      - value: python:3.12
"""


def user(api: httpx.Client, stack, username: str, role: str, scope_type: str,
         scope_id: str) -> str:
    r = api.post("/api/v1/users", json={"username": username, "password": "s3cret-pass"})
    assert r.status_code == 201, r.text
    r = api.post("/api/v1/authorization/access-rules", json={
        "subjectType": "user", "subjectId": username, "roleName": role,
        "scopeType": scope_type, "scopeId": scope_id})
    assert r.status_code == 201, r.text
    r = httpx.post(f"{stack.api_url}/api/v1/token", json={
        "grantType": "password", "username": username, "password": "s3cret-pass"})
    assert r.status_code == 200, r.text
    return r.json()["accessToken"]


def cli_as(stack, tmp_path, token: str):
    runner = CliRunner()
    env = {"COLUMNS": "200", "FAIRWAY_API_URL": stack.api_url, "FAIRWAY_TOKEN": token,
           "FAIRWAY_STATE_DIR": str(tmp_path), "HOME": str(tmp_path)}

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_a_department_policy_shapes_a_researchers_submission(stack, api, tmp_path):
    dept = api.post("/api/v1/org-unit/departments", json={"name": "pe-ml"}).json()
    project = api.post("/api/v1/org-unit/projects",
                       json={"name": "pe-vision", "parentId": dept["id"]}).json()
    dana = cli_as(stack, tmp_path, user(api, stack, "pe-dana", "Department administrator",
                                        "department", dept["id"]))
    rita = cli_as(stack, tmp_path, user(api, stack, "pe-rita", "L1 researcher", "project",
                                        project["id"]))
    policy_file = tmp_path / "training-policy.yaml"
    policy_file.write_text(POLICY)

    # The department administrator checks, then sets, the department's training policy.
    out = dana("policy", "set", "training", str(policy_file), "--department", "pe-ml",
               "--validate-only")
    assert "is valid (nothing saved)" in out
    out = dana("policy", "set", "training", str(policy_file), "--department", "pe-ml")
    assert "saved" in out
    out = dana("policy", "get", "training", "--department", "pe-ml")
    assert "training policy of the department pe-ml (last set by pe-dana)" in out
    assert "gpuDevicesRequest:\n      max: 2" in out
    # ... but not the cluster's.
    out = dana("policy", "set", "training", str(policy_file), code=3)
    assert "403" in out

    # The researcher sees what applies in their project, and who set it.
    out = rita("policy", "effective", "training", "--project", "pe-vision")
    line = next(ln for ln in out.splitlines() if "compute.gpuDevicesRequest" in ln)
    assert "max 2" in line and "department pe-ml" in line
    assert "options [busybox, python:3.12]" in out
    out = rita("policy", "get", "training", "--department", "pe-ml", code=1)
    assert "no department 'pe-ml'" in out
    out = rita("policy", "get", "training", "--department", dept["id"], code=1)
    assert f"404: department {dept['id']} does not exist" in out

    # A submission within the rules gets the department's default filled in.
    rita("submit", "training", "pe-fits", "--project", "pe-vision", "--image", "busybox",
         "--gpu", "1")
    workloads = api.get("/api/v1/workloads", params={"filterBy": "name==pe-fits"}).json()
    [workload] = workloads["workloads"]
    assert workload["priorityClassName"] == "low"

    # One outside them is refused with every reason.
    out = rita("submit", "training", "pe-too-big", "--project", "pe-vision", "--image",
               "ubuntu:24.04", "--gpu", "4", code=1)
    assert "422" in out
    assert "spec.compute.gpuDevicesRequest: 4 is above the maximum of 2 (set by department "\
           "pe-ml)" in out
    assert "spec.image: 'ubuntu:24.04' is not allowed" in out
    assert api.get("/api/v1/workloads",
                   params={"filterBy": "name==pe-too-big"}).json()["totalCount"] == 0

    # The JSON view carries the sources for scripts.
    r = api.get("/api/v2/policy/trainings", params={"projectId": project["id"]})
    assert r.json()["effective"]["sources"]["defaults"]["priorityClass"] == {
        "scope": "department", "departmentId": dept["id"], "departmentName": "pe-ml"}
