"""GPU utilization windows and scheduling-rule enforcement: the I/O around core/rules.py, an
adapter beside the controller (it reads the controller's pods and stops workloads through it).

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

from fairway_contracts import WorkloadType
from fairway_contracts import subjects as subj
from fairway_contracts.events import DepartmentChanged, ProjectChanged, WorkloadUtilization
from fairway_contracts.workloads import utcnow
from fairway_lifecycle import repository as repo
from fairway_lifecycle.controller import Controller, Tracked
from fairway_lifecycle.core.rules import (
    RUNNING,
    PodSample,
    Scope,
    Usage,
    UsageState,
    Verdict,
    pod_samples,
    summarize_window,
    verdict,
)
from fairway_runtime import Service
from fairway_store import add_to_outbox

log = logging.getLogger("fairway.lifecycle.rules")


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
    def __init__(self, runtime: Service, controller: Controller, *,
                 window_seconds: float = 30.0, check_seconds: float = 5.0):
        self.runtime = runtime
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
        # With shards the other replicas' workloads are not tracked here: none is pruned.
        self.sharded = False

    # what the rules are -------------------------------------------------------------------
    async def load(self) -> dict[str, tuple[str, str]]:
        """The rules and the counts as recorded; why a rule stopped the workloads it
        stopped, for their phase reason after a restart."""
        async with self.runtime.pool.acquire() as conn:
            units = await repo.org_rules(conn)
            self.usage, stop_reasons = await repo.usages(conn)
        self._put_rules(units)
        return stop_reasons

    async def load_rules(self) -> None:
        """The rules as recorded (another replica recorded a change)."""
        async with self.runtime.pool.acquire() as conn:
            units = await repo.org_rules(conn)
        self.projects, self.project_ids, self.departments = {}, {}, {}  # deleted ones go
        self._put_rules(units)

    async def adopt(self) -> None:
        """Shards were taken over: the usage of every workload not driven here is read again
        as its last holder counted it, so running time and idle windows go on from there."""
        async with self.runtime.pool.acquire() as conn:
            usage, _ = await repo.usages(conn)
        mine = self.controller.tracked
        self.usage = {wid: u for wid, u in self.usage.items() if wid in mine} | {
            wid: u for wid, u in usage.items() if wid not in mine}

    def release(self, workload_ids: list[str]) -> None:
        """Workloads now driven by another replica: forgotten here without counting them as
        finished (their usage stays recorded for the new holder)."""
        for wid in workload_ids:
            self.seen.discard(wid)
            self.windows.pop(wid, None)

    def _put_rules(self, units: list) -> None:
        for unit in units:
            if unit.kind == "project":
                self.projects[unit.org_id] = (unit.name, unit.department_id, unit.rules)
                self.project_ids[unit.name] = unit.org_id
            else:
                self.departments[unit.org_id] = (unit.name, unit.rules)

    async def on_org_unit(self, event: ProjectChanged | DepartmentChanged) -> None:
        """Idempotent: the unit's whole current state replaces what was kept."""
        if isinstance(event, ProjectChanged):
            kind, org_id, parent = "project", event.project_id, event.department_id
        else:
            kind, org_id, parent = "department", event.department_id, None
        rules = (event.scheduling_rules.model_dump(by_alias=True, exclude_none=True)
                 if event.scheduling_rules else {})
        async with self.runtime.pool.acquire() as conn:
            if event.deleted:
                await repo.delete_org_rules(conn, kind, org_id)
            else:
                await repo.save_org_rules(conn, repo.OrgUnitRules(kind, org_id, event.name,
                                                                  parent, rules))
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
        if action == "resume":
            self.usage.pop(workload_id, None)
            self.windows.pop(workload_id, None)
            await repo.delete_usage(conn, [workload_id])
        else:
            await repo.clear_stop_reason(conn, workload_id)

    async def _stop(self, workload_id: str, why: Verdict) -> None:
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            row = await repo.get_for_update(conn, workload_id)
            if row is None or row.desired != "Running" or row.phase.terminal:
                return
            await repo.set_desired(conn, workload_id, "Stopped", False)
            await repo.set_stop_reason(conn, workload_id, why.reason, why.message)
        log.info("%s: %s", why.reason, why.message, extra={"workload_id": workload_id})
        self.controller.desire(workload_id, "Stopped", False,
                               stop_reason=(why.reason, why.message))

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
        if not self.pruned and self.controller.synced and not self.sharded:
            # Once after a start: what finished while lifecycle was down.
            gone += [w for w in self.usage if w not in tracked and w not in gone]
            self.pruned = True
        stretches: list[tuple[str, UsageState]] = []  # running stretches opened or closed
        running: list[tuple[str, Tracked, UsageState]] = []
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
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            if gone:
                await repo.delete_usage(conn, gone)
            if stretches:
                await repo.save_stretches(conn, stretches)
            for c in closed:
                if await repo.record_window(conn, c.workload_id, c.idle_windows,
                                            c.event.window_end):
                    await add_to_outbox(
                        conn, subj.utilization(c.event.project, c.workload_id), c.event,
                        msg_id=c.event.event_id)
                    recorded.append(c)
        for wid in gone:
            self.seen.discard(wid)
            self.usage.pop(wid, None)
            self.windows.pop(wid, None)
        for wid, usage in stretches:
            self.usage[wid] = usage
        for c in recorded:
            usage = self.usage.setdefault(c.workload_id, UsageState())
            usage.idle_windows, usage.last_window_end = c.idle_windows, c.event.window_end

    def _sample(self, wid: str, t: Tracked, usage: UsageState, now: datetime
                ) -> "Closed | None":
        """Take this check's sample; the window's summary when the window is over."""
        window = self.windows.get(wid)
        if window is None:
            start = now
            if usage.last_window_end is not None and usage.last_window_end > now:
                start = usage.last_window_end  # a clock step back: never reopen a window
            window = self.windows[wid] = Window(start)
        pods = self.controller.pods_of(wid)
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
            idle=summary.idle, window_start=window.start, window_end=end,
            gpu_memory_used_mib=summary.gpu_memory_used_mib)
        return Closed(wid, idle_windows, event)
