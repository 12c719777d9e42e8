"""The scenario simulator: the pure core in a loop, in virtual time.

Round i runs at t = i * secondsPerRound: workloads whose duration is over complete and free
what they hold, evicted pods whose time is up leave, those with submitAt <= t join, then one
cycle (`decide`: allocate, consolidate, reclaim, preempt, stale gangs) runs and its decisions
are applied. A workload starts (startedAt = t) once its gang (`minPods`) is bound, and runs for
its `duration` from then. A preempted workload's pods leave at once (`evictionSeconds` 0, the
default) or after that long (they hold their GPUs meanwhile); a workload that lost its gang
is pending again, its pods waiting. Placements onto room still being vacated (`pipelined`)
are applied at once only while nothing is being evicted; otherwise the preemptor waits and a
later round binds it. `simulate(scenario)` returns plain JSON-ready data in the shape
docs/scenario-format.md documents.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fairway_scheduler.core import decide
from fairway_scheduler.core.model import (
    Allocation,
    ClusterSnapshot,
    CycleResult,
    PendingReason,
    Workload,
)
from fairway_scheduler.core.usage import UsageHistory
from fairway_scheduler.simulation.scenario import Scenario, ScenarioWorkload

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FULL = 1000


@dataclass(slots=True)
class _Pod:
    node: str
    gpus: tuple[int, ...]
    portion: float | None


@dataclass(slots=True)
class _Run:
    spec: ScenarioWorkload
    pods: dict[int, _Pod] = field(default_factory=dict)
    started_at: float | None = None
    completed: bool = False
    reason: PendingReason | None = None
    preemptions: int = 0
    below_min_since: float | None = None
    evicting: dict[int, float] = field(default_factory=dict)  # pod -> when it is gone

    @property
    def status(self) -> str:
        if self.completed:
            return "completed"
        return "running" if self.started_at is not None else "pending"


def simulate(scenario: Scenario) -> dict[str, Any]:
    runs = {w.name: _Run(w) for w in scenario.workloads}
    _place_running(scenario, runs)
    rounds = []
    queues: tuple = ()
    nominated: tuple = ()
    pools = tuple(p.pool for p in scenario.pools)
    history = _history(scenario)
    last_t = 0.0
    for i in range(scenario.rounds):
        t = i * scenario.seconds_per_round
        # What the queues held since the last round counts as usage (time-aware fairness).
        history.accrue(queues, EPOCH + timedelta(seconds=last_t), EPOCH + timedelta(seconds=t))
        last_t = t
        for run in runs.values():
            _advance(run, t)
        active = [run for run in runs.values()
                  if not run.completed and run.spec.submit_at <= t]
        for run in active:
            _track_gang(run, t)
        snapshot = ClusterSnapshot(
            nodes=scenario.nodes,
            workloads=tuple(_workload(run) for run in active),
            allocations=tuple(_allocation(run, index, pod) for run in active
                              for index, pod in sorted(run.pods.items())),
            pools=pools,
            queues=scenario.queues,
            now=EPOCH + timedelta(seconds=t),
            disruption=scenario.disruption,
            nominated=nominated,
            time_aware_fairness=scenario.time_aware_fairness,
            usage=history,
        )
        result = decide(snapshot)
        nominated = result.nominated
        decisions = _evict(scenario, runs, result, t)
        decisions += _bind(runs, result, t, vacating=any(run.evicting for run in active))
        reasons = {reason.workload_id: reason for reason in result.pending}
        for run in active:
            run.reason = reasons.get(run.spec.name)
            if run.started_at is None and len(run.pods) >= run.spec.min_pods:
                run.started_at = t
        rounds.append({"t": _num(t), "decisions": decisions})
        queues = result.queues
    return {"rounds": rounds,
            "workloads": {name: _workload_out(run) for name, run in runs.items()},
            "queues": _queues_out(queues)}


def _history(scenario: Scenario) -> UsageHistory:
    """The usage history the scenario starts with (`usage`): a project's usage is its
    department's too (the department held what its projects held)."""
    history = UsageHistory(scenario.usage_bucket_seconds)
    department_of = {q.name: q.parent for q in scenario.queues if q.kind == "project"}
    epoch = EPOCH.timestamp()
    for entry in scenario.usage:
        keys = [(entry.kind, entry.name, entry.pool)]
        department = department_of.get(entry.name) if entry.kind == "project" else None
        if department:
            keys.append(("department", department, entry.pool))
        for key in keys:
            history.hold(key, entry.amounts, epoch + entry.start, epoch + entry.end)
    return history


