"""Third-party discovery against a real API server (kubesim, with its Job and Deployment
controllers) and real NATS: pods that name Fairway as their scheduler are watched, their
owners read with the official client, grouped by top owner and announced; a namespace with
no project says so; a deleted owner's workload is announced gone. Fairway's own pods and
other schedulers' pods are not announced."""

import asyncio
import contextlib
import types
import uuid
from datetime import UTC, datetime

import nats
import pytest
from kubernetes import client

from fairway_contracts import streams, subjects
from fairway_contracts.events import (
    PodGroupChanged,
    PreemptDecision,
    SchedulingPending,
    ThirdPartyWorkloadChanged,
)
from fairway_kubesim import KubeSimThread
from fairway_kubesim.profiles import DEFAULT_PROFILE
from fairway_lifecycle.core.grouping import workload_id
from fairway_lifecycle.foreign import ForeignUsageTracker
from fairway_lifecycle.kube import Kube
from fairway_lifecycle.thirdparty import ThirdPartyDiscovery

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def kubesim(tmp_path_factory):
    with KubeSimThread(DEFAULT_PROFILE, seed=7) as sim:
        yield sim.write_kubeconfig(tmp_path_factory.mktemp("kubesim") / "kubeconfig")


@pytest.fixture
async def discovery(kubesim, js):
    kube = Kube(str(kubesim))
    tasks: list[asyncio.Task] = []
    runtime = types.SimpleNamespace(js=js, background=lambda work, name: tasks.append(
        asyncio.ensure_future(work)))
    watch = ForeignUsageTracker(kube, resync_seconds=300)
    found = ThirdPartyDiscovery(kube)
    watch.listeners.append(found.on_pod)
    watch.start(runtime)
    found.start(runtime)
    yield kube, found
    watch.stop()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    kube.close()


