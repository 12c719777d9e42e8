"""Time-aware fairness in the scheduler service, against real NATS JetStream and PostgreSQL:
a node pool turns it on (NodePoolChanged.timeAwareFairness); a project with a week of usage in
the tables gets less of the over-quota GPUs than its sibling of equal weight, its queue status
shows its usage and corrected weight, its pending workloads say why; usage is accrued from what
the queues hold and written to the tables, and a restarted scheduler reads it back."""

import asyncio
import uuid
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from fairway_bus import publish_model
from fairway_contracts import subjects
from fairway_contracts.events import (
    BindDecision,
    DepartmentChanged,
    NodePoolChanged,
    PoolResources,
    ProjectChanged,
    QueueStatusChanged,
    Quota,
    SchedulingPending,
    TimeAwareFairness,
)
from fairway_contracts.workloads import Phase, utcnow
from fairway_scheduler.app import build
from fairway_scheduler.settings import SchedulerSettings

from .test_scheduler_fair_share_service import (  # noqa: F401 (fixtures)
    cycles_run,
    db,
    drained,
    fs_consumers,
    messages,
    names,
    pod_group,
    publish_nodes,
    submitted,
)

pytestmark = pytest.mark.infra

PER_PROJECT = 30
WEEK = 7 * 86400


@pytest.fixture
async def start_scheduler(nats_url: str, database_url: str, fs_consumers):  # noqa: F811
    started = []

    async def start():
        settings = SchedulerSettings(nats_url=nats_url, database_url=database_url,
                                     cycle_seconds=1.0, settle_seconds=1.5,
                                     leader_election="off", verify_kept_state=True,
                                     usage_flush_seconds=1.0)
        service = build(settings, consumers=fs_consumers)
        await service.start(serve_http=False)
        started.append(service)
        return service

    yield start
    for service in started:
        if service.ready:
            await service.stop()


async def publish_org(js, tag: str, names: dict[str, str]) -> None:  # noqa: F811
    pool = names["pool"]
    await publish_model(js, subjects.org_node_pool(pool), NodePoolChanged(
        event_id=f"np-{tag}", name=pool, label_key="fairway.io/node-pool", label_value=pool,
        time_aware_fairness=TimeAwareFairness(enabled=True, window_type="sliding",
                                              window_size="7d", k_value=0.5)),
        msg_id=f"np-{tag}")
    await publish_model(js, subjects.org_department(f"dep-{tag}"), DepartmentChanged(
        event_id=f"dep-{tag}", department_id=f"dep-{tag}", name=names["dept"],
        resources=[PoolResources(node_pool=pool, gpu=Quota(deserved=24))]),
        msg_id=f"dep-{tag}")
    for key in ("a", "b"):
        await publish_model(js, subjects.org_project(f"id-{tag}-{key}"), ProjectChanged(
            event_id=f"prj-{tag}-{key}", project_id=f"id-{tag}-{key}", name=names[key],
            department_id=f"dep-{tag}",
            resources=[PoolResources(node_pool=pool, gpu=Quota(deserved=2))]),
            msg_id=f"prj-{tag}-{key}")


