"""kubesim fixtures: one simulator in a background thread, the official client against it."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from fairway_kubesim import DEFAULT_PROFILE, KubeSimThread, Timings, load_profile

FAST = {  # annotations that keep a pod's lifecycle short
    "sim.fairway.io/pull-seconds": "0.1",
    "sim.fairway.io/start-seconds": "0.1",
}
_names = itertools.count()


@pytest.fixture(scope="session")
def sim() -> Iterator[KubeSimThread]:
    with KubeSimThread(DEFAULT_PROFILE, bookmark_interval=0.3, seed=7) as running:
        yield running


@pytest.fixture(scope="session")
def kubeconfig(sim: KubeSimThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sim.write_kubeconfig(tmp_path_factory.mktemp("kubesim") / "kubeconfig")


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


@pytest.fixture()
def ns(api: client.CoreV1Api) -> str:
    """A fresh namespace per test, so tests never see each other's pods."""
    name = f"t{next(_names)}-{id(api) % 9973}"
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def make_pod(name: str, annotations: dict[str, str] | None = None,
             labels: dict[str, str] | None = None, gpus: int = 0,
             restart_policy: str = "Never", grace: int | None = None,
             node_name: str | None = None) -> client.V1Pod:
    resources = client.V1ResourceRequirements(limits={"nvidia.com/gpu": str(gpus)}) \
        if gpus else None
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels,
                                     annotations={**FAST, **(annotations or {})}),
        spec=client.V1PodSpec(
            restart_policy=restart_policy,
            termination_grace_period_seconds=grace,
            node_name=node_name,
            containers=[client.V1Container(name="main", image="busybox:1.36",
                                           resources=resources)],
        ),
    )


def bind(api: client.CoreV1Api, ns: str, name: str, node: str) -> Any:
    """Bind as a scheduler does. The API server answers a `Status`, not a `Binding`, so the
    generated client cannot deserialize the answer: read it raw."""
    body = client.V1Binding(metadata=client.V1ObjectMeta(name=name),
                            target=client.V1ObjectReference(kind="Node", name=node))
    try:
        resp = api.create_namespaced_pod_binding(name, ns, body, _preload_content=False)
    except client.ApiException as exc:
        return exc.status, json.loads(exc.body)
    return resp.status, json.loads(resp.data)


def collect(func: Callable[..., Any], *args: Any, until: Callable[[list[dict]], bool],
            timeout: int = 10, **kwargs: Any) -> tuple[list[dict], watch.Watch]:
    """Watch with the official client until `until(events)` holds or the server-side timeout
    ends the stream."""
    w = watch.Watch()
    events: list[dict] = []
    for event in w.stream(func, *args, timeout_seconds=timeout, **kwargs):
        events.append(event)
        if until(events):
            w.stop()
            break
    return events, w


def error_body(exc: client.ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


# A second simulator for faults and fast back-offs, with the admin endpoint enabled ----------

FAST_TIMINGS = {"pull_seconds": 0.1, "start_seconds": 0.1, "jitter": 0.0,
                "backoff_seconds": 0.2, "backoff_max_seconds": 0.8,
                "node_eviction_seconds": 1.5}


@pytest.fixture(scope="session")
def fast_sim() -> Iterator[KubeSimThread]:
    profile = dataclasses.replace(load_profile(DEFAULT_PROFILE), timings=Timings(**FAST_TIMINGS))
    with KubeSimThread(profile, bookmark_interval=0.3, seed=11, admin=True) as running:
        yield running


@pytest.fixture(scope="session")
def fast_kubeconfig(fast_sim: KubeSimThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fast_sim.write_kubeconfig(tmp_path_factory.mktemp("kubesim-fast") / "kubeconfig")


@pytest.fixture(scope="session")
def fast_api(fast_kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(fast_kubeconfig)))


@pytest.fixture()
def fast_ns(fast_api: client.CoreV1Api) -> str:
    name = f"f{next(_names)}"
    fast_api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def admin(sim: KubeSimThread, method: str, path: str, body: Any = None) -> Any:
    """Call the simulator's admin endpoint."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(sim.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def wait_pod(api: client.CoreV1Api, ns: str, name: str, cond: Callable[[client.V1Pod], bool],
             timeout: float = 8.0) -> client.V1Pod:
    deadline = time.monotonic() + timeout
    while True:
        pod = api.read_namespaced_pod(name, ns)
        if cond(pod):
            return pod
        assert time.monotonic() < deadline, f"timed out; pod status: {pod.status}"
        time.sleep(0.02)
