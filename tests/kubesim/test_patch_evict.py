"""PATCH / PUT of pods and their status, pods/eviction, core/v1 events and
coordination.k8s.io/v1 leases, through the official client."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from .conftest import bind, collect, error_body, make_pod, wait_pod

MERGE = "application/merge-patch+json"


def test_patch_metadata_strategic_merge_and_json_patch(api: client.CoreV1Api, ns: str) -> None:
    created = api.create_namespaced_pod(ns, make_pod("p", labels={"app": "a", "tier": "x"}))
    # the client sends a strategic merge patch for a dict body
    patched = api.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"app": "b",
                                                                         "tier": None},
                                                              "annotations": {"k": "v"}}})
    assert patched.metadata.labels == {"app": "b"}
    assert patched.metadata.annotations["k"] == "v"
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    assert patched.metadata.uid == created.metadata.uid
    merged = api.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"new": "1"}}},
                                      _content_type=MERGE)
    assert merged.metadata.labels == {"app": "b", "new": "1"}
    ops = [{"op": "replace", "path": "/metadata/labels/app", "value": "c"},
           {"op": "remove", "path": "/metadata/labels/new"},
           {"op": "add", "path": "/metadata/annotations/x~1y", "value": "z"}]
    jp = api.patch_namespaced_pod("p", ns, ops)
    assert jp.metadata.labels == {"app": "c"} and jp.metadata.annotations["x/y"] == "z"
    assert api.read_namespaced_pod("p", ns).metadata.labels == {"app": "c"}
    # a failing JSON patch test op changes nothing
    with pytest.raises(client.ApiException) as failed:
        api.patch_namespaced_pod("p", ns, [{"op": "test", "path": "/metadata/labels/app",
                                            "value": "nope"}])
    assert failed.value.status == 422


def test_patch_errors(api: client.CoreV1Api, ns: str) -> None:
    pod = api.create_namespaced_pod(ns, make_pod("p"))
    with pytest.raises(client.ApiException) as stale:
        api.patch_namespaced_pod("p", ns, {"metadata": {"resourceVersion": "1",
                                                        "labels": {"a": "b"}}})
    assert stale.value.status == 409 and error_body(stale.value)["reason"] == "Conflict"
    ok = api.patch_namespaced_pod("p", ns, {"metadata": {
        "resourceVersion": pod.metadata.resource_version, "labels": {"a": "b"}}})
    assert ok.metadata.labels == {"a": "b"}
    with pytest.raises(client.ApiException) as forbidden:
        api.patch_namespaced_pod("p", ns, {"spec": {"restartPolicy": "Always"}})
    assert forbidden.value.status == 422
    image = api.patch_namespaced_pod("p", ns, {"spec": {"containers": [
        {"name": "main", "image": "busybox:1.37"}]}})
    assert image.spec.containers[0].image == "busybox:1.37"
    assert image.metadata.generation == 2
    with pytest.raises(client.ApiException) as missing:
        api.patch_namespaced_pod("nope", ns, {"metadata": {"labels": {"a": "b"}}})
    assert missing.value.status == 404
    with pytest.raises(client.ApiException) as bad_annotation:
        api.patch_namespaced_pod("p", ns, {"metadata": {"annotations": {
            "sim.fairway.io/crash": "sometimes"}}})
    assert bad_annotation.value.status == 422


def test_patch_status_merges_conditions_and_the_kubelet_keeps_them(api: client.CoreV1Api,
                                                                   ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("p"))
    bind(api, ns, "p", "t4-1")
    wait_pod(api, ns, "p", is_ready)
    patched = api.patch_namespaced_pod_status("p", ns, {"status": {"conditions": [
        {"type": "fairway.io/Checkpointed", "status": "True", "reason": "Saved"}]}})
    types = {c.type: c.status for c in patched.status.conditions}
    assert types["fairway.io/Checkpointed"] == "True" and types["Ready"] == "True"
    assert types["PodScheduled"] == "True"  # merged by type, not replaced
    # the status subresource ignores metadata; the main resource ignores status
    api.patch_namespaced_pod_status("p", ns, {"metadata": {"labels": {"ignored": "1"}}})
    assert not (api.read_namespaced_pod("p", ns).metadata.labels or {}).get("ignored")
    api.patch_namespaced_pod("p", ns, {"status": {"phase": "Failed"}})
    assert api.read_namespaced_pod("p", ns).status.phase == "Running"
    # a merge patch replaces the whole list
    merged = api.patch_namespaced_pod_status("p", ns, {"status": {"message": "hello"}},
                                             _content_type=MERGE)
    assert merged.status.message == "hello"
    # a replace of the status with the current resourceVersion works; a stale one conflicts
    current = api.read_namespaced_pod("p", ns)
    current.status.reason = "Custom"
    replaced = api.replace_namespaced_pod_status("p", ns, current)
    assert replaced.status.reason == "Custom"
    with pytest.raises(client.ApiException) as stale:
        api.replace_namespaced_pod_status("p", ns, current)
    assert stale.value.status == 409
    # the kubelet's next write keeps the foreign condition
    deleting = api.delete_namespaced_pod("p", ns, grace_period_seconds=1)
    events, _ = collect(api.list_namespaced_pod, ns,
                        resource_version=deleting.metadata.resource_version,
                        until=lambda evs: evs[-1]["type"] == "DELETED")
    final = events[-1]["object"]
    assert final.status.phase == "Failed"
    assert "fairway.io/Checkpointed" in {c.type for c in final.status.conditions}


def is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())


def evict(api: client.CoreV1Api, ns: str, name: str, grace: int | None = None
          ) -> tuple[int, dict]:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=ns),
                             delete_options=client.V1DeleteOptions(
                                 grace_period_seconds=grace) if grace is not None else None)
    try:
        resp = api.create_namespaced_pod_eviction(name, ns, body, _preload_content=False)
    except client.ApiException as exc:
        return exc.status, json.loads(exc.body)
    return resp.status, json.loads(resp.data)


def test_eviction_marks_disruption_target_then_deletes_gracefully(api: client.CoreV1Api,
                                                                  ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("victim", grace=1))
    bind(api, ns, "victim", "a100-2")
    pod = wait_pod(api, ns, "victim", lambda p: p.status.phase == "Running")
    rv = pod.metadata.resource_version
    code, status = evict(api, ns, "victim")
    assert code == 201 and status["status"] == "Success"
    events, _ = collect(api.list_namespaced_pod, ns, resource_version=rv,
                        until=lambda evs: evs[-1]["type"] == "DELETED")
    first = events[0]["object"]
    conditions = {c.type: c for c in first.status.conditions}
    assert conditions["DisruptionTarget"].status == "True"
    assert conditions["DisruptionTarget"].reason == "EvictionByEvictionAPI"
    marked = next(e["object"] for e in events if e["object"].metadata.deletion_timestamp)
    assert marked.metadata.deletion_grace_period_seconds == 1
    assert events[-1]["type"] == "DELETED"
    final = events[-1]["object"].status.container_statuses[0].state.terminated
    assert final.exit_code == 137
    code, status = evict(api, ns, "victim")
    assert code == 404 and status["reason"] == "NotFound"


def test_eviction_of_an_unbound_pod_deletes_it_at_once(api: client.CoreV1Api,
                                                       ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("pending"))
    assert evict(api, ns, "pending", grace=0)[0] == 201
    with pytest.raises(client.ApiException) as gone:
        api.read_namespaced_pod("pending", ns)
    assert gone.value.status == 404


def test_events_create_list_and_kubelet_events(api: client.CoreV1Api, ns: str) -> None:
    pod = api.create_namespaced_pod(ns, make_pod("p", grace=1))
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="p."),
        involved_object=client.V1ObjectReference(kind="Pod", name="p", namespace=ns,
                                                 uid=pod.metadata.uid),
        reason="Queued", message="waiting for GPUs", type="Normal",
        source=client.V1EventSource(component="fairway-scheduler"))
    created = api.create_namespaced_event(ns, event)
    assert created.metadata.name.startswith("p.") and created.metadata.uid
    assert api.read_namespaced_event(created.metadata.name, ns).reason == "Queued"
    bind(api, ns, "p", "t4-2")
    wait_pod(api, ns, "p", lambda p: p.status.phase == "Running")
    api.delete_namespaced_pod("p", ns)

    def reasons() -> list[str]:
        items = api.list_namespaced_event(
            ns, field_selector=f"involvedObject.name=p,involvedObject.uid={pod.metadata.uid}"
        ).items
        return [e.reason for e in sorted(items, key=lambda e: int(e.metadata.resource_version))]

    deadline = time.monotonic() + 5
    while "Killing" not in reasons():
        assert time.monotonic() < deadline, reasons()
        time.sleep(0.05)
    assert reasons()[:6] == ["Queued", "Scheduled", "Pulling", "Pulled", "Created", "Started"]
    everywhere = api.list_event_for_all_namespaces(field_selector="reason=Queued").items
    assert created.metadata.name in {e.metadata.name for e in everywhere}
    with pytest.raises(client.ApiException) as invalid:
        api.create_namespaced_event(ns, client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="x"),
            involved_object=client.V1ObjectReference(kind="Pod", name="p", namespace="other")))
    assert invalid.value.status == 422


def test_leases_get_create_update_with_conflicts(kubeconfig: Path, ns: str) -> None:
    coord = client.CoordinationV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    lease = client.V1Lease(metadata=client.V1ObjectMeta(name="leader"),
                           spec=client.V1LeaseSpec(holder_identity="a",
                                                   lease_duration_seconds=15))
    created = coord.create_namespaced_lease(ns, lease)
    assert created.spec.holder_identity == "a" and created.metadata.resource_version
    with pytest.raises(client.ApiException) as exists:
        coord.create_namespaced_lease(ns, lease)
    assert exists.value.status == 409 and error_body(exists.value)["reason"] == "AlreadyExists"
    got = coord.read_namespaced_lease("leader", ns)
    got.spec.holder_identity = "b"
    updated = coord.replace_namespaced_lease("leader", ns, got)
    assert updated.spec.holder_identity == "b"
    assert int(updated.metadata.resource_version) > int(got.metadata.resource_version)
    got.spec.holder_identity = "c"  # stale resourceVersion: someone else renewed
    with pytest.raises(client.ApiException) as stale:
        coord.replace_namespaced_lease("leader", ns, got)
    assert stale.value.status == 409 and error_body(stale.value)["reason"] == "Conflict"
    assert coord.read_namespaced_lease("leader", ns).spec.holder_identity == "b"
    patched = coord.patch_namespaced_lease("leader", ns, {"spec": {"holderIdentity": "d"}})
    assert patched.spec.holder_identity == "d"
    assert [x.metadata.name for x in coord.list_namespaced_lease(ns).items] == ["leader"]
    with pytest.raises(client.ApiException) as missing:
        coord.read_namespaced_lease("nope", ns)
    assert missing.value.status == 404
    assert error_body(missing.value)["details"]["group"] == "coordination.k8s.io"
    coord.delete_namespaced_lease("leader", ns)
    assert coord.list_namespaced_lease(ns).items == []


def test_leader_election_with_the_clients_lease_lock(kubeconfig: Path, ns: str) -> None:
    config.load_kube_config(config_file=str(kubeconfig))  # LeaseLock uses the default client
    started = {"a": threading.Event(), "b": threading.Event()}
    stopped = threading.Event()

    def candidate(name: str, fail: bool) -> None:
        def on_started() -> None:
            started[name].set()
            if fail:
                time.sleep(0.5)
                raise RuntimeError("leader gives up")  # stops renewing

        cfg = electionconfig.Config(LeaseLock("election", ns, name), lease_duration=3,
                                    renew_deadline=2, retry_period=1,
                                    onstarted_leading=on_started,
                                    onstopped_leading=stopped.set)
        with contextlib.suppress(Exception):  # b outlives the test (and the simulator)
            leaderelection.LeaderElection(cfg).run()

    threading.Thread(target=candidate, args=("a", True), daemon=True).start()
    assert started["a"].wait(5)
    threading.Thread(target=candidate, args=("b", False), daemon=True).start()
    coord = client.CoordinationV1Api()
    assert coord.read_namespaced_lease("election", ns).spec.holder_identity == "a"
    assert stopped.wait(5)
    assert not started["b"].is_set()
    assert started["b"].wait(8)
    assert coord.read_namespaced_lease("election", ns).spec.holder_identity == "b"