def _advance(run: _Run, t: float) -> None:
    """Time passes: a workload whose duration is over completes; evicted pods whose time is
    up leave."""
    duration = run.spec.duration
    if (run.started_at is not None and not run.completed and duration is not None
            and run.started_at + duration <= t):
        run.completed = True
        run.pods.clear()
        run.evicting.clear()
        run.reason = None
    for index, gone in list(run.evicting.items()):
        if gone <= t:
            _leave(run, index)


def _evict(scenario: Scenario, runs: dict[str, _Run], result: CycleResult, t: float
           ) -> list[dict[str, Any]]:
    """The cycle's evictions applied: pods leave now, or once their termination is over."""
    decisions = []
    moving = {p.workload_id for p in result.placements if p.moved}
    for eviction in result.evictions:
        run = runs[eviction.workload_id]
        indices = (sorted(run.pods) if eviction.pods is None
                   else sorted(_index(pod) for pod in eviction.pods))
        decision = {"action": "preempt", "workload": run.spec.name, "reason": eviction.reason,
                    "by": eviction.by, "message": eviction.message}
        if eviction.pods is not None:
            decision["pods"] = indices
        decisions.append(decision)
        delay = (run.spec.termination_seconds if run.spec.termination_seconds is not None
                 else scenario.eviction_seconds)
        run.preemptions += 1
        for index in indices:
            if delay:
                run.evicting[index] = t + delay
            elif eviction.reason == "consolidate" and run.spec.name in moving:
                run.pods.pop(index, None)  # moved: bound again on its new node below
            else:
                _leave(run, index)
    return decisions


def _bind(runs: dict[str, _Run], result: CycleResult, t: float, *, vacating: bool
          ) -> list[dict[str, Any]]:
    """The cycle's placements applied; pipelined ones wait while pods are still leaving."""
    decisions: list[dict[str, Any]] = []
    for placement in result.placements:
        run = runs[placement.workload_id]
        if placement.pipelined and vacating and not placement.moved:
            continue  # the room is not free yet: a later round binds it
        if placement.moved:
            # Consolidation: the same pods restart on their new nodes at once; a gang that kept
            # some of its pods where they were runs on (it never stopped).
            for index in list(run.evicting):
                run.evicting.pop(index)
                run.pods.pop(index, None)
            if not run.pods:
                run.started_at = t
        for pod in placement.pods:
            index = _index(pod.pod)
            run.pods[index] = _Pod(pod.node, pod.gpu_devices, pod.portion)
            decision = {"action": "bind", "workload": run.spec.name, "pod": index,
                        "node": pod.node, "gpus": list(pod.gpu_devices),
                        "portion": pod.portion}
            if pod.gpu_limit is not None:
                decision["gpuLimit"] = pod.gpu_limit  # a dynamic fraction's limit
            decisions.append(decision)
    return decisions


def _index(pod: str) -> int:
    return int(pod.rsplit("-", 1)[1])


def _leave(run: _Run, index: int) -> None:
    """An evicted pod is gone; a workload left without its gang waits again from scratch."""
    run.evicting.pop(index, None)
    run.pods.pop(index, None)
    if len(run.pods) < run.spec.min_pods and not run.evicting:
        for other in list(run.pods):  # a gang restarts whole
            run.pods.pop(other)
        run.started_at = None
        run.below_min_since = None


def _track_gang(run: _Run, t: float) -> None:
    """Since when a running workload has fewer pods than its minimum (a pod was lost)."""
    if run.started_at is None or len(run.pods) >= run.spec.min_pods or not run.pods:
        run.below_min_since = None
    elif run.below_min_since is None:
        run.below_min_since = t


