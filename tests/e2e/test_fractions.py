"""GPU fractions end to end (issue 16), on a stack of its own with one node of two 80 GB GPUs:
fractions submitted through the API share devices held by reservation pods, are counted by
portion, fail when they use more GPU memory than their limit, and give back GPU memory they
borrowed when a new fraction needs it."""

import time

import pytest
from kubernetes import client, config

from tests.e2e.conftest import admin_client, stack_of_its_own

pytestmark = pytest.mark.e2e

PROFILE = """
cluster:
  nodePools:
    - {name: fr, labelKey: fairway.io/node-pool, labelValue: fr}
  nodes:
    - name: fr-1
      labels: {fairway.io/node-pool: fr, nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}
      gpus: 2
      gpuMemoryMiB: 81920
      cpuMillis: 64000
      memoryMiB: 262144
timings: {pullSeconds: 0.3, startSeconds: 0.3, jitter: 0}
"""
FAST = [{"name": "sim.fairway.io/pull-seconds", "value": "0.2"},
        {"name": "sim.fairway.io/start-seconds", "value": "0.2"}]


@pytest.fixture(scope="module")
def fraction_stack(tmp_path_factory):
    env = {"FAIRWAY_LIFECYCLE_RESERVATION_CHECK_SECONDS": "1",
           "FAIRWAY_SCHEDULER_VERIFY_KEPT_STATE": "true"}
    with stack_of_its_own(tmp_path_factory, "fractions", PROFILE, env) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(fraction_stack):
    with admin_client(fraction_stack) as http:
        response = http.post("/api/v1/node-pools", json={
            "name": "fr", "labelKey": "fairway.io/node-pool", "labelValue": "fr"})
        assert response.status_code in (201, 409), response.text
        yield http


@pytest.fixture(scope="module")
def kube(fraction_stack) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(
        config_file=fraction_stack.kubeconfig))


def project(api, name: str, deserved: float, limit: float = -1) -> str:
    response = api.post("/api/v1/org-unit/projects", json={
        "name": name, "resources": [{"nodePool": {"name": "fr"},
                                     "gpu": {"deserved": deserved, "limit": limit}}]})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def submit(api, kind: str, project_id: str, name: str, compute: dict,
           annotations: list[dict] | None = None, **spec) -> str:
    response = api.post(f"/api/v1/workloads/{kind}", json={
        "name": name, "projectId": project_id, "spec": {
            "image": "busybox", "nodePools": ["fr"], "compute": compute,
            "annotations": FAST + (annotations or []), **spec}})
    assert response.status_code == 202, response.text
    return response.json()["workloadId"]


def wait_until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last saw {value!r}")


def workload(api, wid: str) -> dict:
    return api.get(f"/api/v1/workloads/{wid}").json()


def phase_is(api, wid: str, *phases: str):
    return lambda: (w := workload(api, wid))["phase"] in phases and w


def pods_of(api, wid: str) -> list[dict]:
    return api.get(f"/api/v1/workloads/{wid}/pods").json()["pods"]


def reservations(kube) -> dict[str, dict]:
    pods = kube.list_namespaced_pod("fairway-reservation",
                                    label_selector="fairway.io/gpu-reservation=true").items
    return {p.metadata.name: p for p in pods if not p.metadata.deletion_timestamp}


def delete_all(api, kinds_ids: list[tuple[str, str]]) -> None:
    for kind, wid in kinds_ids:
        api.delete(f"/api/v1/workloads/{kind}/{wid}")
    for _, wid in kinds_ids:
        wait_until(lambda wid=wid: api.get(f"/api/v1/workloads/{wid}").status_code == 404
                   or workload(api, wid)["phase"] == "Deleted", f"{wid} deleted", 90)


