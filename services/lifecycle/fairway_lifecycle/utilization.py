"""GPU utilization windows and scheduling-rule enforcement (the I/O around rules.py).

Every `check_seconds` the enforcer looks at each workload lifecycle drives:

- running time: a stretch opens when the recorded phase is Running or Degraded and closes
  when it leaves them; closed stretches add up in `workload_usage.running_seconds`, the open
  one is `now - running_since`, so a restart counts the time the pods kept running while
  lifecycle was down, once;
- utilization: it samples the GPU utilization each running GPU pod reports (kubesim writes it
  as the annotation below while a GPU pod runs; a real cluster's DCGM exporter would take its
  place) from the pods the controller already caches from its watch. Every `window_seconds`
  (30 s; shorter in tests) the window closes: one WorkloadUtilization event per workload, and
  the count of consecutive idle windows moves, in one transaction, recorded once per window
  end so a restart neither resets nor double counts (a partial window lost in a restart is
  simply not counted);
- the rules (from the ORG stream, kept in `org_rules`): when rules.verdict says so, the
  workload is stopped like a user's stop (desired Stopped), and its Stopping and Stopped
  events carry the rule's reason and numbers.
"""

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from fairway_contracts import Phase, WorkloadType
from fairway_contracts import subjects as subj
from fairway_contracts.events import DepartmentChanged, ProjectChanged, WorkloadUtilization
from fairway_contracts.workloads import utcnow
from fairway_lifecycle import repository as repo
from fairway_lifecycle.fold import attempt_of
from fairway_lifecycle.rules import PodSample, Scope, Usage, Verdict, summarize_window, verdict
from fairway_store import add_to_outbox

log = logging.getLogger("fairway.lifecycle.rules")

GPU_UTILIZATION_ANNOTATION = "kubesim.fairway.io/gpu-utilization"
RUNNING = frozenset({Phase.RUNNING, Phase.DEGRADED})


def pod_gpus(pod: dict[str, Any]) -> float:
    total = 0.0
    for c in pod.get("spec", {}).get("containers") or []:
        limits = (c.get("resources") or {}).get("limits") or {}
        try:
            total += float(limits.get("nvidia.com/gpu", 0))
        except (TypeError, ValueError):
            continue
    return total


def pod_samples(pods: list[dict[str, Any]], attempt: int) -> list[PodSample]:
    """The GPU pods of the current attempt that run now, with what each reports."""
    out = []
    for pod in pods:
        gpus = pod_gpus(pod)
        if not gpus or attempt_of(pod) != attempt or pod["metadata"].get("deletionTimestamp"):
            continue
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        raw = (pod["metadata"].get("annotations") or {}).get(GPU_UTILIZATION_ANNOTATION)
        try:
            value = None if raw is None else min(100.0, max(0.0, float(raw)))
        except ValueError:
            value = None
        out.append(PodSample(gpus=gpus, utilization=value))
    return out


@dataclass
class UsageState:
    running_seconds: float = 0.0
    running_since: datetime | None = None
    idle_windows: int = 0
    last_window_end: datetime | None = None

    def with_stretch(self, since: datetime | None, now: datetime) -> "UsageState":
        """Open (since=now) or close (since=None) a running stretch."""
        seconds = self.running_seconds
        if since is None and self.running_since is not None:
            seconds += max(0.0, (now - self.running_since).total_seconds())
        return UsageState(seconds, since, self.idle_windows, self.last_window_end)

    def running_at(self, now: datetime) -> float:
        open_stretch = (now - self.running_since).total_seconds() if self.running_since else 0
        return self.running_seconds + max(0.0, open_stretch)


@dataclass(frozen=True)
class Closed:
    """A window just over, waiting to be recorded."""

    workload_id: str
    idle_windows: int
    event: WorkloadUtilization


@dataclass
class Window:
    start: datetime
    samples: list[list[PodSample]] = field(default_factory=list)


