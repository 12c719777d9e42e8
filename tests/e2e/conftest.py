"""One whole platform for the end-to-end tests: embedded NATS and PostgreSQL, kubesim, the
five services as processes, exporting traces to a receiver inside the test; and what the tests
do through its public API (organisation, workloads, deleting what they held)."""

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from fairway_devstack.testing import running_stack
from fairway_scheduler.testing import KEPT_STATE_DIFFERS
from tests.e2e.otlp import OtlpReceiver


@pytest.fixture(scope="session")
def otlp():
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def stack(tmp_path_factory, otlp):
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "FAIRWAY_LOG_LEVEL": "INFO",
        # Scheduling rules (test_scheduling_rules.py): 2-second idle windows, checked twice a
        # second, so idle limits of a few seconds can be seen to work. Defaults: 30 s and 5 s.
        "FAIRWAY_LIFECYCLE_UTILIZATION_WINDOW_SECONDS": "2",
        "FAIRWAY_LIFECYCLE_RULES_CHECK_SECONDS": "0.5",
        # Inference autoscaling (test_serving.py): the metric read twice a second, averaged
        # over its last two reads, and a lower count held 4 s before scaling down. Defaults:
        # 5, 30 and 300 s.
        "FAIRWAY_LIFECYCLE_AUTOSCALE_SECONDS": "0.5",
        "FAIRWAY_LIFECYCLE_AUTOSCALE_METRIC_WINDOW_SECONDS": "0.6",
        "FAIRWAY_LIFECYCLE_AUTOSCALE_SCALE_DOWN_SECONDS": "4",
        # Every cycle checks the ledger it keeps against one built from the allocations.
        "FAIRWAY_SCHEDULER_VERIFY_KEPT_STATE": "true",
    }
    state = tmp_path_factory.mktemp("stack")
    try:
        with running_stack(state, env=env, kubesim_args=("--admin",)) as stack:
            yield stack
    finally:
        for log in sorted((state / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {log.name}\n" + "\n".join(tail))
    for log in (state / "logs").glob("scheduler*.log"):
        assert KEPT_STATE_DIFFERS not in log.read_text(errors="replace"), (
            f"{log.name}: {KEPT_STATE_DIFFERS}")


@contextlib.contextmanager
def stack_of_its_own(tmp_path_factory, name: str, profile: str,
                     env: dict[str, str] | None = None) -> Iterator:
    """A whole platform on a kubesim cluster of the given profile (YAML), for tests that must
    not touch other tests' workloads; the end of every log is printed when it stops."""
    state = tmp_path_factory.mktemp(name)
    path = state / "profile.yaml"
    path.write_text(profile)
    try:
        with running_stack(state / "stack", kubesim_profile=str(path), env=env or {}) as stack:
            yield stack
    finally:
        for log in sorted((state / "stack" / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {log.name}\n" + "\n".join(tail))


@contextlib.contextmanager
def admin_client(stack) -> Iterator[httpx.Client]:
    """The API of `stack` as its bootstrap administrator."""
    token = Path(stack.admin_token_file).read_text().strip()
    with httpx.Client(base_url=stack.api_url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


@pytest.fixture(scope="session")
def api(stack):
    token = Path(stack.admin_token_file).read_text().strip()
    with httpx.Client(base_url=stack.api_url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


@pytest.fixture(scope="session")
def default_project_id(api) -> str:
    projects = api.get("/api/v1/org-unit/projects").json()["projects"]
    return next(p["id"] for p in projects if p["name"] == "default")


class PhaseRecorder:
    """Reads a workload's phase events from the PHASES stream, in stream order."""

    def __init__(self, nats_url: str):
        self.nats_url = nats_url

    async def read(self, workload_id: str, until: set[str], timeout: float = 90.0,
                   skip: int = 0) -> list[dict]:
        """The workload's phase events from the start of the stream (after the first `skip`),
        up to and including the first one whose phase is in `until`."""
        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            sub = await js.subscribe(f"fairway.phase.*.{workload_id}.*",
                                     stream="FAIRWAY_PHASES", ordered_consumer=True)
            events: list[dict] = []
            deadline = asyncio.get_running_loop().time() + timeout
            while not events or events[-1]["phase"] not in until:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise AssertionError(f"no {until} for {workload_id}; saw {events}")
                msg = await sub.next_msg(timeout=remaining)
                if skip:
                    skip -= 1
                    continue
                event = json.loads(msg.data)
                event["_subject"] = msg.subject
                event["_headers"] = dict(msg.headers or {})
                events.append(event)
            return events
        finally:
            await nc.close()


@pytest.fixture(scope="session")
def phases(stack) -> PhaseRecorder:
    return PhaseRecorder(stack.nats_url)


# Through the public API ---------------------------------------------------------------------

def create(api, path: str, body: dict) -> dict:
    response = api.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


SIMULATED_POOLS = ("a100", "t4")


def ensure_simulated_pools(api, timeout: float = 30.0) -> None:
    """kubesim's pools registered in the API as `fairway up` does (same labels as the nodes
    carry, so no node changes pool): quotas and workloads can then name pools a100 and t4.
    Returns once the platform has put every node in its pool (the scheduler reads nodes'
    pools from the same inventory): a workload naming a pool it does not know yet fails."""
    for pool in SIMULATED_POOLS:
        response = api.post("/api/v1/node-pools", json={
            "name": pool, "labelKey": "fairway.io/node-pool", "labelValue": pool})
        assert response.status_code in (201, 409), response.text
    deadline = time.monotonic() + timeout
    while not {n["nodePool"] for n in api.get("/api/v1/nodes").json()["nodes"]} <= set(
            SIMULATED_POOLS):
        assert time.monotonic() < deadline, api.get("/api/v1/nodes").json()
        time.sleep(0.3)


def submit(api, kind: str, project_id: str, name: str, annotations: dict[str, str] | None = None,
           **spec) -> str:
    """Submit a workload of `kind` (the API's plural) asking for one GPU unless `spec` says
    otherwise; its id."""
    body = {"name": name, "projectId": project_id, "spec": {
        "image": "busybox", "compute": {"gpuDevicesRequest": 1},
        "annotations": [{"name": k, "value": v} for k, v in (annotations or {}).items()],
        **spec}}
    response = api.post(f"/api/v1/workloads/{kind}", json=body)
    assert response.status_code == 202, response.text
    return response.json()["workloadId"]


def wait_pods_gone(api, workload_id: str, timeout: float = 60.0) -> None:
    """Wait until the API lists no pod of the workload (it follows lifecycle's pod groups)."""
    deadline = time.monotonic() + timeout
    while pods := api.get(f"/api/v1/workloads/{workload_id}/pods").json()["pods"]:
        assert time.monotonic() < deadline, f"pods left after {timeout:.0f} s: {pods}"
        time.sleep(0.3)


def ask_delete(api, kind: str, *workload_ids: str) -> None:
    for wid in workload_ids:
        response = api.delete(f"/api/v1/workloads/{kind}/{wid}")
        assert response.status_code in (202, 404, 409), response.text  # 409: being deleted


def wait_deleted(api, *workload_ids: str, timeout: float = 60.0) -> None:
    """Wait until the workloads and their pods are gone: the stack's GPUs are shared by every
    test of the session, and the next test's pods need them free on the nodes too."""
    deadline = time.monotonic() + timeout
    left = list(workload_ids)
    while left:
        response = api.get(f"/api/v1/workloads/{left[0]}")
        if response.status_code == 404 or response.json()["phase"] == "Deleted":
            left.pop(0)
            continue
        assert time.monotonic() < deadline, (
            f"not deleted after {timeout:.0f} s: {left}; {left[0]} is {response.json()['phase']}")
        time.sleep(0.3)


def release(api, workloads: list[tuple[str, str]]) -> None:
    """Delete the workloads, (kind, id): all asked at once, then waited for, so it lasts one
    grace period (kubesim's running pods use their 30 s), not one per workload."""
    for kind, wid in workloads:
        ask_delete(api, kind, wid)
    wait_deleted(api, *(wid for _, wid in workloads))


@pytest.fixture
def held(api):
    """Workloads a test started, (kind, id), deleted when it ends however it ends."""
    workloads: list[tuple[str, str]] = []
    yield workloads
    release(api, workloads)


@pytest.fixture(scope="module")
def held_by_module(api):
    """Workloads the tests of a module started, (kind, id), deleted when the module ends."""
    workloads: list[tuple[str, str]] = []
    yield workloads
    release(api, workloads)