def test_fractions_share_a_reserved_device_and_count_by_portion(api, kube):
    pid = project(api, "share", deserved=1, limit=1.5)
    half = submit(api, "trainings", pid, "half", {"gpuPortionRequest": 0.5})
    quarter = submit(api, "trainings", pid, "quarter", {"gpuPortionRequest": 0.25})
    memory = submit(api, "trainings", pid, "by-memory", {"gpuMemoryRequest": "20Gi"})
    started = []
    for wid in (half, quarter, memory):
        started.append(("trainings", wid))
        wait_until(phase_is(api, wid, "Running"), f"{wid} running")
    try:
        # one device, one reservation pod holding one whole GPU of the node
        pods = {wid: pods_of(api, wid)[0] for wid in (half, quarter, memory)}
        devices = {tuple(p["gpuDevices"]) for p in pods.values()}
        uuids = {tuple(p["gpuUuids"]) for p in pods.values()}
        assert len(devices) == 1 and len(uuids) == 1, pods
        held = reservations(kube)
        assert len(held) == 1, list(held)
        [reservation] = held.values()
        assert reservation.spec.node_name == "fr-1"
        assert reservation.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
        assert [reservation.metadata.annotations["fairway.io/gpu-uuid"]] == list(next(iter(uuids)))
        assert {p["gpuPortion"] for p in pods.values()} == {0.5, 0.25}
        fraction_pod = kube.read_namespaced_pod(pods[half]["name"], "fairway-share")
        assert "nvidia.com/gpu" not in (fraction_pod.spec.containers[0].resources.limits or {})
        notes = fraction_pod.metadata.annotations
        assert notes["fairway.io/gpu-memory-limit-mib"] == "40960"
        assert notes["fairway.io/cuda-device-memory-limit"] == "40960m"
        assert workload(api, half)["allocatedResources"]["gpu"] == 0.5
        assert workload(api, memory)["allocatedResources"]["gpu"] == 0.25
        # the project's limit is 1.5 GPUs and it holds 1.0: a 0.75 waits, naming the numbers
        waiting = submit(api, "trainings", pid, "waits", {"gpuPortionRequest": 0.75})
        started.append(("trainings", waiting))
        pending = wait_until(lambda: (w := workload(api, waiting))["phaseReason"] == "OverLimit"
                             and w, "the 0.75 to wait over its limit")
        assert "uses 1 GPU of its limit of 1.5 GPUs" in pending["phaseMessage"], pending
        assert "needs 0.75 GPUs more" in pending["phaseMessage"], pending
        # a fourth that fits the project lands on the other device: a second reservation
        api.delete(f"/api/v1/workloads/trainings/{waiting}")
        other = submit(api, "trainings", pid, "other", {"gpuPortionRequest": 0.5})
        started.append(("trainings", other))
        wait_until(phase_is(api, other, "Running"), "the fourth running")
        assert pods_of(api, other)[0]["gpuDevices"] != list(next(iter(devices)))
        assert len(wait_until(lambda: len(reservations(kube)) == 2 and reservations(kube),
                              "two reservations")) == 2
    finally:
        delete_all(api, started)
    wait_until(lambda: not reservations(kube), "the reservation pods to go", 30)


def test_a_fraction_above_its_gpu_memory_limit_fails_with_gpu_out_of_memory(api):
    pid = project(api, "oom", deserved=1)
    greedy = submit(api, "trainings", pid, "greedy", {"gpuPortionRequest": 0.25},
                    [{"name": "sim.fairway.io/gpu-memory-used", "value": "1Gi,1s=30Gi"}],
                    backoffLimit=0)
    try:
        failed = wait_until(phase_is(api, greedy, "Failed"), "the greedy one to fail")
        assert failed["phaseReason"] == "GpuOutOfMemory", failed
        assert "ran out of GPU memory" in failed["phaseMessage"]
        assert "30720 MiB of its 20480 MiB GPU memory limit" in failed["phaseMessage"]
    finally:
        delete_all(api, [("trainings", greedy)])


def test_a_dynamic_fraction_gives_back_borrowed_memory_to_a_new_fraction(api, kube):
    pid = project(api, "burst", deserved=2)
    notebook = submit(api, "workspaces", pid, "notebook",
                      {"gpuPortionRequest": 0.25, "gpuPortionLimit": 1},
                      [{"name": "sim.fairway.io/gpu-memory-used", "value": "60Gi"}])
    started = [("workspaces", notebook)]
    try:
        wait_until(phase_is(api, notebook, "Running"), "the notebook running")
        wait_until(lambda: pods_of(api, notebook)[0].get("gpuMemoryLimitMib") == 81920,
                   "the notebook's limit")
        # the kubesim report of what it uses reaches lifecycle: the device is 60 GiB used
        time.sleep(1)
        trainer = submit(api, "trainings", pid, "trainer", {"gpuPortionRequest": 0.5})
        started.append(("trainings", trainer))
        wait_until(phase_is(api, trainer, "Running"), "the new fraction running")
        events = api.get(f"/api/v1/workloads/{notebook}/events").json()["events"]
        reclaimed = [e for e in events if e["reason"] == "GpuMemoryReclaimed"]
        assert reclaimed, events
        assert ("GPU memory above its request of 20 GiB was reclaimed for trainer"
                in reclaimed[0]["message"]), reclaimed
        # a workspace is made again: it runs once more
        wait_until(phase_is(api, notebook, "Running"), "the notebook running again")
        assert pods_of(api, trainer)[0]["gpuDevices"] == pods_of(api, notebook)[0]["gpuDevices"]
    finally:
        delete_all(api, started)


