"""The CLI drives a tour against the API: log in, create a project, submit each workload
type, list, describe a pending one and read its reason, suspend, resume, delete; errors name
the field and exit non-zero."""

import json
import os
import stat
import uuid
from datetime import UTC, datetime

import pytest

from fairway_contracts import Phase
from fairway_contracts.events import PhaseChanged
from fairway_submission import repository as repo
from tests.cli.conftest import admin_password

pytestmark = pytest.mark.infra


def login_admin(cli, server) -> None:
    out = cli("login", "--url", server.url, "--username", "admin", "--password",
              admin_password(server))
    assert "logged in" in out


def test_login_stores_the_token_privately_and_logout_forgets_it(cli, server, tmp_path):
    cli("whoami", code=3)  # not logged in
    login_admin(cli, server)
    path = tmp_path / "config.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(path.read_text())["apiUrl"] == server.url
    out = cli("whoami")
    assert "admin" in out and "System administrator on cluster" in out
    assert json.loads(cli("whoami", "--json"))["subject"] == "admin"
    cli("logout")
    assert "token" not in json.loads(path.read_text())
    out = cli("login", "--url", server.url, "--username", "admin", "--password", "wrong",
              code=3)
    assert "401" in out


def pend(server, workload_id: str, message: str) -> None:
    async def feed():
        async with server.harness.service.pool.acquire() as conn:
            for seq, (prev, ph) in enumerate(((None, Phase.CREATING),
                                              (Phase.CREATING, Phase.PENDING)), start=1):
                await repo.apply_phase(conn, PhaseChanged(
                    event_id=f"{workload_id}:{seq}", workload_id=workload_id, name="tr",
                    project="tour",
                    workload_type="training", sequence=seq, previous_phase=prev, phase=ph,
                    reason="Unschedulable" if ph is Phase.PENDING else "Submitted",
                    message=message if ph is Phase.PENDING else "accepted",
                    time=datetime.now(UTC)))

    server.run(feed())


def row(listing: str, name: str) -> str:
    return next(ln for ln in listing.splitlines() if ln.split()[:1] == [name])


