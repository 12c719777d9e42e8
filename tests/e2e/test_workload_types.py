"""Every workload type through scheduler, lifecycle and kubesim (issue 6).

The workloads are published as `WorkloadSubmitted` events, as submission does after policy,
so these tests pin lifecycle's behaviour whatever the API accepts."""

import uuid

import httpx
import nats
import pytest

from fairway_bus import publish_model
from fairway_contracts import EffectiveSpec, WorkloadType, subjects
from fairway_contracts.events import WorkloadSubmitted
from fairway_contracts.workloads import utcnow

pytestmark = pytest.mark.e2e


async def submit(stack, kind: WorkloadType, name: str, annotations: dict[str, str] | None = None,
                 **spec) -> str:
    wid = str(uuid.uuid4())
    effective = EffectiveSpec.model_validate({
        "image": "busybox", "priorityClass": "train", "preemptible": True, "backoffLimit": 0,
        "compute": {"gpuDevicesRequest": 1},
        "annotations": [{"name": k, "value": v} for k, v in (annotations or {}).items()],
        **spec})
    event = WorkloadSubmitted(event_id=wid, workload_id=wid, name=name, project="types",
                              project_id="0", workload_type=kind, created_at=utcnow(),
                              created_by="test", spec=effective)
    nc = await nats.connect(stack.nats_url)
    try:
        await publish_model(nc.jetstream(), subjects.workload_submitted("types", wid), event,
                            msg_id=f"submitted:{wid}")
    finally:
        await nc.close()
    return wid


async def test_a_workspace_runs_until_stopped(stack, phases):
    wid = await submit(stack, WorkloadType.WORKSPACE, "ws", restartPolicy="Always")
    events = await phases.read(wid, until={"Running", "Failed"})
    assert [e["phase"] for e in events] == ["Creating", "Pending", "Initializing", "Running"]


async def test_inference_replicas_all_run(stack, phases):
    wid = await submit(stack, WorkloadType.INFERENCE, "serve", pods=2, minPods=1,
                       servingPort=8000, restartPolicy="Always")
    events = await phases.read(wid, until={"Running", "Failed"})
    assert events[-1]["phase"] == "Running"
    assert sorted(p["role"] for p in events[-1]["pods"]) == ["replica", "replica"]


async def test_a_pytorch_job_completes_when_its_master_does(stack, phases):
    wid = await submit(stack, WorkloadType.DISTRIBUTED, "ddp", pods=3, minPods=3,
                       distributedFramework="PyTorch", numWorkers=2,
                       annotations={"sim.fairway.io/run-seconds": "1"})
    events = await phases.read(wid, until={"Completed", "Failed"})
    assert events[-1]["phase"] == "Completed"
    assert "master" in events[-1]["message"]
    assert sorted(p["role"] for p in events[-1]["pods"]) == ["master", "worker", "worker"]


async def test_a_distributed_job_whose_ranks_fail_fails_naming_the_pod(stack, phases):
    wid = await submit(stack, WorkloadType.DISTRIBUTED, "ddp-bad", pods=2, minPods=2,
                       distributedFramework="PyTorch", numWorkers=1,
                       annotations={"sim.fairway.io/run-seconds": "1",
                                    "sim.fairway.io/exit-code": "1"})
    events = await phases.read(wid, until={"Completed", "Failed"})
    assert events[-1]["phase"] == "Failed"
    assert "exited with code 1" in events[-1]["message"]


async def test_a_crash_looping_workspace_is_degraded(stack, phases):
    wid = await submit(stack, WorkloadType.WORKSPACE, "crashy", restartPolicy="Always",
                       annotations={"sim.fairway.io/crash": "loop"})
    events = await phases.read(wid, until={"Degraded", "Failed"})
    assert events[-1]["phase"] == "Degraded"
    assert events[-1]["reason"] == "CrashLoopBackOff"


async def test_a_node_going_not_ready_degrades_its_workload_until_it_recovers(stack, phases):
    wid = await submit(stack, WorkloadType.WORKSPACE, "on-t4", restartPolicy="Always",
                       nodePools=["t4"])
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


async def test_a_finished_training_deletes_itself_after_its_auto_deletion_time(stack, phases):
    wid = await submit(stack, WorkloadType.TRAINING, "auto-delete",
                       autoDeletionTimeAfterCompletionSeconds=1,
                       annotations={"sim.fairway.io/run-seconds": "1"})
    events = await phases.read(wid, until={"Deleted", "Failed"}, timeout=60)
    assert [e["phase"] for e in events][-3:] == ["Completed", "Deleting", "Deleted"]


async def preempt(stack, wid: str, reason: str = "reclaim") -> None:
    from fairway_contracts.events import PreemptDecision

    decision = PreemptDecision(decision_id=str(uuid.uuid4()), workload_id=wid, project="types",
                               reason=reason, by="someone-else", message="test preemption",
                               decided_at=utcnow())
    nc = await nats.connect(stack.nats_url)
    try:
        await publish_model(nc.jetstream(), subjects.preempt("types", wid), decision,
                            msg_id=decision.decision_id)
    finally:
        await nc.close()


async def test_a_preempted_workload_waits_then_runs_again(stack, phases):
    wid = await submit(stack, WorkloadType.TRAINING, "preemptee")
    events = await phases.read(wid, until={"Running"})
    await preempt(stack, wid)
    events = await phases.read(wid, until={"Running", "Failed"}, skip=len(events))
    assert events[0]["phase"] == "Pending" and events[0]["reason"] == "Preempted"
    assert events[-1]["phase"] == "Running"


async def test_a_workload_that_asked_to_terminate_after_preemption_fails(stack, phases):
    wid = await submit(stack, WorkloadType.TRAINING, "one-shot", terminateAfterPreemption=True)
    events = await phases.read(wid, until={"Running"})
    await preempt(stack, wid, "preempt")
    events = await phases.read(wid, until={"Failed", "Completed"}, skip=len(events))
    assert (events[-1]["phase"], events[-1]["reason"]) == ("Failed", "Evicted")


async def test_pods_carry_the_gpu_devices_the_scheduler_chose(stack, phases):
    from kubernetes import client, config

    wid = await submit(stack, WorkloadType.TRAINING, "devices")
    events = await phases.read(wid, until={"Running"})
    pod = events[-1]["pods"][0]
    api = client.CoreV1Api(config.new_client_from_config(config_file=stack.kubeconfig))
    found = api.read_namespaced_pod(pod["name"], "fairway-types")
    assert found.metadata.annotations["fairway.io/gpu-devices"].isdigit()
