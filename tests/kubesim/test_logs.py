"""`pods/{name}/log` through the official client: the lines a simulated container prints, the
query parameters, the kubelet's refusals, and `follow` streaming until the container ends."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from fairway_kubesim.logs import Run

from .conftest import FAST, bind, error_body, make_pod, wait_pod


def running(api: client.CoreV1Api, ns: str, name: str, annotations: dict[str, str] | None = None,
            node: str = "t4-1", **kwargs) -> client.V1Pod:
    api.create_namespaced_pod(ns, make_pod(name, annotations, **kwargs))
    bind(api, ns, name, node)
    return wait_pod(api, ns, name, lambda p: p.status.phase == "Running")


def raw_get(api: client.CoreV1Api, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(api.api_client.configuration.host + path, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def refused(call, *args, **kwargs) -> tuple[int, str]:
    with pytest.raises(client.ApiException) as exc:
        call(*args, **kwargs)
    return exc.value.status, error_body(exc.value)["message"]


def test_a_run_prints_a_line_at_start_one_a_second_and_one_at_exit() -> None:
    run = Run("main", "img:1", started=100.0, finished=103.0, exit_code=2, reason="Error")
    assert run.count(99.0) == 0 and run.count(101.5) == 2
    assert [run.line(i)[1] for i in range(run.count(200.0))] == [
        "[kubesim] container main started (image img:1)", "step 1: main running for 1s",
        "step 2: main running for 2s", "step 3: main running for 3s",
        "[kubesim] container main exited with code 2 (Error)"]
    assert run.first_since(101.5) == 2 and run.first_since(103.0) == 3
    assert run.first_since(104.0) == 5  # after the exit: nothing
    scripted = Run("main", "img:1", started=0.0, script=("loading", "epoch 1"))
    assert [scripted.line(i)[1] for i in range(scripted.count(60.0))] == [
        "[kubesim] container main started (image img:1)", "loading", "epoch 1"]


def test_log_of_a_running_pod_with_tail_since_and_timestamps(api: client.CoreV1Api,
                                                             ns: str) -> None:
    running(api, ns, "trainer")
    time.sleep(2.2)
    lines = api.read_namespaced_pod_log("trainer", ns).splitlines()
    assert lines[0] == "[kubesim] container main started (image busybox:1.36)"
    assert lines[1] == "step 1: main running for 1s" and len(lines) >= 3
    tail = api.read_namespaced_pod_log("trainer", ns, tail_lines=1).splitlines()
    assert len(tail) == 1 and tail[0].startswith("step ")
    assert api.read_namespaced_pod_log("trainer", ns, tail_lines=0) == ""
    stamped = api.read_namespaced_pod_log("trainer", ns, timestamps=True).splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z \[kubesim\] container main "
                        r"started \(image busybox:1\.36\)", stamped[0])
    recent = api.read_namespaced_pod_log("trainer", ns, since_seconds=1).splitlines()
    assert 1 <= len(recent) < len(lines) + 1 and recent[-1].startswith("step ")
    started = datetime.strptime(stamped[0][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    since_time = (started + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # (the Python client has no sinceTime: kubectl's --since-time sends it)
    assert raw_get(api, f"/api/v1/namespaces/{ns}/pods/trainer/log?sinceTime={since_time}"
                   )[1].splitlines()[0] == "step 1: main running for 1s"
    assert api.read_namespaced_pod_log("trainer", ns, limit_bytes=10) == "[kubesim] "


def test_log_lines_from_the_annotation_and_the_exit(api: client.CoreV1Api, ns: str) -> None:
    running(api, ns, "script", {"sim.fairway.io/log": "loading data\nepoch 1 loss=0.5",
                                "sim.fairway.io/run-seconds": "2.5",
                                "sim.fairway.io/exit-code": "3"})
    wait_pod(api, ns, "script", lambda p: p.status.phase == "Failed")
    assert api.read_namespaced_pod_log("script", ns).splitlines() == [
        "[kubesim] container main started (image busybox:1.36)", "loading data",
        "epoch 1 loss=0.5", "[kubesim] container main exited with code 3 (Error)"]


def test_follow_streams_lines_as_they_come_and_ends_with_the_container(
        api: client.CoreV1Api, ns: str) -> None:
    running(api, ns, "short", {"sim.fairway.io/run-seconds": "2"})
    began = time.monotonic()
    resp = api.read_namespaced_pod_log("short", ns, follow=True, _preload_content=False)
    arrivals = []
    for chunk in resp.stream(1024):
        arrivals.append((time.monotonic() - began, chunk.decode()))
    text = "".join(chunk for _, chunk in arrivals)
    assert text.splitlines()[-1] == "[kubesim] container main exited with code 0 (Completed)"
    assert "step 1: main running for 1s" in text
    assert arrivals[0][0] < 0.5 and arrivals[-1][0] > 1.0  # streamed, not sent at the end
    assert len(arrivals) >= 2
    # a finished container's log is there at once, follow or not
    again = api.read_namespaced_pod_log("short", ns, follow=True)
    assert again == text


def test_log_refusals_as_kubernetes_words_them(api: client.CoreV1Api, ns: str) -> None:
    assert refused(api.read_namespaced_pod_log, "missing", ns) == (
        404, 'pods "missing" not found')
    api.create_namespaced_pod(ns, make_pod("unbound"))
    assert refused(api.read_namespaced_pod_log, "unbound", ns) == (
        400, "pod unbound does not have a host assigned")
    api.create_namespaced_pod(ns, make_pod("pulling", {"sim.fairway.io/pull-seconds": "60"}))
    bind(api, ns, "pulling", "t4-1")
    wait_pod(api, ns, "pulling", lambda p: p.status.container_statuses is not None)
    assert refused(api.read_namespaced_pod_log, "pulling", ns) == (
        400, 'container "main" in pod "pulling" is waiting to start: ContainerCreating')
    api.create_namespaced_pod(ns, make_pod("no-image", {"sim.fairway.io/image-pull": "fail"}))
    bind(api, ns, "no-image", "t4-1")
    wait_pod(api, ns, "no-image", lambda p: p.status.container_statuses[0].state.waiting
             .reason in ("ErrImagePull", "ImagePullBackOff"))
    status, message = refused(api.read_namespaced_pod_log, "no-image", ns)
    assert status == 400 and message.startswith(
        'container "main" in pod "no-image" is waiting to start: ')
    pod = make_pod("pair")
    pod.spec.containers.append(client.V1Container(name="sidecar", image="proxy:1"))
    api.create_namespaced_pod(ns, pod)
    bind(api, ns, "pair", "t4-1")
    wait_pod(api, ns, "pair", lambda p: p.status.phase == "Running")
    assert refused(api.read_namespaced_pod_log, "pair", ns) == (
        400, "a container name must be specified for pod pair, choose one of: [main sidecar]")
    assert refused(api.read_namespaced_pod_log, "pair", ns, container="db") == (
        400, "container db is not valid for pod pair")
    assert "[kubesim] container sidecar started (image proxy:1)" in \
        api.read_namespaced_pod_log("pair", ns, container="sidecar")
    assert refused(api.read_namespaced_pod_log, "pair", ns, container="main", previous=True) == (
        400, 'previous terminated container "main" in pod "pair" not found')
    status, message = refused(api.read_namespaced_pod_log, "pair", ns, container="main",
                              tail_lines=-1)
    assert status == 422 and "tailLines: Invalid value: -1" in message
    status, body = raw_get(api, f"/api/v1/namespaces/{ns}/pods/pair/log?container=main&"
                           "sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z")
    assert status == 422 and "at most one of `sinceTime` or `sinceSeconds`" in body


def test_previous_reads_the_run_before_a_restart(fast_api: client.CoreV1Api,
                                                 fast_ns: str) -> None:
    fast_api.create_namespaced_pod(fast_ns, make_pod(
        "restarts", {**FAST, "sim.fairway.io/run-seconds": "0.2", "sim.fairway.io/exit-code": "1"},
        restart_policy="Always"))
    bind(fast_api, fast_ns, "restarts", "t4-1")
    wait_pod(fast_api, fast_ns, "restarts",
             lambda p: bool(p.status.container_statuses)
             and p.status.container_statuses[0].restart_count >= 1)
    previous = fast_api.read_namespaced_pod_log("restarts", fast_ns, previous=True)
    assert previous.splitlines()[-1] == "[kubesim] container main exited with code 1 (Error)"
