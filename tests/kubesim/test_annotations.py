"""Pod behaviour chosen by `sim.fairway.io/*` annotations, per restart policy, against a
simulator with short back-offs (0.2 s doubling to 0.8 s)."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from .conftest import bind, collect, make_pod, wait_pod

GPU_UTIL = "kubesim.fairway.io/gpu-utilization"


def waiting_reasons(events: list[dict]) -> list[str]:
    out: list[str] = []
    for event in events:
        statuses = event["object"].status.container_statuses or ()
        for cs in statuses:
            if cs.state.waiting and (not out or out[-1] != cs.state.waiting.reason):
                out.append(cs.state.waiting.reason)
    return out


def test_image_pull_failure_backs_off_forever(fast_api: client.CoreV1Api, fast_ns: str) -> None:
    pod = fast_api.create_namespaced_pod(fast_ns, make_pod(
        "nopull", {"sim.fairway.io/image-pull": "fail"}, restart_policy="Always"))
    bind(fast_api, fast_ns, "nopull", "t4-1")
    events, _ = collect(fast_api.list_namespaced_pod, fast_ns,
                        resource_version=pod.metadata.resource_version,
                        until=lambda evs: waiting_reasons(evs).count("ImagePullBackOff") >= 3)
    reasons = [r for r in waiting_reasons(events) if r != "ContainerCreating"]
    assert reasons[:5] == ["ErrImagePull", "ImagePullBackOff", "ErrImagePull",
                           "ImagePullBackOff", "ErrImagePull"]
    assert {e["object"].status.phase for e in events} == {"Pending"}
    current = fast_api.read_namespaced_pod("nopull", fast_ns)
    cs = current.status.container_statuses[0]
    assert cs.state.waiting.reason in ("ErrImagePull", "ImagePullBackOff")
    assert cs.restart_count == 0 and not cs.started
    found = {e.reason for e in fast_api.list_namespaced_event(
        fast_ns, field_selector="involvedObject.name=nopull").items}
    assert {"Pulling", "Failed", "BackOff"} <= found


@pytest.mark.parametrize("policy", ["Always", "OnFailure"])
def test_crash_loop_restarts_with_growing_back_off(fast_api: client.CoreV1Api, fast_ns: str,
                                                   policy: str) -> None:
    pod = fast_api.create_namespaced_pod(fast_ns, make_pod(
        "crash", {"sim.fairway.io/crash": "loop"}, restart_policy=policy))
    bind(fast_api, fast_ns, "crash", "t4-2")

    def restarts(evs: list[dict]) -> int:
        cs = evs[-1]["object"].status.container_statuses
        return cs[0].restart_count if cs else 0

    events, _ = collect(fast_api.list_namespaced_pod, fast_ns,
                        resource_version=pod.metadata.resource_version,
                        until=lambda evs: restarts(evs) >= 3)
    messages = []
    for event in events:
        cs = (event["object"].status.container_statuses or [None])[0]
        if cs and cs.state.waiting and cs.state.waiting.reason == "CrashLoopBackOff":
            assert cs.last_state.terminated.exit_code == 1
            assert cs.last_state.terminated.reason == "Error"
            messages.append(cs.state.waiting.message.split(" restarting")[0])
        ready = {c.type: c.status for c in event["object"].status.conditions or ()}
        assert ready.get("Ready") != "True"  # it never gets that far
    assert messages[:3] == ["back-off 200ms", "back-off 400ms", "back-off 800ms"]
    assert [int(e["object"].status.container_statuses[0].restart_count) for e in events
            if e["object"].status.container_statuses][-1] == 3
    assert {e["object"].status.phase for e in events} <= {"Pending", "Running"}


def test_crash_with_restart_policy_never_fails(fast_api: client.CoreV1Api,
                                               fast_ns: str) -> None:
    fast_api.create_namespaced_pod(fast_ns, make_pod("crash", {"sim.fairway.io/crash": "loop"}))
    bind(fast_api, fast_ns, "crash", "t4-2")
    pod = wait_pod(fast_api, fast_ns, "crash", lambda p: p.status.phase == "Failed")
    cs = pod.status.container_statuses[0]
    assert (cs.state.terminated.exit_code, cs.state.terminated.reason) == (1, "Error")
    assert cs.restart_count == 0


def test_oom_killed(fast_api: client.CoreV1Api, fast_ns: str) -> None:
    fast_api.create_namespaced_pod(fast_ns, make_pod(
        "oom", {"sim.fairway.io/oom-after-seconds": "0.3"}))
    bind(fast_api, fast_ns, "oom", "a100-1")
    started = time.monotonic()
    ready = wait_pod(fast_api, fast_ns, "oom", lambda p: any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions or ()))
    assert ready.status.phase == "Running"
    pod = wait_pod(fast_api, fast_ns, "oom", lambda p: p.status.phase == "Failed")
    assert time.monotonic() - started >= 0.15
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (137, "OOMKilled")
    found = {e.reason for e in fast_api.list_namespaced_event(
        fast_ns, field_selector="involvedObject.name=oom").items}
    assert "OOMKilling" in found


def test_oom_killed_with_restart_policy_always_restarts(fast_api: client.CoreV1Api,
                                                        fast_ns: str) -> None:
    fast_api.create_namespaced_pod(fast_ns, make_pod(
        "oom", {"sim.fairway.io/oom-after-seconds": "0.2"}, restart_policy="Always"))
    bind(fast_api, fast_ns, "oom", "a100-1")
    pod = wait_pod(fast_api, fast_ns, "oom",
                   lambda p: bool(p.status.container_statuses)
                   and p.status.container_statuses[0].restart_count >= 2)
    last = pod.status.container_statuses[0].last_state.terminated
    assert (last.exit_code, last.reason) == (137, "OOMKilled")
    assert pod.status.phase == "Running"


def test_gpu_utilization_is_reported_while_running(fast_api: client.CoreV1Api,
                                                   fast_ns: str) -> None:
    fast_api.create_namespaced_pod(fast_ns, make_pod(
        "busy", {"sim.fairway.io/gpu-utilization": "55", "sim.fairway.io/run-seconds": "0.5"},
        gpus=2))
    fast_api.create_namespaced_pod(fast_ns, make_pod("default", gpus=1))
    fast_api.create_namespaced_pod(fast_ns, make_pod("cpu"))
    for name in ("busy", "default", "cpu"):
        bind(fast_api, fast_ns, name, "a100-2")
    busy = wait_pod(fast_api, fast_ns, "busy",
                    lambda p: (p.metadata.annotations or {}).get(GPU_UTIL) is not None)
    assert busy.metadata.annotations[GPU_UTIL] == "55"
    assert busy.status.phase == "Running"
    default = wait_pod(fast_api, fast_ns, "default", lambda p: p.status.phase == "Running")
    assert wait_pod(fast_api, fast_ns, "default", lambda p: GPU_UTIL in (
        p.metadata.annotations or {})).metadata.annotations[GPU_UTIL] == "80"
    assert default.spec.node_name == "a100-2"
    cpu = wait_pod(fast_api, fast_ns, "cpu", lambda p: p.status.phase == "Running")
    assert GPU_UTIL not in (cpu.metadata.annotations or {})
    done = wait_pod(fast_api, fast_ns, "busy", lambda p: p.status.phase == "Succeeded")
    assert GPU_UTIL not in (done.metadata.annotations or {})
    with pytest.raises(client.ApiException) as bad:
        fast_api.create_namespaced_pod(fast_ns, make_pod(
            "bad", {"sim.fairway.io/gpu-utilization": "150"}))
    assert bad.value.status == 422
