"""Inference that serves and scales, end to end: through the API and policy, lifecycle (its
Service, its autoscaler), the scheduler and kubesim (the Service's endpoints, the simulated
request load), and back into the API's view of the workload."""

import asyncio
import itertools
import time
import uuid

import httpx
import pytest
from kubernetes import client, config
from typer.testing import CliRunner

from fairway_cli.main import app
from tests.e2e.conftest import (
    ask_delete,
    create,
    ensure_simulated_pools,
    submit,
    wait_deleted,
)

pytestmark = pytest.mark.e2e

FAST = {"sim.fairway.io/pull-seconds": "0.1", "sim.fairway.io/start-seconds": "0.1"}
# No GPU: replicas come and go freely without waiting for devices other tests hold.
BASE = {"priorityClass": "inference", "compute": {"cpuCoreRequest": 0.1},
        "restartPolicy": "Always"}


@pytest.fixture(scope="module")
def project(api) -> dict:
    return create(api, "/api/v1/org-unit/projects", {"name": f"serve-{uuid.uuid4().hex[:6]}"})


@pytest.fixture
def serve(api, project, held):
    """Submit an inference server into the module's project (deleted when the test ends)."""

    def submit_server(name: str, **spec) -> str:
        wid = submit(api, "inferences", project["id"], name, FAST, **{**BASE, **spec})
        held.append(("inferences", wid))
        return wid

    return submit_server


@pytest.fixture(scope="module")
def kube(stack) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=stack.kubeconfig))


@pytest.fixture(scope="module")
def kubesim(stack):
    with httpx.Client(base_url=stack.info()["processes"]["kubesim"]["url"],
                      timeout=10) as admin:
        yield admin


