"""Watch semantics through `kubernetes.watch.Watch`: list-then-watch, resume without gaps or
repeats, selector transitions, bookmarks, timeouts and 410 for a version out of the window."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client, config, watch

from fairway_kubesim import KubeSimThread

from .conftest import bind, collect, make_pod


def test_list_then_watch_sees_added_modified_deleted(api: client.CoreV1Api, ns: str) -> None:
    listed = api.list_namespaced_pod(ns)
    assert listed.items == []
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(collect, api.list_namespaced_pod, ns,
                             resource_version=listed.metadata.resource_version,
                             until=lambda evs: evs[-1]["type"] == "DELETED")
        time.sleep(0.2)  # the watch is open before anything happens
        api.create_namespaced_pod(ns, make_pod("p", {"sim.fairway.io/pull-seconds": "60"}))
        bind(api, ns, "p", "t4-1")
        time.sleep(0.1)
        api.delete_namespaced_pod("p", ns, grace_period_seconds=0)
        events, w = future.result(timeout=15)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    assert all(isinstance(e["object"], client.V1Pod) for e in events)
    assert all(e["object"].metadata.name == "p" for e in events)
    assert events[1]["object"].spec.node_name == "t4-1"
    assert events[2]["object"].status.container_statuses[0].state.waiting.reason == \
        "ContainerCreating"
    rvs = [int(e["object"].metadata.resource_version) for e in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == 4
    assert w.resource_version == events[-1]["object"].metadata.resource_version


def test_resume_misses_nothing_and_repeats_nothing(api: client.CoreV1Api, ns: str) -> None:
    start = api.list_namespaced_pod(ns).metadata.resource_version
    for i in range(5):
        api.create_namespaced_pod(ns, make_pod(f"p{i}"))
    first, w = collect(api.list_namespaced_pod, ns, resource_version=start,
                       until=lambda evs: len(evs) == 2)
    resume_from = w.resource_version
    assert resume_from == first[-1]["object"].metadata.resource_version
    for i in range(5, 10):
        api.create_namespaced_pod(ns, make_pod(f"p{i}"))
    rest, _ = collect(api.list_namespaced_pod, ns, resource_version=resume_from,
                      until=lambda evs: len(evs) == 8)
    names = [e["object"].metadata.name for e in first + rest]
    assert names == [f"p{i}" for i in range(10)]
    assert {e["type"] for e in first + rest} == {"ADDED"}
    rvs = [int(e["object"].metadata.resource_version) for e in first + rest]
    assert rvs == sorted(rvs) and len(set(rvs)) == 10


def test_stopped_watches_are_closed_on_the_server(api: client.CoreV1Api, ns: str,
                                                  sim: KubeSimThread) -> None:
    def open_watches() -> int:
        return sim.call(lambda s: len(s.store["pods"].watchers))

    api.create_namespaced_pod(ns, make_pod("p"))
    events, _ = collect(api.list_namespaced_pod, ns, timeout=30,
                        until=lambda evs: len(evs) == 1)  # stopped by the client
    assert events[0]["type"] == "ADDED"
    deadline = time.monotonic() + 5
    while open_watches():
        assert time.monotonic() < deadline, "the server kept a watch the client closed"
        time.sleep(0.02)


def test_watch_without_version_starts_with_the_current_state(api: client.CoreV1Api) -> None:
    events, _ = collect(api.list_node, until=lambda evs: len(evs) == 4)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "a100-1"), ("ADDED", "a100-2"), ("ADDED", "t4-1"), ("ADDED", "t4-2")]
    assert isinstance(events[0]["object"], client.V1Node)


def test_selector_watch_sees_objects_enter_and_leave(api: client.CoreV1Api, ns: str) -> None:
    """An object that starts matching arrives as ADDED, one that stops as DELETED."""
    start = api.list_namespaced_pod(ns).metadata.resource_version
    api.create_namespaced_pod(ns, make_pod("job", {"sim.fairway.io/run-seconds": "0.2"}))
    bind(api, ns, "job", "t4-2")
    events, _ = collect(api.list_namespaced_pod, ns, resource_version=start,
                        field_selector="status.phase=Running",
                        until=lambda evs: evs[-1]["type"] == "DELETED")
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[-1]["object"].status.phase == "Succeeded"
    assert api.read_namespaced_pod("job", ns).status.phase == "Succeeded"  # still there


def test_cluster_wide_watch(api: client.CoreV1Api, ns: str) -> None:
    other = ns + "-b"
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    start = api.list_pod_for_all_namespaces().metadata.resource_version
    api.create_namespaced_pod(ns, make_pod("x", labels={"watch": ns}))
    api.create_namespaced_pod(other, make_pod("y", labels={"watch": ns}))
    api.create_namespaced_pod(other, make_pod("z"))  # not selected
    api.create_namespaced_pod(ns, make_pod("last", labels={"watch": ns}))
    events, _ = collect(api.list_pod_for_all_namespaces, resource_version=start,
                        label_selector=f"watch={ns}",
                        until=lambda evs: evs[-1]["object"].metadata.name == "last")
    assert [(e["object"].metadata.namespace, e["object"].metadata.name) for e in events] == [
        (ns, "x"), (other, "y"), (ns, "last")]


def test_bookmarks_only_when_allowed(api: client.CoreV1Api, ns: str) -> None:
    rv = api.list_namespaced_pod(ns).metadata.resource_version
    events, w = collect(api.list_namespaced_pod, ns, resource_version=rv,
                        allow_watch_bookmarks=True, timeout=1, until=lambda evs: False)
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert len(bookmarks) >= 2 and len(bookmarks) == len(events)
    marks = [int(e["raw_object"]["metadata"]["resourceVersion"]) for e in bookmarks]
    assert marks == sorted(marks) and marks[0] >= int(rv)
    assert bookmarks[0]["raw_object"]["kind"] == "Pod"
    assert int(w.resource_version) == marks[-1]
    started = time.monotonic()
    quiet, _ = collect(api.list_namespaced_pod, ns, resource_version=rv, timeout=1,
                       until=lambda evs: False)
    assert quiet == [] and 0.8 <= time.monotonic() - started < 3  # timeoutSeconds ends it


def test_a_too_old_resource_version_is_410(tmp_path) -> None:
    with KubeSimThread(history=5) as small:
        api = client.CoreV1Api(config.new_client_from_config(
            config_file=str(small.write_kubeconfig(tmp_path / "kubeconfig"))))
        api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="old")))
        first = api.create_namespaced_pod("old", make_pod("p0")).metadata.resource_version
        for i in range(1, 10):
            api.create_namespaced_pod("old", make_pod(f"p{i}"))

        # The raw answer: 200 and one ERROR event carrying a 410 Status.
        resp = api.list_namespaced_pod("old", watch=True, resource_version=first,
                                       _preload_content=False)
        lines = resp.data.decode().splitlines()
        assert resp.status == 200 and len(lines) == 1
        event = json.loads(lines[0])
        assert event["type"] == "ERROR"
        status = event["object"]
        assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
        assert status["message"].startswith(f"too old resource version: {first} (")

        # The client's Watch turns it into ApiException(410) (after one retry without a
        # timeout, at once with one).
        for kwargs in ({"timeout_seconds": 5}, {"_request_timeout": 5}):
            with pytest.raises(client.ApiException) as info:
                for _ in watch.Watch().stream(api.list_namespaced_pod, "old",
                                              resource_version=first, **kwargs):
                    pass
            assert info.value.status == 410

        # Within the window it resumes; a fresh list gives a version that works.
        recent = api.list_namespaced_pod("old")
        assert len(recent.items) == 10
        api.create_namespaced_pod("old", make_pod("p10"))
        events, _ = collect(api.list_namespaced_pod, "old",
                            resource_version=recent.metadata.resource_version,
                            until=lambda evs: len(evs) == 1)
        assert events[0]["object"].metadata.name == "p10"
