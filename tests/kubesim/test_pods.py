"""Pods through the official client: admission defaults, selectors, binding, the simulated
kubelet's stages, exit codes, graceful deletion and error Status codes."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kubernetes import client

from .conftest import bind, collect, error_body, make_pod


def wait_for(api: client.CoreV1Api, ns: str, name: str, cond: Callable[[client.V1Pod], bool],
             timeout: float = 8.0) -> client.V1Pod:
    deadline = time.monotonic() + timeout
    while True:
        pod = api.read_namespaced_pod(name, ns)
        if cond(pod):
            return pod
        assert time.monotonic() < deadline, f"timed out; pod status: {pod.status}"
        time.sleep(0.02)


def test_create_fills_in_what_the_api_server_would(api: client.CoreV1Api, ns: str) -> None:
    created = api.create_namespaced_pod(ns, make_pod("p1", labels={"app": "a"}))
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp and int(meta.resource_version) > 0
    assert meta.namespace == ns
    assert created.status.phase == "Pending"
    assert created.status.conditions is None  # nothing has tried to schedule it yet
    assert created.status.qos_class == "BestEffort"
    spec = created.spec
    assert spec.scheduler_name == "default-scheduler" and spec.node_name is None
    assert spec.termination_grace_period_seconds == 30 and spec.restart_policy == "Never"
    assert spec.containers[0].image_pull_policy == "IfNotPresent"
    assert {t.key for t in spec.tolerations} == {"node.kubernetes.io/not-ready",
                                                 "node.kubernetes.io/unreachable"}
    fetched = api.read_namespaced_pod("p1", ns)
    assert fetched.metadata.uid == meta.uid
    assert fetched.metadata.resource_version == meta.resource_version


def test_qos_classes_and_generate_name(api: client.CoreV1Api, ns: str) -> None:
    guaranteed = make_pod("g")
    guaranteed.spec.containers[0].resources = client.V1ResourceRequirements(
        limits={"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"})
    pod = api.create_namespaced_pod(ns, guaranteed)
    assert pod.status.qos_class == "Guaranteed"
    assert pod.spec.containers[0].resources.requests == {"cpu": "2", "memory": "1Gi",
                                                         "nvidia.com/gpu": "1"}
    burstable = make_pod("b")
    burstable.spec.containers[0].resources = client.V1ResourceRequirements(
        requests={"cpu": "500m"})
    assert api.create_namespaced_pod(ns, burstable).status.qos_class == "Burstable"
    generated = make_pod(None)
    generated.metadata.generate_name = "worker-"
    name = api.create_namespaced_pod(ns, generated).metadata.name
    assert name.startswith("worker-") and len(name) == len("worker-") + 5


def test_list_with_label_and_field_selectors(api: client.CoreV1Api, ns: str) -> None:
    for name, labels in [("a", {"app": "x", "tier": "gpu"}), ("b", {"app": "y"}),
                         ("c", {"app": "z", "tier": "cpu"})]:
        slow = {"sim.fairway.io/pull-seconds": "60"}  # stays Pending once bound
        api.create_namespaced_pod(ns, make_pod(name, slow, labels=labels))
    bind(api, ns, "b", "t4-1")

    def names(**kwargs: str) -> list[str]:
        return [p.metadata.name for p in api.list_namespaced_pod(ns, **kwargs).items]

    assert names() == ["a", "b", "c"]
    assert names(label_selector="app=x") == ["a"]
    assert names(label_selector="app in (x,y),tier!=gpu") == ["b"]
    assert names(label_selector="tier") == ["a", "c"]
    assert names(label_selector="!tier") == ["b"]
    assert names(label_selector="app notin (x)") == ["b", "c"]
    assert names(field_selector="metadata.name=c") == ["c"]
    assert names(field_selector="spec.nodeName=") == ["a", "c"]
    assert names(field_selector="spec.nodeName=t4-1") == ["b"]
    assert names(field_selector="status.phase=Pending,metadata.name!=a") == ["b", "c"]
    assert names(field_selector="status.phase=Running") == []
    everywhere = api.list_pod_for_all_namespaces(label_selector="app=x",
                                                 field_selector=f"metadata.namespace={ns}")
    assert [(p.metadata.namespace, p.metadata.name) for p in everywhere.items] == [(ns, "a")]
    assert int(everywhere.metadata.resource_version) >= int(
        api.read_namespaced_pod("b", ns).metadata.resource_version)
    with pytest.raises(client.ApiException) as info:
        api.list_namespaced_pod(ns, label_selector="app in (x")
    assert info.value.status == 400 and error_body(info.value)["reason"] == "BadRequest"
    with pytest.raises(client.ApiException) as info:
        api.list_namespaced_pod(ns, field_selector="spec.priority=1")
    assert info.value.status == 400


def test_paging_with_limit_and_continue(api: client.CoreV1Api, ns: str) -> None:
    for i in range(5):
        api.create_namespaced_pod(ns, make_pod(f"p{i}"))
    first = api.list_namespaced_pod(ns, limit=2)
    assert [p.metadata.name for p in first.items] == ["p0", "p1"]
    assert first.metadata.remaining_item_count == 3 and first.metadata._continue
    rest = api.list_namespaced_pod(ns, limit=10, _continue=first.metadata._continue)
    assert [p.metadata.name for p in rest.items] == ["p2", "p3", "p4"]
    assert rest.metadata._continue is None


def test_binding_runs_the_pod_through_its_stages(api: client.CoreV1Api, ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("job", {"sim.fairway.io/run-seconds": "1"}))
    pods = api.list_namespaced_pod(ns)
    status, body = bind(api, ns, "job", "a100-2")
    assert status == 201
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "code": 201}
    events, _ = collect(api.list_namespaced_pod, ns,
                        resource_version=pods.metadata.resource_version,
                        until=lambda evs: evs[-1]["object"].status.phase == "Succeeded")
    seen = [e["object"] for e in events]
    assert all(e["type"] == "MODIFIED" for e in events)
    assert seen[0].spec.node_name == "a100-2"
    scheduled = {c.type: c for c in seen[0].status.conditions}["PodScheduled"]
    assert scheduled.status == "True" and scheduled.last_transition_time is not None

    def stage(pod: client.V1Pod) -> tuple:
        state = pod.status.container_statuses[0].state if pod.status.container_statuses else None
        conds = {c.type: c.status for c in pod.status.conditions or ()}
        if state is None:
            return (pod.status.phase, None, conds.get("Ready"))
        what = ("waiting", state.waiting.reason) if state.waiting else \
            ("running", None) if state.running else ("terminated", state.terminated.reason)
        return (pod.status.phase, what, conds.get("Ready"))

    assert [stage(p) for p in seen] == [
        ("Pending", None, None),                                 # bound
        ("Pending", ("waiting", "ContainerCreating"), "False"),  # sandbox, pulling
        ("Running", ("running", None), "False"),                 # started, not ready
        ("Running", ("running", None), "True"),                  # ready
        ("Succeeded", ("terminated", "Completed"), "False"),     # exited 0
    ]
    running, done = seen[3], seen[4]
    assert running.status.host_ip == "172.16.0.2" and running.status.pod_ip.startswith("10.64.")
    assert running.status.start_time is not None
    assert running.status.container_statuses[0].ready is True
    assert running.status.container_statuses[0].container_id.startswith("containerd://")
    conds = {c.type: c for c in done.status.conditions}
    assert conds["Ready"].reason == "PodCompleted" and conds["Initialized"].status == "True"
    assert all(c.last_transition_time is not None for c in done.status.conditions)
    terminated = done.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0 and terminated.finished_at >= terminated.started_at
    rvs = [int(p.metadata.resource_version) for p in seen]
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)


def test_exit_code_fails_the_pod(api: client.CoreV1Api, ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("bad", {"sim.fairway.io/run-seconds": "0.2",
                                                   "sim.fairway.io/exit-code": "3"}))
    bind(api, ns, "bad", "t4-2")
    pod = wait_for(api, ns, "bad", lambda p: p.status.phase in ("Succeeded", "Failed"))
    assert pod.status.phase == "Failed"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    assert {c.type: c.reason for c in pod.status.conditions}["Ready"] == "PodFailed"


def test_restart_policy_always_goes_into_crash_loop_back_off(api: client.CoreV1Api,
                                                             ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("svc", {"sim.fairway.io/run-seconds": "0.1",
                                                   "sim.fairway.io/exit-code": "1"},
                                           restart_policy="Always"))
    bind(api, ns, "svc", "t4-2")

    def backing_off(p: client.V1Pod) -> bool:
        cs = p.status.container_statuses
        return bool(cs and cs[0].state.waiting and cs[0].state.waiting.reason ==
                    "CrashLoopBackOff")

    pod = wait_for(api, ns, "svc", backing_off)
    assert pod.status.phase == "Running"
    status = pod.status.container_statuses[0]
    assert status.last_state.terminated.exit_code == 1 and status.restart_count == 0
    assert "back-off 10s restarting" in status.state.waiting.message


def test_a_pod_created_with_a_node_name_runs_without_binding(api: client.CoreV1Api,
                                                             ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("direct", node_name="t4-1"))
    pod = wait_for(api, ns, "direct", lambda p: p.status.phase == "Running")
    assert {c.type: c.status for c in pod.status.conditions}["PodScheduled"] == "True"


def test_kubelet_rejects_a_pod_that_does_not_fit(api: client.CoreV1Api, ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("greedy", gpus=9))
    bind(api, ns, "greedy", "a100-1")
    pod = wait_for(api, ns, "greedy", lambda p: p.status.phase == "Failed")
    assert pod.status.reason == "OutOfnvidia.com/gpu"
    assert "requested: 9" in pod.status.message and "capacity: 8" in pod.status.message


def test_binding_errors(api: client.CoreV1Api, ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("p"))
    status, body = bind(api, ns, "p", "nowhere-1")
    assert status == 404
    assert (body["reason"], body["message"]) == ("NotFound", 'nodes "nowhere-1" not found')
    assert bind(api, ns, "p", "t4-1")[0] == 201
    status, body = bind(api, ns, "p", "t4-2")
    assert status == 409 and body["kind"] == "Status" and body["reason"] == "Conflict"
    assert 'already assigned to node "t4-1"' in body["message"]
    status, body = bind(api, ns, "ghost", "t4-1")
    assert status == 404 and body["message"] == 'pods "ghost" not found'
    assert body["details"] == {"name": "ghost", "kind": "pods"}


def test_pod_error_statuses(api: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(client.ApiException) as info:
        api.read_namespaced_pod("missing", ns)
    assert info.value.status == 404
    assert error_body(info.value)["message"] == 'pods "missing" not found'

    api.create_namespaced_pod(ns, make_pod("dup"))
    with pytest.raises(client.ApiException) as info:
        api.create_namespaced_pod(ns, make_pod("dup"))
    assert info.value.status == 409
    assert error_body(info.value)["reason"] == "AlreadyExists"

    with pytest.raises(client.ApiException) as info:
        api.create_namespaced_pod("no-such-ns", make_pod("p"))
    assert info.value.status == 404
    assert error_body(info.value)["message"] == 'namespaces "no-such-ns" not found'

    bad = make_pod("bad")
    bad.spec.containers[0].name = "Main_Container"
    bad.spec.containers[0].image = None
    with pytest.raises(client.ApiException) as info:
        api.create_namespaced_pod(ns, bad)
    assert info.value.status == 422
    status = error_body(info.value)
    assert status["reason"] == "Invalid" and status["details"]["kind"] == "Pod"
    assert {c["field"] for c in status["details"]["causes"]} == {"spec.containers[0].name",
                                                                 "spec.containers[0].image"}
    with pytest.raises(client.ApiException) as info:
        api.create_namespaced_pod(ns, make_pod("p", {"sim.fairway.io/run-seconds": "soon"}))
    assert info.value.status == 422


def test_delete_an_unscheduled_pod_at_once(api: client.CoreV1Api, ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("p"))
    gone = api.delete_namespaced_pod("p", ns)
    assert gone.metadata.deletion_timestamp is not None
    with pytest.raises(client.ApiException) as info:
        api.read_namespaced_pod("p", ns)
    assert info.value.status == 404
    with pytest.raises(client.ApiException) as info:
        api.delete_namespaced_pod("p", ns)
    assert info.value.status == 404


def test_delete_a_running_pod_with_grace(api: client.CoreV1Api, ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("p", grace=30))
    bind(api, ns, "p", "a100-1")
    wait_for(api, ns, "p", lambda p: p.status.phase == "Running")
    rv = api.list_namespaced_pod(ns).metadata.resource_version
    started = time.monotonic()
    deleting = api.delete_namespaced_pod("p", ns, grace_period_seconds=1)
    assert deleting.metadata.deletion_timestamp is not None
    assert deleting.metadata.deletion_grace_period_seconds == 1
    assert api.read_namespaced_pod("p", ns).metadata.deletion_timestamp is not None
    events, _ = collect(api.list_namespaced_pod, ns, resource_version=rv,
                        until=lambda evs: evs[-1]["type"] == "DELETED")
    elapsed = time.monotonic() - started
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert events[0]["object"].metadata.deletion_timestamp is not None
    killed = events[1]["object"]
    assert killed.status.phase == "Failed"
    assert killed.status.container_statuses[0].state.terminated.exit_code == 137
    assert 0.8 <= elapsed < 3, elapsed
    with pytest.raises(client.ApiException) as info:
        api.read_namespaced_pod("p", ns)
    assert info.value.status == 404


def test_delete_with_zero_grace_and_while_pulling(api: client.CoreV1Api, ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("now", grace=30))
    api.create_namespaced_pod(ns, make_pod("pulling", {"sim.fairway.io/pull-seconds": "30"}))
    bind(api, ns, "now", "t4-1")
    bind(api, ns, "pulling", "t4-1")
    wait_for(api, ns, "now", lambda p: p.status.phase == "Running")
    wait_for(api, ns, "pulling", lambda p: bool(p.status.container_statuses))
    api.delete_namespaced_pod("now", ns, body=client.V1DeleteOptions(grace_period_seconds=0))
    with pytest.raises(client.ApiException):
        api.read_namespaced_pod("now", ns)
    started = time.monotonic()
    api.delete_namespaced_pod("pulling", ns)  # 30 s grace, but nothing is running yet
    deadline = started + 2
    while True:
        try:
            api.read_namespaced_pod("pulling", ns)
        except client.ApiException as exc:
            assert exc.status == 404
            break
        assert time.monotonic() < deadline, "a pod without running containers lingered"
        time.sleep(0.02)


def test_delete_precondition_uid(api: client.CoreV1Api, ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("p"))
    with pytest.raises(client.ApiException) as info:
        api.delete_namespaced_pod("p", ns, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid="not-the-uid")))
    assert info.value.status == 409