def until(api, wid: str, check, what: str, timeout: float = 60.0) -> dict:
    """The workload as the API shows it, once `check(workload)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        w = api.get(f"/api/v1/workloads/{wid}").json()
        if check(w):
            return w
        assert time.monotonic() < deadline, f"never {what}: {w}"
        time.sleep(0.25)


def set_load(kubesim, project: dict, wid: str, requests_per_second: float) -> None:
    r = kubesim.put(f"/admin/load/fairway-{project['name']}/{wid}",
                    json={"requestsPerSecond": requests_per_second})
    assert r.status_code == 200, r.text


def describe(stack, monkeypatch, name: str, project: str) -> str:
    monkeypatch.setenv("FAIRWAY_STATE_DIR", str(stack.state_dir))
    monkeypatch.delenv("FAIRWAY_API_URL", raising=False)
    monkeypatch.delenv("FAIRWAY_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["describe", name, "--project", project],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


async def test_an_inference_server_runs_with_an_endpoint_and_its_service_has_the_ready_replicas(
        api, serve, project, kube, phases, stack, monkeypatch):
    wid = serve("llm", servingPort=8000, autoscaling={"minReplicas": 2})

    events = await phases.read(wid, until={"Running", "Failed"})
    assert events[-1]["phase"] == "Running"
    w = until(api, wid, lambda w: w["readyReplicas"] == 2 and w["endpoint"],
              "two ready replicas with an endpoint")

    namespace = f"fairway-{project['name']}"
    service = f"llm-{wid[:8]}"
    assert w["endpoint"] == f"http://{service}.{namespace}.svc.cluster.local"
    assert w["urls"] == [w["endpoint"]] and w["desiredReplicas"] == 2
    svc = kube.read_namespaced_service(service, namespace)
    assert svc.spec.type == "ClusterIP" and svc.spec.cluster_ip
    [port] = svc.spec.ports
    assert (port.name, port.port, port.target_port) == ("serving", 80, 8000)
    pods = kube.list_namespaced_pod(namespace, label_selector=f"fairway.io/workload-id={wid}")
    endpoints = kube.read_namespaced_endpoints(service, namespace)
    addresses = {a.ip for subset in endpoints.subsets or () for a in subset.addresses or ()}
    assert addresses == {p.status.pod_ip for p in pods.items} and len(addresses) == 2
    # the telemetry API counts the same replicas (from the metrics service)
    deadline = time.monotonic() + 30
    while True:
        values = api.get("/api/v1/workloads/telemetry", params={
            "telemetryType": "INFERENCE_READY_REPLICAS", "projectId": project["id"]}).json()
        mine = [v["value"] for v in values["values"]
                if {"key": "workload", "value": wid, "name": "llm"} in v["groups"]]
        if mine == ["2"] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert mine == ["2"], values
    described = describe(stack, monkeypatch, "llm", project["name"])
    assert f"endpoint: {w['endpoint']}  (public, cluster-local)" in described
    assert "replicas: 2 ready of 2 desired" in described

    # deleted with the workload
    ask_delete(api, "inferences", wid)
    wait_deleted(api, wid)
    deadline = time.monotonic() + 30
    while True:
        try:
            kube.read_namespaced_service(service, namespace)
        except client.ApiException as exc:
            assert exc.status == 404
            break
        assert time.monotonic() < deadline, "the Service outlived its workload"
        time.sleep(0.3)


async def test_load_raises_replicas_to_the_max_then_scales_to_zero_and_a_request_wakes_it(
        api, serve, project, kubesim, kube, phases):
    wid = serve("chat", servingPort=8000, autoscaling={
        "minReplicas": 0, "maxReplicas": 3, "metric": "throughput", "metricThreshold": 10,
        "scaleToZeroRetentionSeconds": 3})
    await phases.read(wid, until={"Running", "Failed"})

    set_load(kubesim, project, wid, 45)  # 45 req/s at 10 per replica: 5, held to the max 3
    w = until(api, wid, lambda w: w["readyReplicas"] == 3, "three ready replicas")
    assert w["desiredReplicas"] == 3 and w["phase"] == "Running"
    assert w["serving"]["requestsPerSecond"] == 45

    set_load(kubesim, project, wid, 0)  # no request: after 3 s, nothing runs
    w = until(api, wid, lambda w: w["desiredReplicas"] == 0 and w["readyReplicas"] == 0,
              "scaled to zero")
    assert (w["phase"], w["phaseReason"]) == ("Running", "ScaledToZero") and w["urls"]
    # its replicas are shutting down (a grace period each): none is ready behind the Service
    namespace, service = f"fairway-{project['name']}", f"chat-{wid[:8]}"
    endpoints = kube.read_namespaced_endpoints(service, namespace)
    assert not [a for s in endpoints.subsets or () for a in s.addresses or ()]

    set_load(kubesim, project, wid, 4)  # a request arrives: one replica again
    w = until(api, wid, lambda w: w["readyReplicas"] == 1, "woken with one ready replica")
    assert w["desiredReplicas"] == 1


async def test_flapping_load_does_not_flap_replicas(api, serve, project, kubesim, stack):
    wid = serve("flappy", servingPort=8000, autoscaling={
        "minReplicas": 1, "maxReplicas": 4, "metric": "throughput", "metricThreshold": 10})
    until(api, wid, lambda w: w["readyReplicas"] == 1, "one ready replica")

    seen = []
    for i in range(12):  # 25 and 5 req/s in turns, a second each: the 4 s window holds
        set_load(kubesim, project, wid, 25 if i % 2 == 0 else 5)
        await asyncio.sleep(1)
        seen.append(api.get(f"/api/v1/workloads/{wid}").json()["desiredReplicas"])

    rises = [b for a, b in itertools.pairwise(seen) if b != a]
    assert max(seen) >= 2  # it did scale up for the peaks
    assert all(b > a for a, b in itertools.pairwise(seen) if b != a), seen
    assert len(rises) <= 2, seen


async def test_replicas_above_the_minimum_are_preempted_first_and_wait_to_come_back(
        api, kubesim, held, phases):
    """A project held at two GPUs: an inference server scaled to two replicas holds both;
    a more urgent training takes the surplus replica's GPU, the server keeps its minimum and
    stays Running, and the replica it lost is made again and waits for room."""
    ensure_simulated_pools(api)
    limited = create(api, "/api/v1/org-unit/projects", {
        "name": f"serve-lim-{uuid.uuid4().hex[:6]}",
        "resources": [{"nodePool": {"name": "a100"}, "gpu": {"deserved": 2, "limit": 2}}]})
    server = submit(api, "inferences", limited["id"], "srv", FAST, **{
        **BASE, "compute": {"gpuDevicesRequest": 1}, "nodePools": ["a100"],
        "preemptibility": "preemptible", "servingPort": 8000,
        "autoscaling": {"minReplicas": 1, "maxReplicas": 2, "metric": "throughput",
                        "metricThreshold": 10}})
    held.append(("inferences", server))
    await phases.read(server, until={"Running", "Failed"})
    set_load(kubesim, limited, server, 20)
    until(api, server, lambda w: w["readyReplicas"] == 2, "two ready replicas")

    urgent = submit(api, "trainings", limited["id"], "urgent", FAST, priorityClass="very-high",
                    nodePools=["a100"])
    held.append(("trainings", urgent))
    events = await phases.read(urgent, until={"Running", "Failed"})
    assert events[-1]["phase"] == "Running"

    w = until(api, server, lambda w: w["readyReplicas"] == 1 and w["runningPods"] == 1,
              "down to its minimum")
    assert w["phase"] == "Running" and w["desiredReplicas"] == 2
    pods = api.get(f"/api/v1/workloads/{server}/pods").json()["pods"]
    waiting = [p for p in pods if not p.get("node")]
    assert len(pods) == 2 and len(waiting) == 1  # the lost replica, made again, waits
