"""A third-party Deployment borrows idle GPUs over its project's quota and gives them back pod by
pod, never below its minimum, when another project reclaims its fair share (issue 18). A stack
of its own, one 4-GPU node, so that reclaim touches no other test's workloads."""

import asyncio
import time

import nats
import pytest
from kubernetes import client, config

from fairway_contracts import streams, subjects
from fairway_contracts.events import WorkloadSubmitted
from tests.e2e.conftest import admin_client, stack_of_its_own

pytestmark = pytest.mark.e2e

PROFILE = """
cluster:
  nodePools:
    - {name: tr, labelKey: fairway.io/node-pool, labelValue: tr}
  nodes:
    - name: tr-1
      labels: {fairway.io/node-pool: tr}
      gpus: 4
      gpuMemoryMiB: 40960
      cpuMillis: 64000
      memoryMiB: 262144
"""


@pytest.fixture(scope="module")
def reclaim_stack(tmp_path_factory):
    with stack_of_its_own(tmp_path_factory, "tpreclaim", PROFILE) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(reclaim_stack):
    with admin_client(reclaim_stack) as c:
        yield c


@pytest.fixture(scope="module")
def kube(reclaim_stack) -> client.ApiClient:
    return config.new_client_from_config(config_file=reclaim_stack.kubeconfig)


def wait_until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def project(api, name: str, deserved: int) -> str:
    response = api.post("/api/v1/org-unit/projects", json={
        "name": name, "resources": [{"nodePool": {"name": "tr"}, "gpu": {"deserved": deserved}}]})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def third_party(api, name: str) -> dict | None:
    listed = api.get("/api/v1/workloads", params={"filterBy": "type==thirdParty"}).json()
    return next((w for w in listed["workloads"] if w["name"] == name), None)