def half_and_quarter_apart(api, pid: str, started: list[tuple[str, str]]
                           ) -> tuple[str, list[int], list[int]]:
    """A half on one device and a quarter alone on the other: (the quarter, the half's
    device, the quarter's). A 0.75 cannot share the half's device, so it takes the other one
    and the quarter after it fills that one; then the 0.75 is deleted."""
    half = submit(api, "trainings", pid, "half", {"gpuPortionRequest": 0.5})
    started.append(("trainings", half))
    wait_until(phase_is(api, half, "Running"), "the half running")
    big = submit(api, "trainings", pid, "big", {"gpuPortionRequest": 0.75})
    started.append(("trainings", big))
    wait_until(phase_is(api, big, "Running"), "the 0.75 running")
    quarter = submit(api, "trainings", pid, "quarter", {"gpuPortionRequest": 0.25})
    started.append(("trainings", quarter))
    wait_until(phase_is(api, quarter, "Running"), "the quarter running")
    half_device = pods_of(api, half)[0]["gpuDevices"]
    quarter_device = pods_of(api, quarter)[0]["gpuDevices"]
    assert quarter_device == pods_of(api, big)[0]["gpuDevices"] != half_device
    api.delete(f"/api/v1/workloads/trainings/{big}")
    wait_until(lambda: api.get(f"/api/v1/workloads/{big}").status_code == 404
               or workload(api, big)["phase"] == "Deleted", "the 0.75 gone")
    return quarter, half_device, quarter_device


def test_fractions_on_two_devices_are_packed_to_make_room_for_a_larger_one(api, kube):
    """Consolidation of fractions through the whole platform: a half and a quarter hold one
    device each of the two; a 0.8 fits on neither until the quarter is moved onto the half's
    device. The quarter restarts there, the 0.8 takes the device it left, and the quarter's
    events say why it moved."""
    pid = project(api, "pack", deserved=2)
    started: list[tuple[str, str]] = []
    try:
        quarter, half_device, quarter_device = half_and_quarter_apart(api, pid, started)
        # 0.5 and 0.75 free, no device with 0.8: it waits for the quarter to move
        larger = submit(api, "trainings", pid, "larger", {"gpuPortionRequest": 0.8})
        started.append(("trainings", larger))
        wait_until(phase_is(api, larger, "Running"), "the 0.8 running", 90)
        wait_until(phase_is(api, quarter, "Running"), "the quarter running again", 90)
        assert pods_of(api, quarter)[0]["gpuDevices"] == half_device
        assert pods_of(api, larger)[0]["gpuDevices"] == quarter_device
        events = api.get(f"/api/v1/workloads/{quarter}/events").json()["events"]
        assert any("to make room for larger" in (e.get("message") or "") for e in events), \
            events
    finally:
        delete_all(api, started)


def test_a_whole_gpu_placed_on_a_device_fractions_just_left_starts(api, kube):
    """The last fraction on a device moves away (consolidation) and a whole-GPU training is
    placed on the device at once, before lifecycle's periodic check releases the device's
    reservation pod: the node refuses the pod (the reservation still holds the GPU). That is
    no failure of the training: the reservation goes at once, the pod is made again and runs,
    and no attempt of its backoffLimit is spent."""
    pid = project(api, "vacate", deserved=2)
    started: list[tuple[str, str]] = []
    try:
        quarter, half_device, _ = half_and_quarter_apart(api, pid, started)
        whole = submit(api, "trainings", pid, "whole", {"gpuDevicesRequest": 1},
                       backoffLimit=1)
        started.append(("trainings", whole))
        running = wait_until(phase_is(api, whole, "Running", "Failed"), "the whole GPU", 90)
        assert running["phase"] == "Running", running
        wait_until(phase_is(api, quarter, "Running"), "the quarter running again", 90)
        assert pods_of(api, quarter)[0]["gpuDevices"] == half_device
        assert pods_of(api, whole)[0]["gpuDevices"] != half_device
        events = api.get(f"/api/v1/workloads/{whole}/events").json()["events"]
        refused = [e for e in events if e.get("reason") == "NodeRejected"]
        print("refusals", len(refused), [e.get("message") for e in refused][:1])
        assert len(refused) <= 2, refused  # the reservation went at once: no hot loop
    finally:
        delete_all(api, started)