def _place_running(scenario: Scenario, runs: dict[str, _Run]) -> None:
    """Give pods that already run their devices: those `running.gpus` pins, else the fullest
    shared device that has room for a fraction, else the lowest wholly free ones."""
    nodes = {n.name: n for n in scenario.nodes}
    used = {n.name: [0] * n.gpus for n in scenario.nodes}
    # pods whose devices the scenario pins first, then the others around them
    for run in sorted(runs.values(), key=lambda r: not r.spec.running_gpus):
        spec = run.spec
        if not spec.running_nodes:
            continue
        for index, name in enumerate(spec.running_nodes):
            if name is None:
                continue  # a lost pod: it waits for a node again
            devices = used[name]
            node = nodes[name]
            count, asked_portion, asked_memory, _, _ = spec.size_of(index)
            if asked_portion is not None or asked_memory is not None:
                if asked_portion is not None:
                    milli = round(asked_portion * FULL)
                else:
                    milli = -(-(asked_memory or 0) * FULL // (node.gpu_memory_mib or 1))
                shared = sorted((-u, d) for d, u in enumerate(devices)
                                if 0 < u and u + milli <= FULL)
                chosen = [d for _, d in shared][:count]
                chosen += [d for d, u in enumerate(devices) if u == 0][:count - len(chosen)]
                portion: float | None = milli / FULL
            else:
                milli = FULL
                chosen = [d for d, u in enumerate(devices) if u == 0][:count]
                portion = None
            if spec.running_gpus and spec.running_gpus[index] is not None:
                chosen = list(spec.running_gpus[index] or ())
            for d in chosen:
                devices[d] += milli
            run.pods[index] = _Pod(name, tuple(sorted(chosen)), portion)
        run.started_at = spec.started_at
        if None in spec.running_nodes and len(run.pods) < spec.min_pods:
            run.below_min_since = spec.lost_at if spec.lost_at is not None else spec.started_at


def _workload(run: _Run) -> Workload:
    spec = run.spec
    return Workload(
        id=spec.name, project=spec.project, priority=spec.priority,
        submitted_at=EPOCH + timedelta(seconds=spec.submit_at), gpus_per_pod=spec.devices,
        min_pods=spec.min_pods, pods=spec.pods, node_pools=spec.node_pools,
        preemptible=spec.preemptible,
        waiting_pods=tuple(f"{spec.name}-{i}" for i in range(spec.pods) if i not in run.pods),
        gpu_portion=spec.portion, gpu_memory_mib=spec.gpu_memory_mib, gpu_limit=spec.gpu_limit,
        cpu_millis=spec.cpu_millis, memory_mib=spec.memory_mib,
        started_at=None if run.started_at is None else EPOCH + timedelta(seconds=run.started_at),
        below_min_since=(None if run.below_min_since is None
                         else EPOCH + timedelta(seconds=run.below_min_since)),
        evicting_pods=tuple(f"{spec.name}-{i}" for i in sorted(run.evicting)),
        node_type=spec.node_type,
        topology_required=spec.topology_required, topology_preferred=spec.topology_preferred,
        master=spec.master, master_pod=f"{spec.name}-0" if spec.master is not None else None)


def _allocation(run: _Run, index: int, pod: _Pod) -> Allocation:
    spec = run.spec
    _, _, _, cpu, mem = spec.size_of(index)
    return Allocation(spec.name, f"{spec.name}-{index}", pod.node, pod.gpus,
                      portion=pod.portion, cpu_millis=cpu, memory_mib=mem)


def _workload_out(run: _Run) -> dict[str, Any]:
    waiting = run.status == "pending" and run.reason is not None
    return {
        "status": run.status,
        "pods": [{"node": p.node, "gpus": list(p.gpus), "portion": p.portion}
                 for _, p in sorted(run.pods.items())],
        "startedAt": None if run.started_at is None else _num(run.started_at),
        "preemptions": run.preemptions,
        "pendingReason": str(run.reason.code) if waiting and run.reason else None,
        "pendingMessage": run.reason.message if waiting and run.reason else None,
    }


def _queues_out(statuses: tuple) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        entry = out.setdefault(status.name, {"kind": status.kind, "pools": {}})
        if status.parent:
            entry["department"] = status.parent
        entry["pools"][status.pool] = {
            resource: _resource_out(r)
            for resource, r in (("gpu", status.gpu), ("cpu", status.cpu),
                                ("memory", status.memory))
        }
    return out


def _resource_out(r) -> dict[str, Any]:
    out = {
        "deserved": _num(r.deserved), "limit": _num(r.limit),
        "overQuotaWeight": _num(r.over_quota_weight), "fairShare": _num(r.fair_share),
        "allocated": _num(r.allocated),
        "allocatedNonPreemptible": _num(r.allocated_non_preemptible),
        "requested": _num(r.requested),
    }
    # Time-aware fairness on in the pool: the usage in the window, and the corrected weight
    # (only then: the output of a scenario without it is what it always was).
    if r.usage is not None:
        out["usage"] = _num(r.usage)
        if r.adjusted_over_quota_weight is not None:
            out["adjustedOverQuotaWeight"] = _num(r.adjusted_over_quota_weight)
    return out


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 3)