class RulesEnforcer:
    def __init__(self, service: Any, controller: Any, *, window_seconds: float = 30.0,
                 check_seconds: float = 5.0):
        self.service = service
        self.controller = controller
        self.window_seconds = window_seconds
        self.check_seconds = check_seconds
        self.projects: dict[str, tuple[str, str | None, dict[str, int]]] = {}  # id → ...
        self.project_ids: dict[str, str] = {}  # name → id
        self.departments: dict[str, tuple[str, dict[str, int]]] = {}
        self.usage: dict[str, UsageState] = {}
        self.windows: dict[str, Window] = {}
        self.seen: set[str] = set()  # workloads tracked since this process started
        self.pruned = False

    # what the rules are -------------------------------------------------------------------
    async def load(self) -> None:
        async with self.service.pool.acquire() as conn:
            for r in await conn.fetch("SELECT * FROM org_rules"):
                if r["kind"] == "project":
                    self.projects[r["org_id"]] = (r["name"], r["department_id"], r["rules"])
                    self.project_ids[r["name"]] = r["org_id"]
                else:
                    self.departments[r["org_id"]] = (r["name"], r["rules"])
            for r in await conn.fetch("SELECT * FROM workload_usage"):
                self.usage[r["workload_id"]] = UsageState(
                    r["running_seconds"], r["running_since"], r["idle_windows"],
                    r["last_window_end"])
                if r["stop_reason"]:
                    self.controller.stop_reasons[r["workload_id"]] = (r["stop_reason"],
                                                                      r["stop_message"])

    async def on_org_unit(self, event: ProjectChanged | DepartmentChanged) -> None:
        """Idempotent: the unit's whole current state replaces what was kept."""
        if isinstance(event, ProjectChanged):
            kind, org_id, parent = "project", event.project_id, event.department_id
        else:
            kind, org_id, parent = "department", event.department_id, None
        rules = (event.scheduling_rules.model_dump(by_alias=True, exclude_none=True)
                 if event.scheduling_rules else {})
        async with self.service.pool.acquire() as conn:
            if event.deleted:
                await conn.execute("DELETE FROM org_rules WHERE kind = $1 AND org_id = $2",
                                   kind, org_id)
            else:
                await conn.execute(
                    "INSERT INTO org_rules (kind, org_id, name, department_id, rules)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, org_id) DO UPDATE SET"
                    " name = $3, department_id = $4, rules = $5",
                    kind, org_id, event.name, parent, rules)
        table: dict[str, Any] = self.projects if kind == "project" else self.departments
        if event.deleted:
            table.pop(org_id, None)
        elif kind == "project":
            self.projects[org_id] = (event.name, parent, rules)
            self.project_ids[event.name] = org_id
        else:
            self.departments[org_id] = (event.name, rules)

    def scopes(self, project: str) -> tuple[Scope | None, Scope | None]:
        """The project (by name, as workloads carry it) and its department, with their rules."""
        project_id = self.project_ids.get(project)
        if project_id is None or project_id not in self.projects:
            return None, None
        name, department_id, rules = self.projects[project_id]
        dept = self.departments.get(department_id or "")
        return (Scope("project", name, rules),
                Scope("department", dept[0], dept[1]) if dept else None)

    # actions on a workload ----------------------------------------------------------------
    async def on_action(self, conn: asyncpg.Connection, workload_id: str, action: str) -> None:
        """A user's stop, resume or delete: their word is now the reason, and a resumed
        workload starts a new run (its time and idle counts start again)."""
        self.controller.stop_reasons.pop(workload_id, None)
        if action == "resume":
            self.usage.pop(workload_id, None)
            self.windows.pop(workload_id, None)
            await conn.execute("DELETE FROM workload_usage WHERE workload_id = $1", workload_id)
        else:
            await conn.execute("UPDATE workload_usage SET stop_reason = NULL, stop_message ="
                               " NULL WHERE workload_id = $1", workload_id)

    async def _stop(self, workload_id: str, why: Verdict) -> None:
        async with self.service.pool.acquire() as conn, conn.transaction():
            row = await repo.get_for_update(conn, workload_id)
            if row is None or row.desired != "Running" or row.phase.terminal:
                return
            await repo.set_desired(conn, workload_id, "Stopped", False)
            await conn.execute(
                "INSERT INTO workload_usage (workload_id, stop_reason, stop_message)"
                " VALUES ($1, $2, $3) ON CONFLICT (workload_id) DO UPDATE SET"
                " stop_reason = $2, stop_message = $3, updated_at = now()",
                workload_id, why.reason, why.message)
        log.info("%s: %s", why.reason, why.message, extra={"workload_id": workload_id})
        self.controller.stop_reasons[workload_id] = (why.reason, why.message)
        self.controller.desire(workload_id, "Stopped", False)

    # the periodic check ---------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                await self.check(utcnow())
            except Exception:  # the next check tries again; the counts are in the database
                log.exception("scheduling-rules check failed")

    async def check(self, now: datetime) -> None:
        tracked = dict(self.controller.tracked)
        gone = [w for w in self.seen if w not in tracked]  # finished: nothing more to count
        if not self.pruned and self.controller.synced:
            # Once after a start: what finished while lifecycle was down.
            gone += [w for w in self.usage if w not in tracked and w not in gone]
            self.pruned = True
        stretches: list[tuple[str, UsageState]] = []  # running stretches opened or closed
        running: list[tuple[str, Any, UsageState]] = []
        closed: list[Closed] = []
        for wid, t in tracked.items():
            self.seen.add(wid)
            if t.row.desired != "Running":
                continue
            is_running = t.row.phase in RUNNING
            usage = self.usage.get(wid) or UsageState()
            if is_running != (usage.running_since is not None):
                usage = usage.with_stretch(now if is_running else None, now)
                stretches.append((wid, usage))
            if not is_running:
                self.windows.pop(wid, None)  # a window counts running time only
                continue
            running.append((wid, t, usage))
            if (done := self._sample(wid, t, usage, now)) is not None:
                closed.append(done)
        if gone or stretches or closed:
            await self._record(gone, stretches, closed)
        for wid, t, _ in running:
            usage = self.usage[wid]
            project, department = self.scopes(t.row.project)
            why = verdict(t.row.workload_type, Usage(usage.running_at(now), usage.idle_windows,
                                                     self.window_seconds), project, department)
            if why is not None:
                await self._stop(wid, why)

    async def _record(self, gone: list[str], stretches: list[tuple[str, UsageState]],
                      closed: list["Closed"]) -> None:
        """What one check changed, in one transaction; memory follows once it is committed.
        A window's count and event are recorded only if no later window end is recorded
        already (another instance, or this one before a restart, took it)."""
        recorded = []
        async with self.service.pool.acquire() as conn, conn.transaction():
            if gone:
                await conn.execute("DELETE FROM workload_usage WHERE workload_id = ANY($1)",
                                   gone)
            if stretches:
                await conn.executemany(
                    "INSERT INTO workload_usage (workload_id, running_seconds, running_since)"
                    " VALUES ($1, $2, $3) ON CONFLICT (workload_id) DO UPDATE SET"
                    " running_seconds = $2, running_since = $3, updated_at = now()",
                    [(w, u.running_seconds, u.running_since) for w, u in stretches])
            for c in closed:
                end = c.event.window_end
                if await conn.fetchval(
                        "INSERT INTO workload_usage (workload_id, idle_windows, last_window_end)"
                        " VALUES ($1, $2, $3) ON CONFLICT (workload_id) DO UPDATE SET"
                        " idle_windows = $2, last_window_end = $3, updated_at = now()"
                        " WHERE workload_usage.last_window_end IS NULL"
                        " OR workload_usage.last_window_end < $3 RETURNING 1",
                        c.workload_id, c.idle_windows, end):
                    await add_to_outbox(
                        conn, subj.utilization(c.event.project, c.workload_id), c.event,
                        msg_id=c.event.event_id)
                    recorded.append(c)
        for wid in gone:
            self.seen.discard(wid)
            self.usage.pop(wid, None)
            self.windows.pop(wid, None)
            self.controller.stop_reasons.pop(wid, None)
        for wid, usage in stretches:
            self.usage[wid] = usage
        for c in recorded:
            usage = self.usage.setdefault(c.workload_id, UsageState())
            usage.idle_windows, usage.last_window_end = c.idle_windows, c.event.window_end

    def _sample(self, wid: str, t: Any, usage: UsageState, now: datetime) -> "Closed | None":
        """Take this check's sample; the window's summary when the window is over."""
        window = self.windows.get(wid)
        if window is None:
            start = now
            if usage.last_window_end is not None and usage.last_window_end > now:
                start = usage.last_window_end  # a clock step back: never reopen a window
            window = self.windows[wid] = Window(start)
        pods = list(self.controller.pods.get(wid, {}).values())
        if now >= window.start:
            window.samples.append(pod_samples(pods, t.row.attempt))
        end = window.start + timedelta(seconds=self.window_seconds)
        if now < end:
            return None
        summary = summarize_window(window.samples)
        # Back to back while the checks keep up; after a long pause, start afresh.
        self.windows[wid] = Window(end if now - end < timedelta(seconds=self.window_seconds)
                                   else now)
        if summary is None:
            return None
        idle_windows = usage.idle_windows + 1 if summary.idle else 0
        row = t.row
        node_pools = sorted({self.controller.node_pools.get(p.get("spec", {}).get("nodeName"))
                             for p in pods if p.get("spec", {}).get("nodeName")} - {None})
        event = WorkloadUtilization(
            event_id=f"util-{wid}-{int(window.start.timestamp() * 1000)}", workload_id=wid,
            name=row.name, project=row.project,
            workload_type=WorkloadType(row.workload_type),
            node_pool=node_pools[0] if node_pools else (row.spec.node_pools or [None])[0],
            gpus=summary.gpus, utilization_percent=summary.utilization_percent,
            idle=summary.idle, window_start=window.start, window_end=end)
        return Closed(wid, idle_windows, event)
