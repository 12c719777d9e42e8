"""Scheduling rules: the pure verdict by table, utilization windows, the node selector on pods,
and the enforcer against a real PostgreSQL (a restart neither resets nor double counts)."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from fairway_contracts import EffectiveSpec, Phase, WorkloadType
from fairway_contracts.events import (
    DepartmentChanged,
    ProjectChanged,
    SchedulingRules,
    WorkloadSubmitted,
)
from fairway_lifecycle import repository as repo
from fairway_lifecycle.core.pods import build_pods
from fairway_lifecycle.core.rules import (
    GPU_UTILIZATION_ANNOTATION,
    IDLE_LIMIT_REASON,
    TIME_LIMIT_REASON,
    PodSample,
    Scope,
    Usage,
    effective_limits,
    pod_samples,
    summarize_window,
    verdict,
)
from fairway_lifecycle.enforcer import RulesEnforcer
from fairway_store import create_pool, migrate_dsn

W = WorkloadType
HOUR = 3600


def dept(**rules) -> Scope:
    return Scope("department", "research", rules)


def proj(**rules) -> Scope:
    return Scope("project", "team-a", rules)


# which limit applies ------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "project", "department", "time", "idle"), [
    # workspaces take the interactive rules, the stricter of both scopes
    (W.WORKSPACE, proj(interactiveJobMaxIdleDurationSeconds=600),
     dept(interactiveJobMaxIdleDurationSeconds=HOUR), None, ("project", 600)),
    (W.WORKSPACE, proj(), dept(interactiveJobMaxIdleDurationSeconds=HOUR,
                              interactiveJobTimeLimitSeconds=8 * HOUR),
     ("department", 8 * HOUR), ("department", HOUR)),
    # a project rule looser than its department's (set before the department tightened)
    (W.WORKSPACE, proj(interactiveJobTimeLimitSeconds=2 * HOUR),
     dept(interactiveJobTimeLimitSeconds=HOUR), ("department", HOUR), None),
    # a tie names the department: the project only repeated it
    (W.WORKSPACE, proj(interactiveJobTimeLimitSeconds=HOUR),
     dept(interactiveJobTimeLimitSeconds=HOUR), ("department", HOUR), None),
    # trainings and distributed take the training rules, not the interactive ones
    (W.TRAINING, proj(trainingJobTimeLimitSeconds=60, interactiveJobTimeLimitSeconds=5),
     None, ("project", 60), None),
    (W.DISTRIBUTED, None, dept(trainingJobMaxIdleDurationSeconds=300), None,
     ("department", 300)),
    (W.TRAINING, proj(interactiveJobMaxIdleDurationSeconds=5), dept(), None, None),
    # inference is never limited
    (W.INFERENCE, proj(interactiveJobTimeLimitSeconds=5, trainingJobTimeLimitSeconds=5),
     dept(interactiveJobMaxIdleDurationSeconds=5), None, None),
    (W.WORKSPACE, None, None, None, None),
])
def test_effective_limits(kind, project, department, time, idle):
    got_time, got_idle = effective_limits(kind, project, department)
    assert ((got_time.kind, got_time.seconds) if got_time else None) == time
    assert ((got_idle.kind, got_idle.seconds) if got_idle else None) == idle


# whether to stop ----------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "usage", "project", "department", "expected"), [
    (W.WORKSPACE, Usage(7200, 120, 30), None, dept(interactiveJobMaxIdleDurationSeconds=HOUR),
     (IDLE_LIMIT_REASON,
      "stopped: idle for 3,600 s, over the department research's idle GPU limit of 3,600 s "
      "(120 windows of 30 s with zero GPU utilization)")),
    (W.WORKSPACE, Usage(7200, 119, 30), None, dept(interactiveJobMaxIdleDurationSeconds=HOUR),
     None),
    (W.TRAINING, Usage(259_200.4, 0, 30), proj(trainingJobTimeLimitSeconds=259_200), None,
     (TIME_LIMIT_REASON,
      "stopped: running for 259,200 s, over the project team-a's training time limit of "
      "259,200 s")),
    (W.TRAINING, Usage(259_199.9, 0, 30), proj(trainingJobTimeLimitSeconds=259_200), None,
     None),
    # both hit: the time limit is the one named
    (W.WORKSPACE, Usage(100, 4, 30),
     proj(interactiveJobTimeLimitSeconds=100, interactiveJobMaxIdleDurationSeconds=60), None,
     (TIME_LIMIT_REASON,
      "stopped: running for 100 s, over the project team-a's interactive time limit of 100 s")),
    # the project's tighter idle limit wins over the department's
    (W.DISTRIBUTED, Usage(50, 2, 2), proj(trainingJobMaxIdleDurationSeconds=4),
     dept(trainingJobMaxIdleDurationSeconds=3600),
     (IDLE_LIMIT_REASON,
      "stopped: idle for 4 s, over the project team-a's idle GPU limit of 4 s "
      "(2 windows of 2 s with zero GPU utilization)")),
    # idle but busy-reset (0 consecutive windows) never stops
    (W.WORKSPACE, Usage(9000, 0, 30), None, dept(interactiveJobMaxIdleDurationSeconds=1), None),
    (W.INFERENCE, Usage(10**6, 10**4, 30), proj(interactiveJobTimeLimitSeconds=1), None, None),
    (W.WORKSPACE, Usage(10**6, 10**4, 30), None, None, None),
])
def test_verdict(kind, usage, project, department, expected):
    got = verdict(kind, usage, project, department)
    assert (None if got is None else (got.reason, got.message)) == expected


# utilization windows ------------------------------------------------------------------------

@pytest.mark.parametrize(("samples", "expected"), [
    ([], None),
    ([[], []], None),  # no GPU pod: no GPU utilization at all
    ([[PodSample(1, 0)], [PodSample(1, 0)]], (1, 0.0, True)),
    ([[PodSample(1, 0)], [PodSample(1, 5)]], (1, 2.5, False)),
    ([[PodSample(2, 0), PodSample(2, 0)]], (4, 0.0, True)),
    ([[PodSample(3, 100), PodSample(1, 0)]], (4, 75.0, False)),  # weighted by GPUs
    ([[PodSample(1, 0)], [PodSample(1, None)]], (1, 0.0, False)),  # missing data: not idle
    ([[PodSample(1, 0)], [PodSample(1, 0), PodSample(1, 0)]], (2, 0.0, True)),
])
def test_summarize_window(samples, expected):
    got = summarize_window(samples)
    assert (None if got is None else (got.gpus, got.utilization_percent, got.idle)) == expected


def gpu_pod(name: str, utilization: str | None, *, gpus: int = 1, phase: str = "Running",
            attempt: int = 1, node: str = "a100-1") -> dict:
    annotations = {} if utilization is None else {GPU_UTILIZATION_ANNOTATION: utilization}
    return {"metadata": {"name": name, "labels": {"fairway.io/attempt": str(attempt)},
                         "annotations": annotations},
            "spec": {"nodeName": node, "containers": [
                {"resources": {"limits": {"nvidia.com/gpu": str(gpus)} if gpus else {}}}]},
            "status": {"phase": phase}}


def test_pod_samples_take_running_gpu_pods_of_the_current_attempt():
    pods = [gpu_pod("a", "0"), gpu_pod("b", "42.5", gpus=2), gpu_pod("c", "0", gpus=0),
            gpu_pod("d", "0", phase="Pending"), gpu_pod("e", "0", attempt=1),
            gpu_pod("f", None), gpu_pod("g", "junk")]
    assert pod_samples(pods[:6], attempt=1) == [
        PodSample(1, 0.0), PodSample(2, 42.5), PodSample(1, 0.0), PodSample(1, None)]
    assert pod_samples([gpu_pod("a", "0", attempt=2)], attempt=1) == []
    assert pod_samples([pods[-1]], attempt=1) == [PodSample(1, None)]


def test_a_node_type_becomes_a_node_selector():
    spec = EffectiveSpec.model_validate({"image": "x", "priorityClass": "build",
                                         "preemptible": False, "backoffLimit": 0,
                                         "nodeType": "t4"})
    [pod] = build_pods(workload_id="0123456789ab", name="nb", project="team-a",
                       workload_type=W.WORKSPACE, spec=spec, attempt=1, namespace="ns")
    assert pod["spec"]["nodeSelector"] == {"fairway.io/node-type": "t4"}
    [pod] = build_pods(workload_id="0123456789ab", name="nb", project="team-a",
                       workload_type=W.WORKSPACE,
                       spec=spec.model_copy(update={"node_type": None}), attempt=1,
                       namespace="ns")
    assert "nodeSelector" not in pod["spec"]


# the enforcer against PostgreSQL --------------------------------------------------------------

MIGRATIONS = Path(repo.__file__).parent / "migrations"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class FakeController:
    """What the enforcer reads of the controller: tracked workloads and their cached pods."""

    def __init__(self):
        self.tracked: dict = {}
        self.pods: dict = {}
        self.node_pools = {"a100-1": "a100"}
        self.synced = True
        self.desired: list = []

    def pods_of(self, workload_id):
        return list(self.pods.get(workload_id, {}).values())

    def desire(self, workload_id, desired, resuming, stop_reason=None):
        self.tracked[workload_id].row.desired = desired
        self.desired.append((workload_id, desired, stop_reason))


@pytest.fixture
async def pool(database_url):
    await migrate_dsn(database_url, "lifecycle", MIGRATIONS)
    p = await create_pool(database_url, "lifecycle")
    yield p
    await p.close()


async def _running_workspace(pool, wid: str) -> repo.WorkloadRow:
    spec = EffectiveSpec.model_validate({"image": "jupyter", "priorityClass": "build",
                                         "preemptible": False, "backoffLimit": 0,
                                         "compute": {"gpuDevicesRequest": 1}})
    event = WorkloadSubmitted(event_id=wid, workload_id=wid, name="nb", project="team-a",
                              project_id="7", workload_type=W.WORKSPACE, created_at=T0,
                              created_by="alice", spec=spec)
    async with pool.acquire() as conn:
        await repo.insert_workload(conn, event, "fairway-team-a", {}, "CreatingPods", "")
        await repo.record_phase(conn, wid, phase=Phase.RUNNING, reason="PodsRunning",
                                message="", sequence=2, attempt=1)
        return await repo.get(conn, wid)


async def _utilization_events(pool, wid: str) -> list[dict]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT payload FROM outbox WHERE subject = $1 ORDER BY id",
                                f"fairway.utilization.team-a.{wid}")
    return [json.loads(bytes(r["payload"])) for r in rows]


@pytest.mark.infra
async def test_idle_windows_survive_a_restart_once_and_stop_the_workload(pool, tag):
    wid = f"w-{tag}"
    row = await _running_workspace(pool, wid)
    controller = FakeController()
    controller.tracked[wid] = SimpleNamespace(row=row)
    controller.pods[wid] = {"nb-0": gpu_pod("nb-0", "0")}
    service = SimpleNamespace(pool=pool)

    def enforcer() -> RulesEnforcer:
        return RulesEnforcer(service, controller, window_seconds=10, check_seconds=1)

    first = enforcer()
    await first.load()
    await first.on_org_unit(DepartmentChanged(
        event_id="d1", department_id="3", name="research",
        scheduling_rules=SchedulingRules(interactive_job_max_idle_duration_seconds=30)))
    await first.on_org_unit(ProjectChanged(event_id="p1", project_id="7", name="team-a",
                                           department_id="3"))
    for s in (0, 5, 10):  # the first window: [0, 10)
        await first.check(T0 + timedelta(seconds=s))
    [event] = await _utilization_events(pool, wid)
    assert event["idle"] is True and event["gpus"] == 1 and event["nodePool"] == "a100"
    assert event["windowEnd"].startswith("2026-01-01T12:00:10")

    # a restart: the count and the open running stretch come back from the database
    second = enforcer()
    await second.load()
    assert second.usage[wid].idle_windows == 1
    assert second.usage[wid].running_since == T0
    assert second.scopes("team-a")[1] == Scope("department", "research",
                                               {"interactiveJobMaxIdleDurationSeconds": 30})
    for s in (10, 15, 20):  # the second window: [10, 20)
        await second.check(T0 + timedelta(seconds=s))
    # the old instance closing the same window again records nothing
    for s in (15, 20):
        await first.check(T0 + timedelta(seconds=s))
    events = await _utilization_events(pool, wid)
    assert [e["windowEnd"][:19] for e in events] == ["2026-01-01T12:00:10",
                                                      "2026-01-01T12:00:20"]
    assert controller.desired == []
    for s in (25, 30):  # the third idle window reaches the department's 30 s
        await second.check(T0 + timedelta(seconds=s))
    message = ("stopped: idle for 30 s, over the department research's idle GPU limit of 30 s "
               "(3 windows of 10 s with zero GPU utilization)")
    assert controller.desired == [(wid, "Stopped", (IDLE_LIMIT_REASON, message))]
    async with pool.acquire() as conn:
        assert (await repo.get(conn, wid)).desired == "Stopped"

    # the reason is there for the Stopped event after another restart
    third = enforcer()
    assert (await third.load())[wid] == (IDLE_LIMIT_REASON, message)

    # a resume is a new run: nothing counted, no reason kept
    async with pool.acquire() as conn:
        await third.on_action(conn, wid, "resume")
        assert await conn.fetchval("SELECT count(*) FROM workload_usage WHERE workload_id = $1",
                                   wid) == 0
    assert wid not in (await enforcer().load())


@pytest.mark.infra
async def test_a_busy_window_starts_the_idle_count_again(pool, tag):
    wid = f"w-{tag}"
    row = await _running_workspace(pool, wid)
    controller = FakeController()
    controller.tracked[wid] = SimpleNamespace(row=row)
    controller.pods[wid] = {"nb-0": gpu_pod("nb-0", "0")}
    enforcer = RulesEnforcer(SimpleNamespace(pool=pool), controller, window_seconds=10,
                             check_seconds=1)
    await enforcer.load()
    for s in (0, 10):
        await enforcer.check(T0 + timedelta(seconds=s))
    assert enforcer.usage[wid].idle_windows == 1
    controller.pods[wid] = {"nb-0": gpu_pod("nb-0", "35")}
    await enforcer.check(T0 + timedelta(seconds=20))
    assert enforcer.usage[wid].idle_windows == 0
    events = await _utilization_events(pool, wid)
    assert [(e["idle"], e["utilizationPercent"]) for e in events] == [(True, 0.0),
                                                                      (False, 35.0)]

    # finished (no longer tracked): its counts go, here and after a restart alike
    del controller.tracked[wid]
    await enforcer.check(T0 + timedelta(seconds=25))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM workload_usage WHERE workload_id = $1",
                                   wid) == 0
    assert wid not in enforcer.usage


def test_a_fraction_counts_by_its_portion_and_reports_its_gpu_memory():
    from fairway_lifecycle.core.rules import pod_samples, summarize_window

    fraction = {"metadata": {"name": "f", "labels": {"fairway.io/gpu-fraction": "true",
                                                     "fairway.io/attempt": "1"},
                             "annotations": {"fairway.io/gpu-devices": "0,1",
                                             "fairway.io/gpu-portion": "0.25",
                                             "kubesim.fairway.io/gpu-utilization": "40",
                                             "kubesim.fairway.io/gpu-memory-used-mib": "8192"}},
                "spec": {"containers": [{"name": "main"}]}, "status": {"phase": "Running"}}
    [sample] = pod_samples([fraction], attempt=1)
    assert (sample.gpus, sample.utilization, sample.gpu_memory_used_mib) == (0.5, 40.0, 8192)
    window = summarize_window([[sample], [sample]])
    assert (window.gpus, window.utilization_percent, window.idle,
            window.gpu_memory_used_mib) == (0.5, 40.0, False, 8192)
