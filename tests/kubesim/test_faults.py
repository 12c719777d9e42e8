"""Fault injection through the admin endpoint: dropped watches, forced 410s, NotReady nodes
(pods Unknown, then evicted) and their recovery, delayed and failed requests."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest
from kubernetes import client, watch

from fairway_kubesim import KubeSimThread

from .conftest import admin, bind, collect, make_pod, wait_pod


def conditions(pod: client.V1Pod) -> dict[str, str]:
    return {c.type: c.status for c in pod.status.conditions or ()}


def node_ready(api: client.CoreV1Api, name: str) -> str:
    node = api.read_node(name)
    return next(c.status for c in node.status.conditions if c.type == "Ready")


def test_admin_endpoint_is_off_unless_enabled(sim: KubeSimThread,
                                              fast_sim: KubeSimThread) -> None:
    with pytest.raises(urllib.error.HTTPError) as off:
        urllib.request.urlopen(sim.url + "/admin/stats", timeout=5)
    assert off.value.code == 404
    stats = admin(fast_sim, "GET", "/admin/stats")
    assert stats["objects"]["nodes"] == 4 and stats["resourceVersion"] > 0


def test_drop_all_watches_then_resume_without_loss(fast_api: client.CoreV1Api,
                                                   fast_ns: str, fast_sim: KubeSimThread
                                                   ) -> None:
    first = fast_api.create_namespaced_pod(fast_ns, make_pod("a"))
    seen: list[dict] = []
    ended = threading.Event()

    def follow() -> None:
        w = watch.Watch()
        for event in w.stream(fast_api.list_namespaced_pod, fast_ns, timeout_seconds=30,
                              resource_version=first.metadata.resource_version):
            seen.append(event)
        ended.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    fast_api.create_namespaced_pod(fast_ns, make_pod("b"))
    deadline = time.monotonic() + 5
    while not seen:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    dropped = admin(fast_sim, "POST", "/admin/watches/drop")
    assert dropped["dropped"] >= 1
    assert ended.wait(3), "the watch was not dropped"
    last_rv = seen[-1]["object"].metadata.resource_version
    fast_api.create_namespaced_pod(fast_ns, make_pod("c"))
    events, _ = collect(fast_api.list_namespaced_pod, fast_ns, resource_version=last_rv,
                        until=lambda evs: any(e["object"].metadata.name == "c" for e in evs))
    assert [e["object"].metadata.name for e in seen + events][:2] == ["b", "c"]


def test_next_watches_answer_410(fast_api: client.CoreV1Api, fast_ns: str,
                                 fast_sim: KubeSimThread) -> None:
    rv = fast_api.list_namespaced_pod(fast_ns).metadata.resource_version
    assert admin(fast_sim, "POST", "/admin/watches/expire", {"count": 2}) == {"pending": 2}
    for _ in range(2):
        with pytest.raises(client.ApiException) as gone:
            list(watch.Watch().stream(fast_api.list_namespaced_pod, fast_ns,
                                      resource_version=rv, timeout_seconds=2))
        assert gone.value.status == 410
    fast_api.create_namespaced_pod(fast_ns, make_pod("after"))
    events, _ = collect(fast_api.list_namespaced_pod, fast_ns, resource_version=rv,
                        until=lambda evs: True)
    assert events[0]["object"].metadata.name == "after"


def test_delayed_and_failed_requests(fast_api: client.CoreV1Api, fast_ns: str,
                                     fast_sim: KubeSimThread) -> None:
    try:
        admin(fast_sim, "PUT", "/admin/faults", {"failFraction": 1.0, "failCode": 503})
        with pytest.raises(client.ApiException) as failed:
            fast_api.list_namespaced_pod(fast_ns)
        assert failed.value.status == 503
        admin(fast_sim, "PUT", "/admin/faults", {"failFraction": 0.5, "seed": 3})
        outcomes = []
        for _ in range(40):
            try:
                fast_api.read_namespace(fast_ns)
                outcomes.append(True)
            except client.ApiException as exc:
                assert exc.status == 500
                outcomes.append(False)
        assert 8 <= outcomes.count(False) <= 32
        admin(fast_sim, "PUT", "/admin/faults", {"delayFraction": 1.0, "delaySeconds": 0.3})
        started = time.monotonic()
        fast_api.read_namespace(fast_ns)
        assert time.monotonic() - started >= 0.29
        assert admin(fast_sim, "GET", "/admin/faults")["delayed"] >= 1
    finally:
        admin(fast_sim, "DELETE", "/admin/faults")
    started = time.monotonic()
    fast_api.read_namespace(fast_ns)
    assert time.monotonic() - started < 0.25
    with pytest.raises(urllib.error.HTTPError) as bad:
        admin(fast_sim, "PUT", "/admin/faults", {"failFraction": 2})
    assert bad.value.code == 400


def test_node_not_ready_and_back(fast_api: client.CoreV1Api, fast_ns: str,
                                 fast_sim: KubeSimThread) -> None:
    fast_api.create_namespaced_pod(fast_ns, make_pod("runner", restart_policy="Always"))
    bind(fast_api, fast_ns, "runner", "t4-1")
    wait_pod(fast_api, fast_ns, "runner", lambda p: conditions(p).get("Ready") == "True")
    try:
        admin(fast_sim, "POST", "/admin/nodes/t4-1/ready", {"ready": False})
        assert node_ready(fast_api, "t4-1") == "False"
        taints = {(t.key, t.effect) for t in fast_api.read_node("t4-1").spec.taints}
        assert ("node.kubernetes.io/not-ready", "NoExecute") in taints
        pod = wait_pod(fast_api, fast_ns, "runner", lambda p: p.status.phase == "Unknown")
        assert conditions(pod)["Ready"] == "False"
        # a pod bound to the node meanwhile waits for its kubelet
        fast_api.create_namespaced_pod(fast_ns, make_pod("late"))
        bind(fast_api, fast_ns, "late", "t4-1")
        time.sleep(0.4)
        assert fast_api.read_namespaced_pod("late", fast_ns).status.container_statuses is None
    finally:
        admin(fast_sim, "POST", "/admin/nodes/t4-1/ready", {"ready": True})
    assert node_ready(fast_api, "t4-1") == "True"
    assert not fast_api.read_node("t4-1").spec.taints
    pod = wait_pod(fast_api, fast_ns, "runner", lambda p: conditions(p).get("Ready") == "True")
    assert pod.status.phase == "Running"
    assert "DisruptionTarget" not in conditions(pod)
    wait_pod(fast_api, fast_ns, "late", lambda p: conditions(p).get("Ready") == "True")


def test_node_not_ready_too_long_evicts_its_pods(fast_api: client.CoreV1Api, fast_ns: str,
                                                 fast_sim: KubeSimThread) -> None:
    fast_api.create_namespaced_pod(fast_ns, make_pod("doomed", restart_policy="Always"))
    bind(fast_api, fast_ns, "doomed", "t4-2")
    pod = wait_pod(fast_api, fast_ns, "doomed", lambda p: conditions(p).get("Ready") == "True")
    rv = pod.metadata.resource_version
    try:
        admin(fast_sim, "POST", "/admin/nodes/t4-2/ready", {"ready": False})
        events, _ = collect(fast_api.list_namespaced_pod, fast_ns, resource_version=rv,
                            until=lambda evs: evs[-1]["type"] == "DELETED")
    finally:
        admin(fast_sim, "POST", "/admin/nodes/t4-2/ready", {"ready": True})
    phases = [e["object"].status.phase for e in events]
    assert phases[0] == "Unknown"
    marked = events[-2]["object"]
    target = next(c for c in marked.status.conditions if c.type == "DisruptionTarget")
    assert (target.status, target.reason) == ("True", "DeletionByTaintManager")
    assert marked.metadata.deletion_timestamp is not None
    # Ready again, it takes pods again
    fast_api.create_namespaced_pod(fast_ns, make_pod("next"))
    bind(fast_api, fast_ns, "next", "t4-2")
    wait_pod(fast_api, fast_ns, "next", lambda p: p.status.phase == "Running")
