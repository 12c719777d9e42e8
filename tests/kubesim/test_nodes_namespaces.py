"""Nodes, namespaces, discovery and error Status objects, through the official client."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from .conftest import error_body


def test_nodes_from_the_default_profile(api: client.CoreV1Api) -> None:
    nodes = api.list_node()
    assert [n.metadata.name for n in nodes.items] == ["a100-1", "a100-2", "t4-1", "t4-2"]
    assert int(nodes.metadata.resource_version) > 0
    a100 = api.read_node("a100-1")
    labels = a100.metadata.labels
    assert labels["nvidia.com/gpu.count"] == "8"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert labels["nvidia.com/gpu.memory"] == "81920"
    assert labels["fairway.io/node-pool"] == "a100"
    assert labels["kubernetes.io/hostname"] == "a100-1"
    for resources in (a100.status.capacity, a100.status.allocatable):
        assert resources["nvidia.com/gpu"] == "8"
        assert resources["cpu"] == "128" and resources["memory"] == f"{1048576 * 1024}Ki"
        assert resources["pods"] == "110"
    ready = [c for c in a100.status.conditions if c.type == "Ready"]
    assert [(c.status, c.reason) for c in ready] == [("True", "KubeletReady")]
    assert a100.status.node_info.kubelet_version.startswith("v1.")
    assert {a.type for a in a100.status.addresses} == {"InternalIP", "Hostname"}
    t4 = api.read_node("t4-2")
    assert t4.status.allocatable["nvidia.com/gpu"] == "4"
    assert t4.metadata.labels["nvidia.com/gpu.product"] == "Tesla-T4"


def test_node_list_selectors(api: client.CoreV1Api) -> None:
    t4 = api.list_node(label_selector="fairway.io/node-pool=t4")
    assert [n.metadata.name for n in t4.items] == ["t4-1", "t4-2"]
    big = api.list_node(label_selector="nvidia.com/gpu.count in (8),kubernetes.io/os=linux")
    assert [n.metadata.name for n in big.items] == ["a100-1", "a100-2"]
    one = api.list_node(field_selector="metadata.name=t4-1")
    assert [n.metadata.name for n in one.items] == ["t4-1"]


def test_unknown_node_is_a_404_status(api: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as info:
        api.read_node("h100-9")
    assert info.value.status == 404
    body = error_body(info.value)
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'nodes "h100-9" not found', "reason": "NotFound",
                    "details": {"name": "h100-9", "kind": "nodes"}, "code": 404}


def test_namespace_create_get_list_conflict_delete(api: client.CoreV1Api) -> None:
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name="team-a", labels={"x": "y"}))
    created = api.create_namespace(body)
    assert created.status.phase == "Active" and created.metadata.uid
    assert created.metadata.labels == {"x": "y", "kubernetes.io/metadata.name": "team-a"}
    assert api.read_namespace("team-a").metadata.uid == created.metadata.uid
    names = [n.metadata.name for n in api.list_namespace().items]
    assert {"default", "kube-system", "team-a"} <= set(names)
    assert names == sorted(names)

    with pytest.raises(client.ApiException) as info:
        api.create_namespace(body)
    assert info.value.status == 409
    status = error_body(info.value)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "AlreadyExists", 409)
    assert status["message"] == 'namespaces "team-a" already exists'
    assert status["details"] == {"name": "team-a", "kind": "namespaces"}

    deleted = api.delete_namespace("team-a")  # returns the namespace, Terminating
    assert deleted["status"]["phase"] == "Terminating"
    with pytest.raises(client.ApiException) as info:
        api.read_namespace("team-a")
    assert info.value.status == 404


def test_namespace_delete_waits_for_its_pods(api: client.CoreV1Api) -> None:
    from .conftest import bind, make_pod

    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    api.create_namespaced_pod("doomed", make_pod("p", grace=1))
    bind(api, "doomed", "p", "t4-1")
    deadline = time.monotonic() + 5
    while api.read_namespaced_pod("p", "doomed").status.phase != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    api.delete_namespace("doomed")
    assert api.read_namespace("doomed").status.phase == "Terminating"
    assert api.read_namespaced_pod("p", "doomed").metadata.deletion_timestamp is not None
    with pytest.raises(client.ApiException) as info:
        api.create_namespaced_pod("doomed", make_pod("late"))
    assert info.value.status == 403 and error_body(info.value)["reason"] == "Forbidden"
    deadline = time.monotonic() + 5
    while True:
        try:
            api.read_namespace("doomed")
        except client.ApiException as exc:
            assert exc.status == 404
            break
        assert time.monotonic() < deadline, "the namespace outlived its pods"
        time.sleep(0.05)


def test_bad_namespace_name_is_422(api: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as info:
        api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="Team_A")))
    assert info.value.status == 422
    status = error_body(info.value)
    assert status["reason"] == "Invalid" and status["details"]["causes"][0]["field"] == \
        "metadata.name"


def test_system_namespaces_cannot_be_deleted(api: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as info:
        api.delete_namespace("default")
    assert info.value.status == 403


def test_discovery(api: client.CoreV1Api) -> None:
    api_client = api.api_client
    version = client.VersionApi(api_client).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")
    assert client.CoreApi(api_client).get_api_versions().versions == ["v1"]
    resources = api.get_api_resources()
    by_name = {r.name: r for r in resources.resources}
    assert by_name["pods"].namespaced and not by_name["nodes"].namespaced
    assert "watch" in by_name["pods"].verbs and "create" in by_name["pods/binding"].verbs
    groups = client.ApisApi(api_client).get_api_versions().groups
    assert [g.name for g in groups] == ["coordination.k8s.io", "discovery.k8s.io", "batch",
                                        "apps", "kubeflow.org"]
    for path in ("/healthz", "/readyz", "/livez"):
        resp = api_client.call_api("GET", api_client.configuration.host + path)
        resp.read()
        assert (resp.status, resp.data) == (200, b"ok")


def test_unknown_route_is_a_404_status(api: client.CoreV1Api) -> None:
    api_client = api.api_client
    resp = api_client.call_api("GET", api_client.configuration.host + "/api/v1/secrets")
    resp.read()
    assert resp.status == 404
    assert b'"kind":"Status"' in resp.data and b'"reason":"NotFound"' in resp.data
