"""Submission's reader of pod logs (`workloads.logs.PodLogs`) against kubesim with the official
client: it finds a workload's pod by label and name, streams a followed log as it is written,
turns Kubernetes' refusals into the API's errors, and a reader that leaves frees its thread."""

import asyncio
import time
import uuid

import pytest
from kubernetes import client, config

from fairway_kubesim import DEFAULT_PROFILE, KubeSimThread
from fairway_submission.core.errors import ApiError
from fairway_submission.workloads.logs import WORKLOAD_LABEL, LogQuery, PodLogs

FAST = {"sim.fairway.io/pull-seconds": "0.1", "sim.fairway.io/start-seconds": "0.1"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with KubeSimThread(DEFAULT_PROFILE) as sim:
        kubeconfig = sim.write_kubeconfig(tmp_path_factory.mktemp("kubesim") / "kubeconfig")
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        core.create_namespace({"metadata": {"name": "fairway-team"}})
        yield str(kubeconfig), core


def running_pod(core, workload_id: str, name: str, annotations: dict[str, str]) -> None:
    core.create_namespaced_pod("fairway-team", {
        "metadata": {"name": name, "labels": {WORKLOAD_LABEL: workload_id},
                     "annotations": {**FAST, **annotations}},
        "spec": {"nodeName": "t4-1", "restartPolicy": "Never",
                 "containers": [{"name": "main", "image": "busybox"}]}})
    deadline = time.monotonic() + 10
    while core.read_namespaced_pod(name, "fairway-team").status.phase != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)


async def read_all(chunks) -> str:
    return b"".join([chunk async for chunk in chunks]).decode()


async def test_finds_the_pod_and_streams_its_followed_log_until_it_ends(cluster):
    kubeconfig, core = cluster
    wid = str(uuid.uuid4())
    running_pod(core, wid, "train-0", {"sim.fairway.io/run-seconds": "1.5"})
    logs = PodLogs(kubeconfig, streams=2)
    try:
        namespace = await logs.namespace_of(wid, "train-0")
        assert namespace == "fairway-team"
        text = await read_all(await logs.open(namespace, "train-0", LogQuery(follow=True)))
        assert text.splitlines()[0] == "[kubesim] container main started (image busybox)"
        assert text.endswith("exited with code 0 (Completed)\n")
        tail = await read_all(await logs.open(namespace, "train-0", LogQuery(tail_lines=1)))
        assert tail.count("\n") == 1
    finally:
        logs.close()


async def test_refusals_become_the_apis_errors(cluster):
    kubeconfig, core = cluster
    wid = str(uuid.uuid4())
    running_pod(core, wid, "refused-0", {})
    logs = PodLogs(kubeconfig, streams=2)
    try:
        with pytest.raises(ApiError) as exc:
            await logs.namespace_of(str(uuid.uuid4()), "refused-0")  # another workload's
        assert exc.value.code == 404 and exc.value.details[0]["field"] == "pod"
        with pytest.raises(ApiError) as exc:
            await logs.open("fairway-team", "refused-0", LogQuery(previous=True))
        assert (exc.value.code, exc.value.details[0]["field"]) == (409, "previous")
        assert "previous terminated container" in exc.value.message
        with pytest.raises(ApiError) as exc:
            await logs.open("fairway-team", "refused-0", LogQuery(container="sidecar"))
        assert (exc.value.code, exc.value.details[0]["field"]) == (400, "container")
        with pytest.raises(ApiError) as exc:
            await logs.open("fairway-team", "gone-0", LogQuery())
        assert exc.value.code == 404
    finally:
        logs.close()


async def test_a_reader_that_leaves_a_followed_log_frees_its_thread(cluster):
    kubeconfig, core = cluster
    wid = str(uuid.uuid4())
    # one line, then silence until it is deleted: the thread waits for a line that never comes
    running_pod(core, wid, "quiet-0", {"sim.fairway.io/log": "only line"})
    logs = PodLogs(kubeconfig, streams=1)  # one thread: the next call needs it back
    try:
        chunks = await logs.open("fairway-team", "quiet-0", LogQuery(follow=True))
        text = b""
        while b"only line" not in text:
            text += await anext(chunks)
        waiting = asyncio.ensure_future(anext(chunks))
        await asyncio.sleep(0.3)
        waiting.cancel()  # the reader left while the thread waits (as the server cancels it)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await chunks.aclose()
        found = await asyncio.wait_for(logs.namespace_of(wid, "quiet-0"), timeout=5)
        assert found == "fairway-team"
    finally:
        logs.close()


async def test_without_a_cluster_configuration_logs_are_unavailable(tmp_path):
    logs = PodLogs(str(tmp_path / "no-such-kubeconfig"), streams=1)
    try:
        with pytest.raises(ApiError) as exc:
            await logs.namespace_of(str(uuid.uuid4()), "p")
        assert exc.value.code == 503 and "KUBECONFIG" in exc.value.message
    finally:
        logs.close()


async def test_a_workloads_kubernetes_events_are_its_own_pods_oldest_first(cluster):
    kubeconfig, core = cluster
    wid = str(uuid.uuid4())
    running_pod(core, wid, "evented-0", {})
    # The same pod name in another namespace, of another workload: none of its events.
    core.create_namespace({"metadata": {"name": "fairway-other"}})
    core.create_namespaced_pod("fairway-other", {
        "metadata": {"name": "evented-0", "annotations": FAST,
                     "labels": {WORKLOAD_LABEL: str(uuid.uuid4())}},
        "spec": {"nodeName": "t4-1", "restartPolicy": "Never",
                 "containers": [{"name": "main", "image": "busybox"}]}})
    core.create_namespaced_event("fairway-team", {
        "metadata": {"name": "evented-0.moved"},
        "involvedObject": {"kind": "Pod", "namespace": "fairway-team", "name": "evented-0",
                           "uid": core.read_namespaced_pod("evented-0", "fairway-team")
                           .metadata.uid},
        "type": "Normal", "reason": "GpuProcessMoved", "message": "moved to device 1",
        "source": {"component": "fairway-lifecycle"},
        "firstTimestamp": "2099-01-01T00:00:00Z", "lastTimestamp": "2099-01-01T00:00:00Z"})
    logs = PodLogs(kubeconfig, streams=2)
    try:
        events = await logs.events(wid)
        reasons = [e["reason"] for e in events]
        assert {"Pulled", "Started"} <= set(reasons), reasons
        assert reasons[-1] == "GpuProcessMoved"  # the newest last
        assert events[-1] == {"pod": "evented-0", "type": "Normal", "reason": "GpuProcessMoved",
                              "message": "moved to device 1", "count": 1,
                              "firstTime": "2099-01-01T00:00:00+00:00",
                              "lastTime": "2099-01-01T00:00:00+00:00",
                              "source": "fairway-lifecycle"}
        assert {e["pod"] for e in events} == {"evented-0"}
        assert len(events) == len({(e["reason"], e["lastTime"], e["message"]) for e in events})
        other = await logs.events(str(uuid.uuid4()))  # a workload with no pods
        assert other == []
    finally:
        logs.close()