def pods_by_phase(core: client.CoreV1Api, namespace: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for pod in core.list_namespaced_pod(namespace).items:
        if pod.metadata.deletion_timestamp is None:
            found.setdefault(pod.status.phase, []).append(pod)
    return found


def scheduler_request(nats_url: str, project: str, wid: str) -> WorkloadSubmitted:
    """The last request the scheduler was sent for the workload."""
    async def read() -> WorkloadSubmitted:
        connection = await nats.connect(nats_url)
        try:
            msg = await connection.jetstream().get_last_msg(
                streams.WORKLOADS.name, subjects.workload_submitted(project, wid))
            return WorkloadSubmitted.model_validate_json(msg.data)
        finally:
            await connection.close()

    return asyncio.run(read())


def scheduled(pod):
    return next((c for c in pod.status.conditions or () if c.type == "PodScheduled"), None)


def test_a_deployment_borrows_idle_gpus_and_is_reclaimed_pod_by_pod(
        api, kube, reclaim_stack):
    pool = api.post("/api/v1/node-pools", json={
        "name": "tr", "labelKey": "fairway.io/node-pool", "labelValue": "tr"})
    assert pool.status_code in (201, 409), pool.text
    lender = project(api, "lender", 1)
    late = project(api, "late", 3)
    core = client.CoreV1Api(kube)
    core.create_namespace({"metadata": {"name": "web", "labels": {
        "fairway.io/project": "lender"}}})

    # 3 replicas of 1 GPU in a project that deserves 1: it borrows 2 idle GPUs
    client.AppsV1Api(kube).create_namespaced_deployment("web", {
        "metadata": {"name": "serve"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "serve"}},
                 "template": {
                     "metadata": {"labels": {"app": "serve"}},
                     "spec": {"schedulerName": "fairway", "nodeSelector": {
                         "fairway.io/node-pool": "tr"}, "containers": [{
                             "name": "main", "image": "vllm", "resources": {
                                 "limits": {"nvidia.com/gpu": "1"}}}]}}}})
    view = wait_until(lambda: (w := third_party(api, "serve")) and w["phase"] == "Running"
                      and w["runningPods"] == 3 and w, "the Deployment running 3 pods",
                      timeout=90)
    assert (view["kind"], view["owner"]["grouping"], view["owner"]["minMembers"]) == (
        "Deployment", "elastic", 1)
    assert view["preemptible"] is True  # a train-class Deployment may borrow
    wid = view["workloadId"]
    first = {p.metadata.name for p in core.list_namespaced_pod("web").items}

    # the late project wants its 3 deserved GPUs back: 1 is idle, 2 are the Deployment's
    submitted = api.post("/api/v1/workloads/trainings", json={
        "name": "mine", "projectId": late, "spec": {
            "image": "pytorch", "nodePools": ["tr"], "compute": {"gpuDevicesRequest": 3}}})
    assert submitted.status_code == 202, submitted.text
    mine = submitted.json()["workloadId"]
    lowest = 3
    deadline = time.monotonic() + 90
    while api.get(f"/api/v1/workloads/{mine}").json()["phase"] != "Running":
        assert time.monotonic() < deadline, "the late project's training never ran"
        running = len(pods_by_phase(core, "web").get("Running", []))
        lowest = min(lowest, running)
        time.sleep(0.2)
    assert lowest >= 1, "reclaim took the Deployment below its minimum"

    # it keeps its minimum, running; the ReplicaSet's replacements wait, saying why
    pods = wait_until(lambda: (p := pods_by_phase(core, "web")) and len(p.get("Pending", [])) == 2
                      and p, "two replacement pods pending")
    assert len(pods["Running"]) == 1, pods
    assert all(not p.spec.node_name for p in pods["Pending"])
    view = wait_until(lambda: (w := api.get(f"/api/v1/workloads/{wid}").json())
                      ["runningPods"] == 1 and w["requestedPods"] == 3 and w,
                      "the view: 1 of 3 pods running")
    assert view["phase"] == "Running", view
    waiting = [p for p in api.get(f"/api/v1/workloads/{wid}/pods").json()["pods"]
               if not p.get("node")]
    assert len(waiting) == 2, waiting
    # each waiting pod says why, as kube-scheduler would: PodScheduled False, Unschedulable
    said = wait_until(lambda: (c := [scheduled(p) for p in pods_by_phase(core, "web")["Pending"]])
                      and all(x and x.status == "False" for x in c) and c,
                      "the waiting pods to say why")
    assert {x.reason for x in said} == {"Unschedulable"}, said
    assert all("lender" in x.message for x in said), [x.message for x in said]
    warnings = [e for e in core.list_namespaced_event("web").items
                if e.reason == "FailedScheduling"]
    assert warnings and all(e.type == "Warning" for e in warnings), warnings
    time.sleep(2)  # several cycles: nothing oscillates
    assert len(pods_by_phase(core, "web").get("Running", [])) == 1
    assert api.get(f"/api/v1/workloads/{mine}").json()["phase"] == "Running"

    # the workload itself was never preempted whole: it went Running and stayed Running
    history = [e["to"] for e in api.get(f"/api/v1/workloads/{wid}/events").json()["events"]]
    assert history[-1] == "Running" and "Pending" not in history[history.index("Running"):], \
        history
    # the two pods that went were evicted (the eviction API), the first replicas' names gone
    names = {p.metadata.name for p in core.list_namespaced_pod("web").items}
    assert len(names - first) == 2 and len(first - names) == 2, (first, names)

    # scaled down (the /scale subresource): its waiting pods go; the view follows the owner
    apps = client.AppsV1Api(kube)
    apps.patch_namespaced_deployment_scale("serve", "web", {"spec": {"replicas": 1}})
    wait_until(lambda: (p := pods_by_phase(core, "web")) and not p.get("Pending")
               and len(p.get("Running", [])) == 1, "one pod left, running")
    wait_until(lambda: api.get(f"/api/v1/workloads/{wid}").json()["requestedPods"] == 1,
               "the view: 1 pod requested")

    # the late project's training over; scaled to 4 with a minimum of 2: the scheduler
    # places every new replica (the idle GPUs again), the view says 4 of minimum 2
    assert api.delete(f"/api/v1/workloads/trainings/{mine}").status_code == 202
    apps.patch_namespaced_deployment("serve", "web", {
        "metadata": {"annotations": {"fairway.io/min-members": "2"}},
        "spec": {"replicas": 4}})
    view = wait_until(lambda: (w := api.get(f"/api/v1/workloads/{wid}").json())
                      ["runningPods"] == 4 and w["requestedPods"] == 4 and w,
                      "the Deployment running 4 pods", timeout=90)
    assert view["owner"]["minMembers"] == 2, view["owner"]
    assert len(pods_by_phase(core, "web").get("Running", [])) == 4
    # ... and so was the scheduler: the request again, with its new pods and minimum
    request = scheduler_request(reclaim_stack.nats_url, "lender", wid)
    assert (request.spec.pods, request.spec.min_pods) == (4, 2) and request.revision >= 2, \
        request

    # metrics count it under its own type, with the GPUs its pods hold (the telemetry API)
    def counted() -> bool:
        answers = [api.get("/api/v1/workloads/telemetry", params={
            "telemetryType": kind, "groupBy": "type", "projectId": lender}).json()
            for kind in ("WORKLOADS_COUNT", "GPU_ALLOCATION")]
        values = [{tuple(g["name"] for g in v["groups"]): float(v["value"])
                   for v in answer["values"]} for answer in answers]
        return values == [{("thirdParty",): 1.0}, {("thirdParty",): 4.0}]

    wait_until(counted, "the telemetry API to count a thirdParty workload holding 4 GPUs")