async def announced(js, wid: str, done, timeout: float = 15) -> ThirdPartyWorkloadChanged:
    """The last announcement of the workload once `done(it)`."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            msg = await js.get_last_msg(streams.THIRDPARTY.name, subjects.thirdparty_workload(wid))
            last = ThirdPartyWorkloadChanged.model_validate_json(msg.data)
            if done(last):
                return last
        except nats.js.errors.NotFoundError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"no announcement of {wid} as wanted; last: {last}")


def template(scheduler: str = "fairway", gpus: int = 1, labels: dict | None = None,
             restart: str = "Never") -> dict:
    return {"metadata": {"labels": labels or {"app": "x"}},
            "spec": {"schedulerName": scheduler, "restartPolicy": restart,
                     "containers": [{"name": "main", "image": "busybox", "resources": {
                         "limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"cpu": "1"}}}]}}


async def test_a_gang_job_and_a_deployment_are_grouped_and_announced(discovery, js):
    kube, found = discovery
    ns = f"team-{uuid.uuid4().hex[:6]}"
    kube.core.create_namespace({"metadata": {"name": ns, "labels": {
        "fairway.io/project": "team-a"}}})
    batch, apps = client.BatchV1Api(kube.api), client.AppsV1Api(kube.api)
    job = batch.create_namespaced_job(ns, {
        "metadata": {"name": "train", "annotations": {"fairway.io/gang": "true"}},
        "spec": {"parallelism": 4, "completions": 4, "template": template(gpus=2)}})
    deployment = apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "web", "annotations": {"fairway.io/min-members": "2"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": template(labels={"app": "web"}, restart="Always")}})
    # not ours to announce: another scheduler's Job
    batch.create_namespaced_job(ns, {"metadata": {"name": "other"}, "spec": {
        "template": template(scheduler="default-scheduler")}})

    trained = await announced(js, workload_id(job.metadata.uid), lambda e: len(e.pods) == 4)
    assert (trained.kind, trained.api_version, trained.name, trained.namespace) == (
        "Job", "batch/v1", "train", ns)
    assert (trained.grouping, trained.min_members, trained.project) == ("gang", 4, "team-a")
    assert (trained.gpus_per_pod, trained.cpu_millis) == (2, 1000)
    assert all(p.startswith("train-") for p in trained.pods)
    # nothing binds them here: they wait for Fairway's scheduler, as the fold says
    assert (trained.phase, trained.phase_reason) == ("Pending", "WaitingForScheduler")
    assert sorted(s.name for s in trained.pod_summaries) == sorted(trained.pods)
    # and the scheduler gets their pod group, as for a native workload
    group = PodGroupChanged.model_validate_json((await js.get_last_msg(
        streams.PODGROUPS.name, subjects.podgroup("team-a", trained.workload_id))).data)
    assert (group.phase, sorted(p.name for p in group.pods)) == ("Pending",
                                                                 sorted(trained.pods))

    served = await announced(js, workload_id(deployment.metadata.uid),
                             lambda e: len(e.pods) == 3)
    assert (served.kind, served.name, served.grouping, served.min_members) == (
        "Deployment", "web", "elastic", 2)  # through its ReplicaSet, to the top owner

    # a reclaim takes one replica back through the eviction API; its ReplicaSet makes
    # another, which waits for the scheduler
    victim = served.pods[0]
    assert await found.preempt(PreemptDecision(
        decision_id="d1", workload_id=served.workload_id, project="team-a", reason="reclaim",
        message="team-b needs its GPUs back", pods=[victim], decided_at=served.observed_at),
        grace_seconds=0)
    await announced(js, served.workload_id, lambda e: victim not in e.pods and len(e.pods) == 3)
    assert not await found.preempt(PreemptDecision(
        decision_id="d2", workload_id=str(uuid.uuid4()), project="team-a", reason="reclaim",
        message="-", decided_at=served.observed_at), grace_seconds=0)

    # the Deployment deleted: its ReplicaSet and pods go (background cascade), and so does
    # its workload
    apps.delete_namespaced_deployment("web", ns)
    gone = await announced(js, served.workload_id, lambda e: e.gone)
    assert (gone.pods, gone.phase) == ([], "Deleted")
    assert {e.name for e in found.announced.values() if e.namespace == ns} == {"train"}

    # deleting the workload deletes its top owner; its pods follow, and it is announced gone
    assert await found.delete_owner(served.workload_id)  # gone already: done
    assert not await found.delete_owner(str(uuid.uuid4()))  # not a third-party workload
    assert await found.delete_owner(trained.workload_id)
    assert not [j for j in batch.list_namespaced_job(ns).items if j.metadata.name == "train"]
    ended = await announced(js, trained.workload_id, lambda e: e.gone)
    assert ended.phase == "Deleted"


async def test_a_namespace_of_no_project_is_announced_with_the_problem(discovery, js):
    kube, found = discovery
    ns = f"lost-{uuid.uuid4().hex[:6]}"
    kube.core.create_namespace({"metadata": {"name": ns}})
    bare = kube.core.create_namespaced_pod(ns, {"metadata": {"name": "solo"},
                                                "spec": template()["spec"]})
    event = await announced(js, workload_id(bare.metadata.uid), lambda e: bool(e.pods))
    assert (event.kind, event.name, event.pods, event.project) == ("Pod", "solo", ["solo"],
                                                                   None)
    assert event.problem == (f"namespace {ns} belongs to no project: label the namespace (or "
                             "the pod) fairway.io/project=<project>")
    assert (event.phase, event.phase_reason) == ("Pending", "NoProject")
    assert len([e for e in found.announced.values() if e.namespace == ns]) == 1


async def test_waiting_pods_say_why_and_so_do_the_ones_made_later(discovery, js):
    kube, found = discovery
    ns = f"wait-{uuid.uuid4().hex[:6]}"
    kube.core.create_namespace({"metadata": {"name": ns, "labels": {
        "fairway.io/project": "team-a"}}})
    apps = client.AppsV1Api(kube.api)
    deployment = apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": template(labels={"app": "web"}, restart="Always")}})
    wid = workload_id(deployment.metadata.uid)
    served = await announced(js, wid, lambda e: len(e.pods) == 2)

    def conditions() -> dict[str, tuple]:
        return {p.metadata.name: next(((c.status, c.reason, c.message)
                                       for c in p.status.conditions or ()
                                       if c.type == "PodScheduled"), None)
                for p in kube.core.list_namespaced_pod(ns).items}

    assert await found.pending(SchedulingPending(
        workload_id=wid, project="team-a", code="OverLimit",
        message="project team-a is at its GPU limit (2)", changed_at=served.observed_at))
    why = ("False", "Unschedulable", "OverLimit: project team-a is at its GPU limit (2)")
    assert conditions() == dict.fromkeys(served.pods, why)
    events = [e for e in kube.core.list_namespaced_event(ns).items
              if e.reason == "FailedScheduling"]
    assert sorted(e.involved_object.name for e in events) == sorted(served.pods)
    assert {e.type for e in events} == {"Warning"}

    # scaled up: the pod its ReplicaSet makes is told too
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 3}})
    scaled = await announced(js, wid, lambda e: len(e.pods) == 3)
    assert scaled.replicas == 3  # what its owner wants now
    for _ in range(50):
        if list(conditions().values()) == [why] * 3:
            break
        await asyncio.sleep(0.1)
    assert list(conditions().values()) == [why] * 3
    # not a third-party workload: not ours to tell
    assert not await found.pending(SchedulingPending(
        workload_id=str(uuid.uuid4()), project="team-a", changed_at=served.observed_at))


def test_a_fraction_pod_on_its_way_to_a_node_is_found_again_after_a_restart():
    found = ThirdPartyDiscovery(kube=None)
    event = ThirdPartyWorkloadChanged(
        event_id="e", workload_id="w1", kind="Deployment", api_version="apps/v1", name="halves",
        namespace="ml", owner_uid="u", grouping="elastic", min_members=1, project="team-a",
        priority_class="train", priority=50, preemptible=True,
        pods=["halves-a", "halves-b", "halves-c"], gpu_portion=0.5,
        observed_at=datetime(2026, 1, 1, tzinfo=UTC))
    found.announced["w1"] = event

    def pod(name: str, node: str | None = None, bind_node: str | None = "n1") -> dict:
        notes = {"fairway.io/gpu-devices": "2"} | (
            {"fairway.io/bind-node": bind_node} if bind_node else {})
        return {"metadata": {"name": name, "namespace": "ml", "annotations": notes,
                             "labels": {"fairway.io/gpu-fraction": "true"}},
                "spec": {"schedulerName": "fairway", "nodeName": node}}

    found.pods["ml"] = {"halves-a": pod("halves-a"), "halves-b": pod("halves-b", node="n1"),
                        "halves-c": pod("halves-c", bind_node=None)}
    [job] = found.unbound_fractions()
    assert (job.namespace, job.placement.pod, job.placement.node, job.placement.gpu_devices,
            job.by) == ("ml", "halves-a", "n1", [2], "halves")
    assert (job.compute.gpu_request_type, job.compute.gpu_portion_request) == ("portion", 0.5)
