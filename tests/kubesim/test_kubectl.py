"""What kubectl needs beyond the official Python client: server-side tables and OpenAPI v3
field-validation support; and kubectl itself (`make test` installs it when it is missing)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from kubernetes import client, config

from fairway_kubesim import KubeSimThread
from fairway_kubesim.tables import human_duration

from .conftest import bind, make_pod

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def _get(api: client.CoreV1Api, path: str, accept: str = TABLE) -> dict:
    api_client = api.api_client
    resp = api_client.call_api("GET", api_client.configuration.host + path,
                               header_params={"Accept": accept})
    resp.read()
    assert resp.status == 200, resp.data
    return json.loads(resp.data)


@pytest.fixture(scope="module")
def kubectl_binary() -> str:
    path = shutil.which("kubectl")
    if path is None:
        # Never a skip: a suite that passes without kubectl would hide what these pin.
        pytest.fail("kubectl not found (Debian: apt-get install kubernetes-client, as root; "
                    "`make test` does)")
    return path


@pytest.fixture(scope="module")
def create_flags(kubectl_binary: str) -> list[str]:
    """kubectl before 1.25 (Debian's is 1.20) checks a manifest itself against OpenAPI v2,
    which kubesim does not serve: it creates without that check. Newer ones leave the check to
    the server (OpenAPI v3 says it does field validation) and keep it."""
    done = subprocess.run([kubectl_binary, "version", "--client", "-o", "json"],
                          capture_output=True, text=True, timeout=30, check=True)
    version = json.loads(done.stdout)["clientVersion"]
    minor = int(re.match(r"\d+", version["minor"]).group())
    return ["--validate=false"] if (int(version["major"]), minor) < (1, 25) else []


def kubectl_in(binary: str, kubeconfig: Path):
    """A function running kubectl against the cluster of `kubeconfig`, returning its output
    (and failing the test with kubectl's error when it fails)."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    def kubectl(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run([binary, *args], env=env, input=stdin, text=True,
                              capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return kubectl


def test_pod_table(api: client.CoreV1Api, ns: str) -> None:
    api.create_namespaced_pod(ns, make_pod("waiting"))
    api.create_namespaced_pod(ns, make_pod("slow", {"sim.fairway.io/pull-seconds": "60"}))
    bind(api, ns, "slow", "t4-1")
    table = _get(api, f"/api/v1/namespaces/{ns}/pods")
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name", "Ready", "Status", "Restarts", "Age"]
    rows = {r["cells"][0]: r for r in table["rows"]}
    assert rows["waiting"]["cells"][1:4] == ["0/1", "Pending", 0]
    slow = rows["slow"]["cells"]
    assert slow[6] == "t4-1"
    assert slow[2] in ("Pending", "ContainerCreating")
    assert rows["slow"]["object"]["kind"] == "PartialObjectMetadata"
    single = _get(api, f"/api/v1/namespaces/{ns}/pods/waiting")
    assert [r["cells"][0] for r in single["rows"]] == ["waiting"]
    plain = _get(api, f"/api/v1/namespaces/{ns}/pods/waiting", accept="application/json")
    assert plain["kind"] == "Pod"


def test_node_and_namespace_tables(api: client.CoreV1Api) -> None:
    nodes = _get(api, "/api/v1/nodes")
    assert [r["cells"][:2] for r in nodes["rows"]] == [
        ["a100-1", "Ready"], ["a100-2", "Ready"], ["t4-1", "Ready"], ["t4-2", "Ready"]]
    namespaces = _get(api, "/api/v1/namespaces")
    assert ["default", "Active"] in [r["cells"][:2] for r in namespaces["rows"]]


def test_openapi_v3_announces_field_validation(api: client.CoreV1Api) -> None:
    index = _get(api, "/openapi/v3", accept="application/json")
    url = index["paths"]["api/v1"]["serverRelativeURL"]
    doc = _get(api, url, accept="application/json")
    kinds = {op["patch"]["x-kubernetes-group-version-kind"]["kind"]
             for op in doc["paths"].values()}
    assert {"Pod", "Namespace", "Binding"} <= kinds


def test_human_duration() -> None:
    assert [human_duration(s) for s in (5, 119, 150, 600, 3 * 3600 + 60, 50 * 3600)] == [
        "5s", "119s", "2m30s", "10m", "3h1m", "2d2h"]


def test_kubectl_gets_and_creates(kubectl_binary: str, create_flags: list[str],
                                  kubeconfig: Path, ns: str) -> None:
    kubectl = kubectl_in(kubectl_binary, kubeconfig)
    out = kubectl("get", "nodes", "-l", "fairway.io/node-pool=a100")
    assert out.split("\n")[0].split()[:2] == ["NAME", "STATUS"]
    assert "a100-1" in out and "Ready" in out and "t4-1" not in out
    manifest = f"""
apiVersion: v1
kind: Pod
metadata: {{name: from-kubectl, namespace: {ns}}}
spec:
  nodeName: t4-2
  containers: [{{name: main, image: busybox:1.36}}]
"""
    assert "pod/from-kubectl created" in kubectl("create", *create_flags, "-f", "-",
                                                  stdin=manifest)
    assert "from-kubectl" in kubectl("get", "pods", "-n", ns, "-o", "wide")
    kubectl("delete", "pod", "from-kubectl", "-n", ns, "--grace-period=0", "--force")
    assert "from-kubectl" not in kubectl("get", "pods", "-n", ns)


def test_kubectl_describes_and_deletes_nodes_and_pods(kubectl_binary: str,
                                                      tmp_path: Path) -> None:
    profile = {"nodes": [{"name": "gpu-{1..2}", "gpus": 8, "labels": {"pool": "p"}}],
               "timings": {"pullSeconds": 0.1, "startSeconds": 0.1}}
    with KubeSimThread(profile) as sim:
        kubeconfig = sim.write_kubeconfig(tmp_path / "kc")
        kubectl = kubectl_in(kubectl_binary, kubeconfig)
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        api.create_namespaced_pod("default", make_pod("web", gpus=2, grace=1))
        bind(api, "default", "web", "gpu-1")
        node = kubectl("describe", "node", "gpu-1")
        assert re.search(r"^Name:\s+gpu-1$", node, re.M) and "nvidia.com/gpu:" in node
        assert "pool=p" in node and "web" in node  # the non-terminated pods section
        running = re.compile(r"^Status:\s+Running$", re.M)  # label widths vary by release
        deadline = time.monotonic() + 10
        while not ("Started" in (pod := kubectl("describe", "pod", "web"))
                   and running.search(pod)):
            assert time.monotonic() < deadline, pod
            time.sleep(0.1)
        assert re.search(r"^Node:\s+gpu-1/", pod, re.M)
        assert "Scheduled" in pod and "Pulling" in pod  # the events section
        assert 'pod "web" deleted' in kubectl("delete", "pod", "web", "--wait=true")
        assert "web" not in kubectl("get", "pods")
        api.create_namespaced_pod("default", make_pod("orphan", node_name="gpu-2"))
        assert 'node "gpu-2" deleted' in kubectl("delete", "node", "gpu-2")
        assert kubectl("get", "nodes", "-o", "name").split() == ["node/gpu-1"]
        assert "orphan" not in kubectl("get", "pods")


def test_kubectl_applies_gets_and_deletes_services_and_config_maps(
        kubectl_binary: str, create_flags: list[str], kubeconfig: Path, ns: str) -> None:
    kubectl = kubectl_in(kubectl_binary, kubeconfig)
    manifest = f"""
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{mode: fast, level: "3"}}
"""
    out = kubectl("apply", *create_flags, "-f", "-", stdin=manifest)
    assert "service/web created" in out and "configmap/settings created" in out
    services = kubectl("get", "services", "-n", ns, "-o", "wide")
    header, row = services.strip().split("\n")
    assert header.split()[:5] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]
    assert row.split()[:2] == ["web", "ClusterIP"] and "80/TCP" in row and "app=web" in row
    assert kubectl("get", "cm", "settings", "-n", ns).split("\n")[1].split()[:2] == [
        "settings", "2"]
    # apply again with a change: kubectl patches (strategic merge) what changed
    out = kubectl("apply", *create_flags, "-f", "-",
                  stdin=manifest.replace("mode: fast", "mode: slow").replace(
                      "port: 80,", "port: 81,"))
    assert "service/web configured" in out and "configmap/settings configured" in out
    cm = json.loads(kubectl("get", "configmap", "settings", "-n", ns, "-o", "json"))
    assert cm["data"] == {"mode": "slow", "level": "3"}
    svc = json.loads(kubectl("get", "svc", "web", "-n", ns, "-o", "json"))
    assert [p["port"] for p in svc["spec"]["ports"]] == [81]
    assert kubectl("get", "endpoints", "web", "-n", ns).split("\n")[1].split()[:2] == [
        "web", "<none>"]
    out = kubectl("delete", "-f", "-", stdin=manifest)
    assert 'service "web" deleted' in out and 'configmap "settings" deleted' in out
    assert "web" not in kubectl("get", "svc,cm,ep", "-n", ns)