def test_the_tour(cli, server):
    login_admin(cli, server)
    cli("department", "create", "tour-dept", "--gpu", "8")
    depts = json.loads(cli("department", "list", "--json"))
    dept = next(d for d in depts if d["name"] == "tour-dept")
    out = cli("project", "create", "tour", "--department", dept["id"], "--gpu", "4")
    assert "project tour created" in out
    out = cli("project", "create", "too-big", "--department", dept["id"], "--gpu", "5", code=1)
    assert "resources[0].gpu.deserved" in out
    cli("project", "set", "tour")
    assert row(cli("project", "list"), "*").split()[1] == "tour"
    half = json.loads(cli("submit", "workspace", "half", "-i", "jupyter/base", "-g", "0.5",
                          "--env", "A=1", "--json"))
    assert half["requestedResources"]["gpu"] == 0.5
    assert half["requestedResources"]["gpuPortion"] == 0.5
    dyn = json.loads(cli("submit", "workspace", "dyn", "-i", "jupyter/base",
                         "--gpu-portion-request", "0.25", "--gpu-portion-limit", "0.75",
                         "--gpu-devices", "2", "--json"))
    assert dyn["requestedResources"]["gpu"] == 0.5
    assert dyn["requestedResources"]["gpuPortionLimit"] == 0.75
    mem = json.loads(cli("submit", "workspace", "mem", "-i", "jupyter/base",
                         "--gpu-memory-request", "10Gi", "--gpu-memory-limit", "20Gi",
                         "--json"))
    assert mem["requestedResources"]["gpuMemory"] == "10Gi"
    out = cli("submit", "workspace", "odd", "-i", "jupyter/base", "-g", "1.5", code=1)
    assert "whole GPUs" in out and "--gpu-portion-request" in out
    out = cli("submit", "workspace", "ws", "-i", "jupyter/base", "--gpu", "1", "--cpu", "2",
              "--memory", "4Gi", "--label", "team=a")
    assert "workspace ws submitted to project tour" in out
    t = json.loads(cli("submit", "training", "tr", "-i", "busybox", "-g", "1",
                       "--command", "sleep 1", "--completions", "1", "--priority", "train",
                       "--annotation", "sim.fairway.io/run-seconds=1", "--json"))
    assert t["type"] == "training" and t["spec"]["annotations"][0]["value"] == "1"
    d = json.loads(cli("submit", "distributed", "dist", "-i", "pytorch", "-g", "2", "--workers",
                       "3", "--min-replicas", "2", "--max-replicas", "4", "--framework",
                       "PyTorch", "--master-image", "pytorch-launcher", "--master-gpu", "0",
                       "--master-env", "ROLE=master", "--json"))
    assert d["submittedSpec"]["masterSpecSameAsWorker"] is False
    assert d["submittedSpec"]["masterSpec"] == {
        "image": "pytorch-launcher", "environmentVariables": [{"name": "ROLE", "value": "master"}],
        "compute": {"gpuDevicesRequest": 0}}
    master = d["spec"]["masterSpec"]  # what runs: the master's own image and no GPU
    assert master["image"] == "pytorch-launcher" and master["compute"]["gpuDevicesRequest"] == 0
    assert (d["spec"]["minReplicas"], d["spec"]["maxReplicas"], d["spec"]["minPods"]) == (2, 4, 3)
    cli("submit", "inference", "inf", "-i", "vllm", "--serving-port", "8000",
        "--min-replicas", "1", "--max-replicas", "3", "--metric", "concurrency",
        "--metric-threshold", "10", "--non-preemptible")
    listing = cli("list")
    for name, kind in (("ws", "workspace"), ("tr", "training"), ("dist", "distributed"),
                       ("inf", "inference")):
        line = row(listing, name)
        assert kind in line and "tour" in line
    data = json.loads(cli("list", "--json"))
    assert data["totalCount"] == 7  # and the three fractions
    dist = next(w for w in data["workloads"] if w["name"] == "dist")
    # three workers of 2 GPUs; the master (a launcher) asks for none and is counted so
    assert dist["requestedPods"] == 4 and dist["requestedResources"]["gpu"] == 6

    described = cli("describe", "inf")
    assert "endpoint: - (not reported yet)  (public, cluster-local)" in described
    assert "replicas: 0 ready of 1 desired" in described

    pend(server, t["workloadId"], "waiting for 1 GPU; project tour is over its quota")
    listing = cli("list")
    line = row(listing, "tr")
    assert "Pending" in line and "over its quota" in line
    described = cli("describe", "tr")
    assert "pending because" in described and "over its quota" in described
    assert "Creating" in described and "Unschedulable" in described
    # What the policy service decided beside what was submitted (a default backoffLimit).
    assert "decided:" in described and "backoffLimit=" in described

    assert "suspend requested" in cli("suspend", "tr")
    assert "→ Stopped" in row(cli("list"), "tr")
    assert "resume requested" in cli("resume", "tr")
    assert "delete requested" in cli("delete", "tr", "ws")
    data = json.loads(cli("describe", "tr", "--json"))
    assert data["desiredPhase"] == "Deleted" and data["events"][1]["to"] == "Pending"
    top = cli("top", "projects")
    assert "tour" in top and "FAIR SHARE" in top


def test_errors_name_the_field_and_exit_non_zero(cli, server):
    login_admin(cli, server)
    out = cli("submit", "training", "x", "-p", "nope", "-i", "busybox", code=1)
    assert "no project 'nope'" in out
    out = cli("submit", "training", "x", "-p", "default", "-i", "busybox", "--annotation",
              "novalue", code=1)
    assert "NAME=VALUE" in out
    out = cli("submit", "training", "x", "-p", "default", "-i", "busybox", "--gpu-portion",
              "0.5", "--gpu-portion-limit", "0.25", code=1)
    assert "spec.compute.gpuPortionLimit" in out
    out = cli("submit", "distributed", "x", "-p", "default", "-i", "busybox", code=1)
    assert "spec.numWorkers" in out
    out = cli("submit", "training", "x", "-p", "default", "-i", "busybox", "--node-pools",
              "atlantis", code=1)
    assert "spec.nodePools[0]" in out
    out = cli("describe", str(uuid.uuid4()), code=1)
    assert "404" in out


def test_unreachable_api(cli, monkeypatch):
    monkeypatch.setenv("FAIRWAY_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("FAIRWAY_TOKEN", "x")
    out = cli("list", code=4)
    assert "cannot reach" in out
