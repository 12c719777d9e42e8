"""Services, Endpoints, EndpointSlices and ConfigMaps through the official client (CoreV1Api,
DiscoveryV1Api): the verbs, the errors Kubernetes answers, ClusterIPs, and Endpoints that
follow the pods a Service selects."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from .conftest import FAST, bind, collect, error_body, make_pod, wait_pod


@pytest.fixture(scope="module")
def discovery(api: client.CoreV1Api) -> client.DiscoveryV1Api:
    return client.DiscoveryV1Api(api.api_client)


def service(name: str, selector: dict[str, str] | None = None, ports: Any = None,
            **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name}, "spec": {**spec}}
    if selector is not None:
        body["spec"]["selector"] = selector
    body["spec"]["ports"] = [{"port": 80, "targetPort": 8080, "name": "http"}] \
        if ports is None else ports
    return body


def serving_pod(name: str, labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels, "annotations": dict(FAST)},
            "spec": {"restartPolicy": "Always", "containers": [
                {"name": "main", "image": "server:1",
                 "ports": [{"name": "web", "containerPort": 8080}]}], **spec}}


def wait_for(read: Callable[[], Any], cond: Callable[[Any], bool], timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if cond(value):
            return value
        assert time.monotonic() < deadline, f"timed out; last: {value}"
        time.sleep(0.05)


def causes(exc: client.ApiException) -> dict[str, str]:
    body = error_body(exc)
    assert (exc.status, body["reason"]) == (422, "Invalid"), body
    return {c["field"]: c["message"] for c in body["details"]["causes"]}


# Services ----------------------------------------------------------------------------------

def test_a_service_gets_a_cluster_ip_and_defaults(api: client.CoreV1Api, ns: str) -> None:
    created = api.create_namespaced_service(ns, service("web", {"app": "web"}))
    ip = created.spec.cluster_ip
    assert ip.startswith("10.") and created.spec.cluster_ips == [ip]
    assert created.spec.type == "ClusterIP" and created.spec.session_affinity == "None"
    assert created.spec.ports[0].protocol == "TCP" and created.spec.ports[0].target_port == 8080
    other = api.create_namespaced_service(ns, service("other", {"app": "other"}))
    assert other.spec.cluster_ip != ip
    # a patch keeps the ClusterIP; a replace without one keeps it too
    patched = api.patch_namespaced_service("web", ns, {"metadata": {"labels": {"tier": "a"}}})
    assert patched.spec.cluster_ip == ip and patched.metadata.labels == {"tier": "a"}
    body = api.api_client.sanitize_for_serialization(api.read_namespaced_service("web", ns))
    del body["spec"]["clusterIP"], body["spec"]["clusterIPs"]
    replaced = api.replace_namespaced_service("web", ns, body)
    assert replaced.spec.cluster_ip == ip
    with pytest.raises(client.ApiException) as exc:
        api.patch_namespaced_service("web", ns, {"spec": {"clusterIP": "10.96.0.3"}})
    assert "may not change once set" in causes(exc.value)["spec.clusterIPs[0]"]


def test_a_cluster_ip_asked_for_must_be_free_and_in_range(api: client.CoreV1Api,
                                                          ns: str) -> None:
    first = api.create_namespaced_service(ns, service("first", {"app": "a"},
                                                      cluster_ip="10.96.7.7"))
    assert first.spec.cluster_ip == "10.96.7.7"
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_service(ns, service("second", {"app": "a"},
                                                  cluster_ip="10.96.7.7"))
    assert "already allocated" in causes(exc.value)["spec.clusterIPs"]
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_service(ns, service("third", {"app": "a"},
                                                  cluster_ip="192.168.0.1"))
    assert "not in the valid range" in causes(exc.value)["spec.clusterIPs[0]"]


def test_service_errors_name_the_field(api: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_service(ns, service("1web", {"app": "w"}))
    assert "DNS-1035 label" in causes(exc.value)["metadata.name"]
    bad_ports = [{"port": 0, "name": "a"}, {"port": 81, "name": "a", "protocol": "HTTP"},
                 {"port": 82, "targetPort": "Not_A_Name"}]
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_service(ns, service("web", {"app": "w"}, bad_ports))
    found = causes(exc.value)
    assert "between 1 and 65535" in found["spec.ports[0].port"]
    assert found["spec.ports[1].name"] == 'Duplicate value: "a"'
    assert '"HTTP"' in found["spec.ports[1].protocol"]
    assert found["spec.ports[2].name"] == "Required value"
    assert "at least one letter" in found["spec.ports[2].targetPort"]
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_service(ns, service("web", {"app": "not a value!"}))
    assert "valid label" in causes(exc.value)["spec.selector"]
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_service(ns, service("web", {"app": "w"}, []))
    assert causes(exc.value)["spec.ports"] == "Required value"
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_service(ns, service("web", {"app": "w"}, type="LoadBalancer"))
    assert "ClusterIP" in causes(exc.value)["spec.type"]


def test_service_verbs_and_their_errors(api: client.CoreV1Api, ns: str) -> None:
    api.create_namespaced_service(ns, service("web", {"app": "w"}))
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_service(ns, service("web", {"app": "w"}))
    assert (exc.value.status, error_body(exc.value)["reason"]) == (409, "AlreadyExists")
    with pytest.raises(client.ApiException) as exc:
        api.read_namespaced_service("nope", ns)
    assert exc.value.status == 404
    assert error_body(exc.value)["message"] == 'services "nope" not found'
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_service("no-such-namespace", service("web", {"app": "w"}))
    assert exc.value.status == 404
    api.create_namespaced_service(ns, {**service("labelled", {"app": "w"}),
                                       "metadata": {"name": "labelled",
                                                    "labels": {"team": "a"}}})
    listed = api.list_namespaced_service(ns, label_selector="team=a")
    assert [s.metadata.name for s in listed.items] == ["labelled"]
    by_field = api.list_namespaced_service(ns, field_selector="metadata.name=web")
    assert [s.metadata.name for s in by_field.items] == ["web"]
    # strategic merge patch merges ports by port; a JSON merge patch replaces the list
    api.patch_namespaced_service("web", ns, {"spec": {"ports": [
        {"port": 443, "name": "https", "targetPort": 8443}]}})
    ports = api.read_namespaced_service("web", ns).spec.ports
    assert sorted(p.port for p in ports) == [80, 443]
    resp = api.api_client.call_api(
        "PATCH", f"{api.api_client.configuration.host}/api/v1/namespaces/{ns}/services/web",
        header_params={"Content-Type": "application/merge-patch+json"},
        body={"spec": {"ports": [{"port": 90, "name": "only"}]}})
    resp.read()
    assert resp.status == 200, resp.data
    assert [p.port for p in api.read_namespaced_service("web", ns).spec.ports] == [90]
    deleted = api.delete_namespaced_service("web", ns)  # a Service answers with itself
    assert deleted.metadata.name == "web"
    with pytest.raises(client.ApiException) as exc:
        api.delete_namespaced_service("web", ns)
    assert exc.value.status == 404


def test_watch_services(api: client.CoreV1Api, ns: str) -> None:
    start = api.list_namespaced_service(ns).metadata.resource_version
    api.create_namespaced_service(ns, service("web", {"app": "w"}))
    api.delete_namespaced_service("web", ns)
    events, _ = collect(api.list_namespaced_service, ns, resource_version=start,
                        until=lambda evs: len(evs) >= 2, timeout=5)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "web"), ("DELETED", "web")]


# Endpoints and EndpointSlices --------------------------------------------------------------

def test_endpoints_follow_the_pods_a_service_selects(api: client.CoreV1Api,
                                                     discovery: client.DiscoveryV1Api,
                                                     ns: str) -> None:
    api.create_namespaced_service(ns, service("web", {"app": "web"}, [
        {"port": 80, "targetPort": "web", "name": "http"}]))
    api.create_namespaced_pod(ns, serving_pod("web-0", {"app": "web"}))
    api.create_namespaced_pod(ns, serving_pod("web-1", {"app": "web"}, nodeName="t4-1"))
    api.create_namespaced_pod(ns, serving_pod("db-0", {"app": "db"}, nodeName="t4-1"))
    # web-0 is not bound: no pod IP, no endpoint; web-1 becomes ready
    eps = wait_for(lambda: api.read_namespaced_endpoints("web", ns),
                   lambda e: e.subsets and e.subsets[0].addresses)
    pod = api.read_namespaced_pod("web-1", ns)
    address = eps.subsets[0].addresses[0]
    assert (address.ip, address.node_name, address.target_ref.name) == (
        pod.status.pod_ip, "t4-1", "web-1")
    assert [(p.name, p.port, p.protocol) for p in eps.subsets[0].ports] == [
        ("http", 8080, "TCP")]  # the named targetPort, as the pod's container declares it
    slices = discovery.list_namespaced_endpoint_slice(
        ns, label_selector="kubernetes.io/service-name=web").items
    assert len(slices) == 1
    [endpoint] = slices[0].endpoints
    assert endpoint.addresses == [pod.status.pod_ip]
    assert (endpoint.conditions.ready, endpoint.conditions.serving,
            endpoint.conditions.terminating) == (True, True, False)
    assert slices[0].ports[0].port == 8080 and slices[0].address_type == "IPv4"
    # a second pod, slow to become ready, shows as not ready first
    api.create_namespaced_pod(ns, serving_pod("web-2", {"app": "web"}, nodeName="t4-2") | {
        "metadata": {"name": "web-2", "labels": {"app": "web"},
                     "annotations": {**FAST, "sim.fairway.io/start-seconds": "1.5"}}})
    eps = wait_for(lambda: api.read_namespaced_endpoints("web", ns),
                   lambda e: e.subsets[0].not_ready_addresses)
    assert [a.target_ref.name for a in eps.subsets[0].not_ready_addresses] == ["web-2"]
    eps = wait_for(lambda: api.read_namespaced_endpoints("web", ns),
                   lambda e: len(e.subsets[0].addresses or ()) == 2)
    # a pod losing the label leaves; deleting the Service takes its endpoints with it
    api.patch_namespaced_pod("web-1", ns, {"metadata": {"labels": {"app": "gone"}}})
    eps = wait_for(lambda: api.read_namespaced_endpoints("web", ns),
                   lambda e: len(e.subsets[0].addresses or ()) == 1)
    assert eps.subsets[0].addresses[0].target_ref.name == "web-2"
    api.delete_namespaced_service("web", ns)
    assert api.list_namespaced_endpoints(ns).items == []
    assert discovery.list_namespaced_endpoint_slice(ns).items == []


def test_headless_service_endpoints_carry_pod_hostnames(api: client.CoreV1Api,
                                                        discovery: client.DiscoveryV1Api,
                                                        ns: str) -> None:
    created = api.create_namespaced_service(ns, service(
        "job", {"job": "j"}, [], cluster_ip="None", publish_not_ready_addresses=True))
    assert created.spec.cluster_ip == "None"
    for i in range(2):
        api.create_namespaced_pod(ns, serving_pod(f"job-{i}", {"job": "j"}, nodeName="a100-1",
                                                  hostname=f"worker-{i}", subdomain="job"))
    api.create_namespaced_pod(ns, serving_pod("other", {"job": "j"}, nodeName="a100-1",
                                              hostname="x", subdomain="elsewhere"))
    eps = wait_for(lambda: api.read_namespaced_endpoints("job", ns),
                   lambda e: e.subsets and len(e.subsets[0].addresses or ()) == 3)
    assert eps.metadata.labels == {"service.kubernetes.io/headless": ""}
    hostnames = {a.target_ref.name: a.hostname for a in eps.subsets[0].addresses}
    assert hostnames == {"job-0": "worker-0", "job-1": "worker-1", "other": None}
    [es] = discovery.list_namespaced_endpoint_slice(ns).items
    assert sorted(e.hostname or "" for e in es.endpoints) == ["", "worker-0", "worker-1"]
    # publishNotReadyAddresses: listed (and "ready") before the pods are
    assert all(e.conditions.ready for e in es.endpoints)


def test_endpoint_slices_can_be_written_by_hand(discovery: client.DiscoveryV1Api,
                                                ns: str) -> None:
    body = {"metadata": {"name": "manual", "labels": {"kubernetes.io/service-name": "ext"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.1"]}],
            "ports": [{"port": 443, "name": "https"}]}
    created = discovery.create_namespaced_endpoint_slice(ns, body)
    assert created.endpoints[0].addresses == ["192.0.2.1"]
    with pytest.raises(client.ApiException) as exc:
        discovery.create_namespaced_endpoint_slice(ns, body)
    assert exc.value.status == 409
    with pytest.raises(client.ApiException) as exc:
        discovery.create_namespaced_endpoint_slice(ns, {**body, "metadata": {"name": "bad"},
                                                        "addressType": "IPv5"})
    assert exc.value.status == 422
    discovery.patch_namespaced_endpoint_slice("manual", ns, {"ports": [{"port": 8443,
                                                                         "name": "https"}]})
    assert discovery.read_namespaced_endpoint_slice("manual", ns).ports[0].port == 8443
    discovery.delete_namespaced_endpoint_slice("manual", ns)
    assert discovery.list_namespaced_endpoint_slice(ns).items == []


# ConfigMaps --------------------------------------------------------------------------------

def test_config_map_verbs_and_validation(api: client.CoreV1Api, ns: str) -> None:
    created = api.create_namespaced_config_map(ns, {"metadata": {"name": "hosts"},
                                                    "data": {"hostfile": "a slots=1\n"}})
    assert created.data == {"hostfile": "a slots=1\n"}
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_config_map(ns, {"metadata": {"name": "hosts"}})
    assert exc.value.status == 409
    api.patch_namespaced_config_map("hosts", ns, {"data": {"extra": "1"}})
    assert set(api.read_namespaced_config_map("hosts", ns).data) == {"hostfile", "extra"}
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_config_map(ns, {"metadata": {"name": "bad"},
                                              "data": {"not/a key": "x"}})
    assert "valid config key" in causes(exc.value)["data[not/a key]"]
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_config_map(ns, {"metadata": {"name": "big"},
                                              "data": {"a": "x" * (1024 * 1024 + 1)}})
    assert "1048576 bytes" in causes(exc.value)[""]
    api.create_namespaced_config_map(ns, {"metadata": {"name": "frozen"}, "immutable": True,
                                          "data": {"a": "1"}})
    with pytest.raises(client.ApiException) as exc:
        api.patch_namespaced_config_map("frozen", ns, {"data": {"a": "2"}})
    assert "immutable" in causes(exc.value)["data"]
    api.delete_collection_namespaced_config_map(ns)
    assert api.list_namespaced_config_map(ns).items == []


def test_a_pod_waits_for_its_config_map(api: client.CoreV1Api, ns: str) -> None:
    pod = make_pod("mpi-launcher")
    pod.spec.volumes = [client.V1Volume(name="hostfile", config_map=client.V1ConfigMapVolumeSource(
        name="mpi-hosts"))]
    api.create_namespaced_pod(ns, pod)
    bind(api, ns, "mpi-launcher", "t4-1")
    time.sleep(0.6)  # longer than pulling and starting take
    waiting = api.read_namespaced_pod("mpi-launcher", ns)
    assert waiting.status.phase == "Pending"
    assert waiting.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    events = wait_for(lambda: api.list_namespaced_event(
        ns, field_selector="reason=FailedMount").items, bool)
    assert events[0].message == ('MountVolume.SetUp failed for volume "hostfile" : configmap '
                                 '"mpi-hosts" not found')
    api.create_namespaced_config_map(ns, {"metadata": {"name": "mpi-hosts"},
                                          "data": {"hostfile": "w-0 slots=1"}})
    wait_pod(api, ns, "mpi-launcher", lambda p: p.status.phase == "Running")


def test_pod_fields_services_rely_on_are_validated(api: client.CoreV1Api, ns: str) -> None:
    body = {"metadata": {"name": "p"}, "spec": {
        "hostname": "Not_A_Label", "subdomain": "ok",
        "containers": [{"name": "main", "image": "x:1"}],
        "volumes": [{"name": "v", "configMap": {}}, {"name": "v", "emptyDir": {}}]}}
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_pod(ns, body)
    found = causes(exc.value)
    assert "RFC 1123 label" in found["spec.hostname"]
    assert found["spec.volumes[0].configMap.name"] == "Required value"
    assert found["spec.volumes[1].name"] == 'Duplicate value: "v"'


def test_namespace_deletion_removes_services_and_config_maps(api: client.CoreV1Api,
                                                             ns: str) -> None:
    api.create_namespaced_service(ns, service("web", {"app": "w"}))
    api.create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"a": "1"}})
    api.delete_namespace(ns)
    wait_for(lambda: [n.metadata.name for n in api.list_namespace().items],
             lambda names: ns not in names)
    for listing in (api.list_service_for_all_namespaces, api.list_config_map_for_all_namespaces,
                    api.list_endpoints_for_all_namespaces):
        assert [o for o in listing().items if o.metadata.namespace == ns] == []


def test_discovery_lists_the_new_kinds(api: client.CoreV1Api) -> None:
    names = {r.name: r for r in api.get_api_resources().resources}
    assert {"services", "endpoints", "configmaps"} <= set(names)
    assert names["services"].short_names == ["svc"]
    group = client.DiscoveryApi(api.api_client).get_api_group()
    assert group.preferred_version.group_version == "discovery.k8s.io/v1"
    slices = client.DiscoveryV1Api(api.api_client).get_api_resources().resources
    assert [r.name for r in slices] == ["endpointslices"]
