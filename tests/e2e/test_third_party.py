"""Third-party workloads end to end (issue 18), on a stack of its own (two 4-GPU nodes that
no other test's workloads take):

- foreign GPUs count: a pod that another scheduler — kubesim's stand-in for kube-scheduler —
  binds to a node holds its GPUs, so Fairway places elsewhere, makes a workload wait when there
  is no elsewhere, and uses the node again once the pod is gone;
- discovery, visibility and scheduling: a Job of parallelism 4 whose pods name Fairway as
  their scheduler, made with the official client in a project's namespace, appears in the API
  (and `fairway list`) as type thirdParty with its kind, namespace, owner and phase, is
  gang-scheduled (lifecycle binds its own pods) and completes; one in a namespace of no
  project waits with the reason; deleting one through Fairway deletes its top owner."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.e2e.conftest import admin_client, stack_of_its_own
from tests.e2e.test_walking_skeleton import submit, wait_phase

pytestmark = pytest.mark.e2e

PROFILE = """
cluster:
  nodes:
    - name: fx-{1..2}
      gpus: 4
      gpuMemoryMiB: 40960
      cpuMillis: 32000
      memoryMiB: 131072
"""


@pytest.fixture(scope="module")
def foreign_stack(tmp_path_factory):
    with stack_of_its_own(tmp_path_factory, "foreign", PROFILE) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(foreign_stack):
    with admin_client(foreign_stack) as c:
        yield c


@pytest.fixture(scope="module")
def kube(foreign_stack) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=foreign_stack.kubeconfig))


def wait_until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def nodes_of(api, wid: str) -> list[str]:
    return sorted(p["node"] for p in api.get(f"/api/v1/workloads/{wid}/pods").json()["pods"]
                  if p.get("node"))


def test_a_pod_another_scheduler_bound_makes_fairway_place_elsewhere(api, kube):
    # (first in the file: the later tests' pods would take room)
    project = next(p["id"] for p in api.get("/api/v1/org-unit/projects").json()["projects"]
                   if p["name"] == "default")
    kube.create_namespace({"metadata": {"name": "outside"}})
    kube.create_namespaced_pod("outside", {
        "metadata": {"name": "holder"},
        "spec": {"containers": [{"name": "main", "image": "cuda", "resources": {
            "limits": {"nvidia.com/gpu": "4"}}}]}})  # no schedulerName: default-scheduler
    holder = wait_until(lambda: kube.read_namespaced_pod("holder", "outside").spec.node_name,
                        "the stand-in to bind the holder")
    other = {"fx-1": "fx-2", "fx-2": "fx-1"}[holder]

    first = submit(api, project, "beside", {}, compute={"gpuDevicesRequest": 4})
    wait_phase(api, first["workloadId"], {"Running"})
    assert nodes_of(api, first["workloadId"]) == [other]

    # no elsewhere: it waits, and says why
    second = submit(api, project, "after", {}, compute={"gpuDevicesRequest": 4})
    starting = (None, "WaitingForScheduler", "CreatingPods", "WaitingForPods")
    view = wait_until(lambda: (v := api.get(f"/api/v1/workloads/{second['workloadId']}").json())
                      ["phaseReason"] not in starting and v, "a pending reason")
    assert view["phase"] == "Pending", view
    assert "4" in view["phaseMessage"], view["phaseMessage"]
    time.sleep(2)  # several cycles: still not placed on the held node
    assert api.get(f"/api/v1/workloads/{second['workloadId']}").json()["phase"] == "Pending"

    # the holder goes: its node is Fairway's to use again
    kube.delete_namespaced_pod("holder", "outside", grace_period_seconds=0)
    wait_phase(api, second["workloadId"], {"Running"})
    assert nodes_of(api, second["workloadId"]) == [holder]
    for workload in (first, second):  # room for the tests below
        api.delete(f"/api/v1/workloads/trainings/{workload['workloadId']}")
    for workload in (first, second):
        wait_phase(api, workload["workloadId"], {"Deleted"})


def third_party(api, name: str) -> dict | None:
    listed = api.get("/api/v1/workloads", params={"filterBy": "type==thirdParty"}).json()
    return next((w for w in listed["workloads"] if w["name"] == name), None)


def test_a_job_of_a_projects_namespace_is_gang_scheduled_and_completes_in_view(
        api, kube, foreign_stack):
    kube.create_namespace({"metadata": {"name": "ml", "labels": {
        "fairway.io/project": "default"}}})
    client.BatchV1Api(kube.api_client).create_namespaced_job("ml", {
        "metadata": {"name": "sweep", "annotations": {"fairway.io/gang": "true"}},
        "spec": {"parallelism": 4, "completions": 4, "template": {
            "metadata": {"annotations": {"sim.fairway.io/run-seconds": "3"}},
            "spec": {"schedulerName": "fairway", "restartPolicy": "Never",
                     "containers": [{"name": "main", "image": "pytorch", "resources": {
                         "limits": {"nvidia.com/gpu": "1"}}}]}}}})
    view = wait_until(lambda: (w := third_party(api, "sweep")) and w["requestedPods"] == 4
                      and w, "the Job in the API")
    assert (view["type"], view["kind"], view["namespace"]) == ("thirdParty", "Job", "ml")
    assert (view["owner"]["grouping"], view["owner"]["minMembers"]) == ("gang", 4)
    assert view["projectName"] == "default"
    wid = view["workloadId"]
    # Fairway's scheduler places the gang, lifecycle binds the Job's own pods, they run
    done = wait_until(lambda: (w := api.get(f"/api/v1/workloads/{wid}").json())["phase"]
                      == "Completed" and w, "the Job's workload Completed", timeout=90)
    assert done["phaseMessage"] == "4 pods completed successfully", done
    pods = kube.list_namespaced_pod("ml").items
    assert len(pods) == 4 and all(p.spec.node_name for p in pods)
    history = [e["to"] for e in api.get(f"/api/v1/workloads/{wid}/events").json()["events"]]
    assert history[0] == "Pending" and history[-1] == "Completed", history
    assert "Running" in history, history
    refused = api.post(f"/api/v1/workloads/thirdParty/{view['workloadId']}/suspend")
    assert refused.status_code == 409, refused.text

    env = {**os.environ, "FAIRWAY_API_URL": foreign_stack.api_url, "COLUMNS": "200",
           "FAIRWAY_TOKEN": Path(foreign_stack.admin_token_file).read_text().strip()}
    shown = subprocess.run(
        [sys.executable, "-m", "fairway_cli", "list", "--project", "default"],
        capture_output=True, text=True, timeout=60, env=env)
    assert shown.returncode == 0, shown.stderr
    [line] = [line for line in shown.stdout.splitlines() if "sweep" in line]
    assert "thirdParty" in line, shown.stdout

    # delete through Fairway: lifecycle deletes the Job, its pods follow, the workload ends
    gone = subprocess.run(
        [sys.executable, "-m", "fairway_cli", "delete", "sweep", "--project", "default"],
        capture_output=True, text=True, timeout=60, env=env)
    assert gone.returncode == 0, gone.stderr
    jobs = client.BatchV1Api(kube.api_client)
    wait_until(lambda: not jobs.list_namespaced_job("ml").items, "the Job deleted")
    wait_until(lambda: api.get(f"/api/v1/workloads/{view['workloadId']}").json()["phase"]
               == "Deleted", "the workload Deleted")


def test_a_pod_in_a_namespace_of_no_project_waits_and_says_why(api, kube):
    kube.create_namespace({"metadata": {"name": "nowhere"}})
    kube.create_namespaced_pod("nowhere", {"metadata": {"name": "stray"}, "spec": {
        "schedulerName": "fairway", "containers": [{"name": "main", "image": "cuda"}]}})
    view = wait_until(lambda: third_party(api, "stray"), "the pod in the API")
    assert (view["kind"], view["phase"], view["phaseReason"]) == ("Pod", "Pending",
                                                                  "NoProject")
    assert view["phaseMessage"] == ("namespace nowhere belongs to no project: label the "
                                    "namespace (or the pod) fairway.io/project=<project>")


def test_a_pytorchjob_runs_as_one_gang(api, kube):
    kube.create_namespace({"metadata": {"name": "torch", "labels": {
        "fairway.io/project": "default"}}})

    def replica(count: int) -> dict:
        return {"replicas": count, "restartPolicy": "Never", "template": {
            "metadata": {"annotations": {"sim.fairway.io/run-seconds": "3"}},
            "spec": {"schedulerName": "fairway", "containers": [{
                "name": "pytorch", "image": "pytorch",
                "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}}}

    client.CustomObjectsApi(kube.api_client).create_namespaced_custom_object(
        "kubeflow.org", "v1", "torch", "pytorchjobs", {
            "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "metadata": {"name": "ddp"},
            "spec": {"pytorchReplicaSpecs": {"Master": replica(1), "Worker": replica(3)}}})
    view = wait_until(lambda: (w := third_party(api, "ddp")) and w["requestedPods"] == 4
                      and w, "the PyTorchJob in the API")
    assert (view["kind"], view["owner"]["grouping"], view["owner"]["minMembers"]) == (
        "PyTorchJob", "gang", 4)
    wid = view["workloadId"]
    done = wait_until(lambda: (w := api.get(f"/api/v1/workloads/{wid}").json())["phase"]
                      == "Completed" and w, "the PyTorchJob's workload Completed", timeout=90)
    assert done["phaseMessage"] == "4 pods completed successfully", done
    # 8 GPUs asked, 8 in the cluster: placed all at once, every pod on a node
    nodes = {p.spec.node_name for p in kube.list_namespaced_pod("torch").items}
    assert nodes == {"fx-1", "fx-2"}, nodes


def test_fractions_by_annotation_share_one_device_and_a_bad_one_waits_naming_it(api, kube):
    kube.create_namespace({"metadata": {"name": "frac", "labels": {
        "fairway.io/project": "default"}}})
    client.AppsV1Api(kube.api_client).create_namespaced_deployment("frac", {
        "metadata": {"name": "halves"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "halves"}},
                 "template": {
                     "metadata": {"labels": {"app": "halves"},
                                  "annotations": {"gpu-fraction": "0.5"}},  # Run:ai's name
                     "spec": {"schedulerName": "fairway",
                              "containers": [{"name": "main", "image": "vllm"}]}}}})
    view = wait_until(lambda: (w := third_party(api, "halves")) and w["runningPods"] == 2
                      and w, "the fractions running", timeout=90)
    assert view["spec"]["compute"] == {"gpuDevicesRequest": 1, "gpuRequestType": "portion",
                                       "gpuPortionRequest": 0.5}, view["spec"]
    pods = kube.list_namespaced_pod("frac").items
    # bin packed: one device of one node, held for other schedulers by a reservation pod
    assert len({p.spec.node_name for p in pods}) == 1, pods
    notes = [p.metadata.annotations for p in pods]
    assert {n["fairway.io/gpu-devices"] for n in notes} == {notes[0]["fairway.io/gpu-devices"]}
    assert {n["fairway.io/gpu-portion"] for n in notes} == {"0.5"}
    assert all(n.get("fairway.io/gpu-uuids") and n.get("fairway.io/cuda-device-sm-limit")
               == "50" for n in notes), notes
    assert all(p.metadata.labels.get("fairway.io/gpu-fraction") == "true" for p in pods)
    reservations = [p for p in kube.list_namespaced_pod("fairway-reservation").items
                    if p.spec.node_name == pods[0].spec.node_name]
    assert reservations, "no reservation pod on the fractions' node"

    # a value that is no fraction: it waits, naming the annotation and the value
    kube.create_namespaced_pod("frac", {
        "metadata": {"name": "greedy", "annotations": {"gpu-fraction": "1.5"}},
        "spec": {"schedulerName": "fairway", "containers": [{"name": "main", "image": "x"}]}})
    view = wait_until(lambda: third_party(api, "greedy"), "the bad fraction in the API")
    assert (view["phase"], view["phaseReason"]) == ("Pending", "InvalidGpuFraction"), view
    assert 'annotation gpu-fraction: "1.5"' in view["phaseMessage"], view["phaseMessage"]
    time.sleep(1)
    assert not kube.read_namespaced_pod("greedy", "frac").spec.node_name
