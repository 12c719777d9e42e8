"""Every workload type through the API, policy, scheduler, lifecycle and kubesim (issue 6).

The workloads are submitted through the API into a project of the module's own, each asking
for one preemptible GPU with no retries unless a test says otherwise; preemptions are the
scheduler's own, inside projects held at a limit of one GPU."""

import uuid

import httpx
import pytest

from tests.e2e.conftest import create, ensure_simulated_pools, submit, wait_pods_gone

pytestmark = pytest.mark.e2e

# Preemptible ("train" is below the non-preemptible priorities), so no quota is needed.
BASE = {"priorityClass": "train", "backoffLimit": 0}


@pytest.fixture(scope="module")
def project(api) -> dict:
    ensure_simulated_pools(api)  # a workspace below runs in pool t4
    return create(api, "/api/v1/org-unit/projects", {"name": f"types-{uuid.uuid4().hex[:6]}"})


@pytest.fixture
def run(api, project, held_by_module):
    """Submit a workload of the module's project (deleted when the module ends); its id."""

    def submit_kind(kind: str, name: str, annotations: dict[str, str] | None = None,
                    **spec) -> str:
        wid = submit(api, kind, project["id"], name, annotations, **{**BASE, **spec})
        held_by_module.append((kind, wid))
        return wid

    return submit_kind


async def test_a_workspace_runs_until_stopped(run, phases):
    wid = run("workspaces", "ws", restartPolicy="Always")
    events = await phases.read(wid, until={"Running", "Failed"})
    assert [e["phase"] for e in events] == ["Creating", "Pending", "Initializing", "Running"]


async def test_inference_replicas_all_run(run, phases):
    wid = run("inferences", "serve", autoscaling={"minReplicas": 2}, servingPort=8000,
              restartPolicy="Always")
    events = await phases.read(wid, until={"Running", "Failed"})
    assert events[-1]["phase"] == "Running"
    assert sorted(p["role"] for p in events[-1]["pods"]) == ["replica", "replica"]


async def test_a_pytorch_job_completes_when_its_master_does(run, phases):
    wid = run("distributed", "ddp", {"sim.fairway.io/run-seconds": "1"},
              distributedFramework="PyTorch", numWorkers=2)
    events = await phases.read(wid, until={"Completed", "Failed"})
    assert events[-1]["phase"] == "Completed"
    assert "master" in events[-1]["message"]
    assert sorted(p["role"] for p in events[-1]["pods"]) == ["master", "worker", "worker"]


async def test_a_distributed_job_whose_ranks_fail_fails_naming_the_pod(run, phases):
    wid = run("distributed", "ddp-bad",
              {"sim.fairway.io/run-seconds": "1", "sim.fairway.io/exit-code": "1"},
              distributedFramework="PyTorch", numWorkers=1)
    events = await phases.read(wid, until={"Completed", "Failed"})
    assert events[-1]["phase"] == "Failed"
    assert "exited with code 1" in events[-1]["message"]


async def test_a_crash_looping_workspace_is_degraded(run, phases):
    wid = run("workspaces", "crashy", {"sim.fairway.io/crash": "loop"}, restartPolicy="Always")
    events = await phases.read(wid, until={"Degraded", "Failed"})
    assert events[-1]["phase"] == "Degraded"
    assert events[-1]["reason"] == "CrashLoopBackOff"


async def test_a_node_going_not_ready_degrades_its_workload_until_it_recovers(
        stack, run, phases):
    wid = run("workspaces", "on-t4", restartPolicy="Always", nodePools=["t4"])
    events = await phases.read(wid, until={"Running"})
    node = events[-1]["pods"][0]["node"]
    kubesim = httpx.Client(base_url=stack.info()["processes"]["kubesim"]["url"], timeout=10)
    assert kubesim.post(f"/admin/nodes/{node}/ready", json={"ready": False}).status_code == 200
    try:
        events = await phases.read(wid, until={"Degraded"}, skip=len(events))
        assert events[-1]["reason"] == "NodeNotReady"
    finally:
        kubesim.post(f"/admin/nodes/{node}/ready", json={"ready": True})
    events = await phases.read(wid, until={"Running"}, skip=5)
    assert events[-1]["phase"] == "Running"


async def test_a_finished_training_deletes_itself_after_its_auto_deletion_time(run, phases):
    wid = run("trainings", "auto-delete", {"sim.fairway.io/run-seconds": "1"},
              autoDeletionTimeAfterCompletionSeconds=1)
    events = await phases.read(wid, until={"Deleted", "Failed"}, timeout=60)
    assert [e["phase"] for e in events][-3:] == ["Completed", "Deleting", "Deleted"]


@pytest.fixture
def limited(api, held_by_module):
    """A project of its own at a limit of one GPU in pool a100: a second workload there gets
    the GPU only by preempting the first. Submits (kind, name, annotations, spec) into it."""
    ensure_simulated_pools(api)
    project = create(api, "/api/v1/org-unit/projects", {
        "name": f"limited-{uuid.uuid4().hex[:6]}",
        "resources": [{"nodePool": {"name": "a100"}, "gpu": {"deserved": 1, "limit": 1}}]})

    def submit_kind(kind: str, name: str, annotations: dict[str, str] | None = None,
                    **spec) -> str:
        wid = submit(api, kind, project["id"], name, annotations,
                     **{**BASE, "nodePools": ["a100"], **spec})
        held_by_module.append((kind, wid))
        return wid

    return submit_kind


# The scheduler's preemptor: a higher priority, still preemptible (within the project's quota).
URGENT = {"priorityClass": "high", "preemptibility": "preemptible"}


async def test_a_preempted_workload_waits_then_runs_again(limited, phases):
    wid = limited("trainings", "preemptee")
    events = await phases.read(wid, until={"Running"})
    limited("trainings", "urgent", {"sim.fairway.io/run-seconds": "2"}, **URGENT)
    events = await phases.read(wid, until={"Running", "Failed"}, skip=len(events))
    assert events[0]["phase"] == "Pending" and events[0]["reason"] == "Preempted"
    assert "(preempt)" in events[0]["message"], events[0]  # the scheduler's decision and why
    assert "higher priority" in events[0]["message"], events[0]
    assert events[-1]["phase"] == "Running"  # once the urgent one completed


async def test_a_workload_that_asked_to_terminate_after_preemption_fails(api, limited,
                                                                          phases):
    wid = limited("trainings", "one-shot", terminateAfterPreemption=True)
    events = await phases.read(wid, until={"Running"})
    limited("trainings", "urgent", **URGENT)
    events = await phases.read(wid, until={"Failed", "Completed"}, skip=len(events))
    assert (events[-1]["phase"], events[-1]["reason"]) == ("Failed", "Evicted")
    # Failed at once; its evicted pod leaves after the eviction's grace period. (Lifecycle
    # loses a delete asked for in between: it stays Failed. The module deletes it after.)
    wait_pods_gone(api, wid)


async def test_pods_carry_the_gpu_devices_the_scheduler_chose(stack, project, run, phases):
    from kubernetes import client, config

    wid = run("trainings", "devices")
    events = await phases.read(wid, until={"Running"})
    pod = events[-1]["pods"][0]
    api = client.CoreV1Api(config.new_client_from_config(config_file=stack.kubeconfig))
    # lifecycle's namespace of a project: fairway-<project> (FAIRWAY_NAMESPACE_PREFIX)
    found = api.read_namespaced_pod(pod["name"], f"fairway-{project['name']}")
    assert found.metadata.annotations["fairway.io/gpu-devices"].isdigit()