async def test_a_project_with_a_week_of_usage_gets_less_over_quota(
        js, tag, names, fs_consumers, db, start_scheduler, stored_messages,  # noqa: F811
        eventually):
    a, b, pool = names["a"], names["b"], names["pool"]
    first = await start_scheduler()  # its tables made; stopped before anything is submitted
    await first.stop()
    # a held 24 GPUs for the last week (in the tables as the scheduler writes them).
    now = utcnow()
    await db.executemany(
        "INSERT INTO queue_usage (kind, name, node_pool, bucket_start, bucket_seconds,"
        " gpu_seconds) VALUES ($1, $2, $3, $4, 3600, $5)",
        [(kind, name, pool, (now - timedelta(hours=h)).replace(minute=0, second=0,
                                                               microsecond=0), 24 * 3600.0)
         for h in range(1, 24 * 7) for kind, name in (("project", a),
                                                       ("department", names["dept"]))])
    await publish_org(js, tag, names)
    await publish_nodes(js, tag, pool)
    workloads: dict[str, list[str]] = {a: [], b: []}
    for i in range(PER_PROJECT):
        for project in (a, b):
            wid = str(uuid.uuid4())
            workloads[project].append(wid)
            await publish_model(js, subjects.workload_submitted(project, wid),
                                submitted(wid, project, at=i), msg_id=f"sub-{wid}")
            await publish_model(js, subjects.podgroup(project, wid),
                                pod_group(wid, project, 1, Phase.PENDING), msg_id=f"pg-{wid}-1")
    service = await start_scheduler()

    async def binds():
        found = {}
        for project in (a, b):
            for m in await messages(js, stored_messages, f"fairway.scheduler.bind.{project}.>"):
                decision = BindDecision.model_validate_json(m.data)
                found[decision.workload_id] = decision
        return found if len(found) >= 24 else None

    await eventually(binds, timeout=30)
    await drained(js, fs_consumers, eventually)
    decisions = await binds()
    placed = {p: sum(1 for w in workloads[p] if w in decisions) for p in (a, b)}
    # Deserved 2 each; the 20 over quota by corrected weights: a used everything (U 1, W 0.5:
    # P = 0.5 + 0.5 (0.5 - 1) = 0.25), b nothing (0.75): 5 and 15 over quota.
    assert placed == {a: 7, b: 17}

    async def last_status(name: str) -> QueueStatusChanged:
        found = await messages(js, stored_messages, subjects.queue_status("project", name, pool))
        return QueueStatusChanged.model_validate_json(found[-1].data)

    status_a, status_b = await last_status(a), await last_status(b)
    assert status_a.gpu.deserved == 2 and status_a.gpu.fair_share == 7
    assert status_a.gpu.usage >= 24 * 3600 * (24 * 7 - 2)
    assert (status_a.gpu.adjusted_over_quota_weight,
            status_b.gpu.adjusted_over_quota_weight) == (0.25, 0.75)
    waiting = next(w for w in workloads[a] if w not in decisions)
    reason = SchedulingPending.model_validate_json((await messages(
        js, stored_messages, subjects.scheduling_pending(a, waiting)))[-1].data)
    assert reason.code == "OverFairShare"
    assert "(12 GPUs without time-aware fairness: it used" in reason.message

    # The same figures as the scheduler's metrics, per queue and pool.
    def gauge(metric: str, project: str) -> float | None:
        return REGISTRY.get_sample_value(f"fairway_scheduler_queue_{metric}", {
            "kind": "project", "queue": project, "node_pool": pool, "resource": "gpu"})

    async def metrics():
        found = {metric: (gauge(metric, a), gauge(metric, b))
                 for metric in ("adjusted_over_quota_weight", "fair_share", "usage_seconds")}
        return found if found["adjusted_over_quota_weight"] == (0.25, 0.75) else None

    shown = await eventually(metrics, timeout=10)
    assert shown["fair_share"] == (7, 17)
    assert shown["usage_seconds"][0] >= 24 * 3600 * (24 * 7 - 2)

    # What b now holds is accrued and written: its rows appear in the tables.
    async def b_used():
        value = await db.fetchval(
            "SELECT sum(gpu_seconds) FROM queue_usage WHERE name = $1 AND node_pool = $2",
            b, pool)
        return value if value and value > 0 else None

    assert await eventually(b_used, timeout=20) > 0
    department = await db.fetchval(
        "SELECT sum(gpu_seconds) FROM queue_usage WHERE kind = 'department' AND name = $1",
        names["dept"])
    assert department > 24 * 3600 * (24 * 7 - 1)  # the seeded week plus what both held since

    # A restarted scheduler reads the history back: the shares stay as they are (read without
    # it, they would be 12 and 12, and a would reclaim 5 GPUs from b).
    await service.stop()
    cycles = cycles_run()
    await start_scheduler()
    await eventually(lambda: _true(cycles_run() > cycles), timeout=20)
    await asyncio.sleep(3)
    assert await messages(js, stored_messages, f"fairway.scheduler.preempt.{b}.>") == []
    assert (await last_status(a)).gpu.fair_share == 7


async def _true(value: bool) -> bool | None:
    return True if value else None
