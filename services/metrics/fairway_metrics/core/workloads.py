"""One workload's projection: its submission and phase events folded into its view, and what
the event-driven series must record. No I/O; the two events may come in either order, and a late
phase event never moves the phase back.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from fairway_contracts.events import PhaseChanged, ThirdPartyWorkloadChanged, WorkloadSubmitted
from fairway_contracts.workloads import Phase, WorkloadType

# Phases in which a workload waits for GPUs, and those in which it holds and uses them.
PENDING_PHASES = frozenset({Phase.PENDING.value})
RUNNING_PHASES = frozenset({Phase.RUNNING.value, Phase.DEGRADED.value})
# A workload in these asks for nothing any more (its GPUs are released or being released).
FINISHED_PHASES = frozenset({Phase.COMPLETED.value, Phase.FAILED.value, Phase.STOPPED.value,
                             Phase.DELETED.value})
FINISHED_POD_PHASES = frozenset({"Succeeded", "Failed"})
# lifecycle's reason when a dynamic fraction's borrowed GPU memory was taken back
GPU_MEMORY_RECLAIMED = "GpuMemoryReclaimed"


@dataclass(frozen=True, slots=True)
class WorkloadView:
    id: str
    project: str
    workload_type: str
    project_id: str | None = None
    submitted_at: datetime | None = None
    phase: str | None = None
    phase_sequence: int = 0
    phase_changed_at: datetime | None = None
    first_running_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    running_latency_observed: bool = False
    completed_latency_observed: bool = False
    # what it asks for: GPUs over the whole gang, and the pools it may run in (in order)
    gpus_requested: float = 0.0
    node_pools: tuple[str, ...] = ()
    # (node, GPUs) of its live bound pods, from the newest phase event
    placements: tuple[tuple[str, float], ...] = ()
    # closed stretches of time spent Pending and Running (the open one is added at read time)
    pending_seconds: float = 0.0
    running_seconds: float = 0.0

    @property
    def gpus_allocated(self) -> float:
        return sum(gpus for _, gpus in self.placements)

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES

    def open_seconds(self, now: datetime) -> tuple[float, float]:
        """(pending, running) seconds including the stretch still open at `now`."""
        pending, running = self.pending_seconds, self.running_seconds
        if self.phase_changed_at is not None:
            if self.phase in PENDING_PHASES:
                pending += _seconds(self.phase_changed_at, now)
            elif self.phase in RUNNING_PHASES:
                running += _seconds(self.phase_changed_at, now)
        return pending, running


@dataclass(frozen=True, slots=True)
class Outcome:
    """The new projection and what the event-driven series record for it."""

    view: WorkloadView
    transition: str | None = None  # a phase transition to count
    submit_to_running: float | None = None  # seconds, observed once per workload
    submit_to_completed: float | None = None
    # a pod's GPU memory borrowed above its request was taken back: (project, node)
    gpu_memory_reclaimed: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Folded:
    """A batch of events folded into the views of the workloads they are about."""

    views: dict[str, WorkloadView]  # each changed workload's view after the whole batch
    outcomes: list[Outcome]  # one per event, in order: what the series record
    # workloads finished after one of the events: why they waited, how busy they were, is
    # forgotten (a later event may make one live again; what it said then is gone all the same)
    finished: set[str]


def fold_batch[E: (WorkloadSubmitted, PhaseChanged)](
        views: Mapping[str, WorkloadView], events: Iterable[E],
        fold: Callable[[WorkloadView, E], Outcome]) -> Folded:
    """Every event folded in order into its workload's view (`views` holds one for each
    workload), so that each workload is written once however many of its events the batch
    holds."""
    current = dict(views)
    outcomes: list[Outcome] = []
    finished: set[str] = set()
    for event in events:
        outcome = fold(current[event.workload_id], event)
        current[event.workload_id] = outcome.view
        outcomes.append(outcome)
        if outcome.view.finished:
            finished.add(event.workload_id)
    changed = {wid: view for wid, view in current.items() if view != views[wid]}
    return Folded(changed, outcomes, finished)


THIRD_PARTY = "thirdParty"  # the type of pods Fairway schedules but did not create


def type_of(event: WorkloadSubmitted | PhaseChanged | ThirdPartyWorkloadChanged) -> str:
    """The type a workload is counted under: a third-party workload's own, `thirdParty`
    (its request reaches the scheduler as a training's)."""
    if isinstance(event, ThirdPartyWorkloadChanged) or getattr(event, "third_party", False):
        return THIRD_PARTY
    return event.workload_type.value


def on_submitted(view: WorkloadView, event: WorkloadSubmitted) -> Outcome:
    if view.submitted_at is not None:
        return Outcome(view)
    spec = event.spec
    return _outcome(view, {"submitted_at": event.created_at, "project_id": event.project_id,
                           "workload_type": type_of(event),
                           "gpus_requested": spec.gpus_requested(),
                           "node_pools": tuple(spec.node_pools)})


def on_phase_changed(view: WorkloadView, event: PhaseChanged) -> Outcome:
    # Every transition happened, even one that arrives late; only the newest sets the phase.
    changes: dict[str, object] = {}
    if event.phase is Phase.RUNNING:
        changes["first_running_at"] = _earliest(view.first_running_at, event.time)
    elif event.phase is Phase.COMPLETED:
        changes["completed_at"] = _earliest(view.completed_at, event.time)
    elif event.phase is Phase.FAILED:
        changes["failed_at"] = _earliest(view.failed_at, event.time)
    if event.sequence > view.phase_sequence:
        pending, running = view.open_seconds(event.time)
        changes.update(phase=event.phase.value, phase_sequence=event.sequence,
                       phase_changed_at=event.time, pending_seconds=pending,
                       running_seconds=running, placements=_placements(event))
    reclaimed = None
    if event.reason == GPU_MEMORY_RECLAIMED:
        reclaimed = (event.project, next((p.node for p in event.pods if p.node), ""))
    return _outcome(view, changes, transition=event.phase.value,
                    gpu_memory_reclaimed=reclaimed)


def on_third_party(view: WorkloadView, event: ThirdPartyWorkloadChanged) -> Outcome:
    """A third-party workload's announcement as the phase event lifecycle publishes for a
    native one: a transition when its phase moved, its placements always (an elastic set's
    pods come and go within a phase); older news changes nothing."""
    if view.phase_changed_at is not None and event.observed_at < view.phase_changed_at:
        return Outcome(view)
    view = replace(view, workload_type=THIRD_PARTY)
    per_pod = event.gpu_portion or event.gpus_per_pod
    if per_pod:  # what it asks for follows a scale (a memory fraction: as first submitted)
        wanted = event.replicas if event.replicas is not None else len(event.pods)
        view = replace(view, gpus_requested=per_pod * wanted)
    moved = view.phase != event.phase.value
    outcome = on_phase_changed(view, PhaseChanged(
        event_id=event.event_id, workload_id=event.workload_id, name=event.name,
        project=event.project or "", workload_type=WorkloadType.TRAINING,
        sequence=view.phase_sequence + 1, previous_phase=None, phase=event.phase,
        reason=event.phase_reason, message=event.phase_message, time=event.observed_at,
        pods=event.pod_summaries))
    if moved:
        return outcome
    # the same phase: no transition, and the stretch in it goes on
    return replace(outcome, transition=None, view=replace(
        outcome.view, phase_changed_at=view.phase_changed_at,
        pending_seconds=view.pending_seconds, running_seconds=view.running_seconds))


def _placements(event: PhaseChanged) -> tuple[tuple[str, float], ...]:
    # A finished workload holds nothing, whatever its last pods say; a live one holds what its
    # bound, unfinished pods hold. The pods of a gang are one workload: summed here.
    if event.phase.value in FINISHED_PHASES:
        return ()
    return tuple((pod.node, pod.gpu_share) for pod in event.pods
                 if pod.node and pod.phase not in FINISHED_POD_PHASES)


def _outcome(view: WorkloadView, changes: dict[str, object], transition: str | None = None,
             gpu_memory_reclaimed: tuple[str, str] | None = None) -> Outcome:
    """The view with `changes`, and its latencies observed once each: made in one step (a
    frozen view copied once per event, not once per field that moved: thousands a second)."""
    def now(field: str):
        return changes[field] if field in changes else getattr(view, field)

    submitted_at, running_at, completed_at = (now("submitted_at"), now("first_running_at"),
                                              now("completed_at"))
    to_running = to_completed = None
    if submitted_at is not None:
        if running_at is not None and not view.running_latency_observed:
            to_running = _seconds(submitted_at, running_at)
            changes["running_latency_observed"] = True
        if completed_at is not None and not view.completed_latency_observed:
            to_completed = _seconds(submitted_at, completed_at)
            changes["completed_latency_observed"] = True
    return Outcome(replace(view, **changes) if changes else view, transition=transition,
                   submit_to_running=to_running, submit_to_completed=to_completed,
                   gpu_memory_reclaimed=gpu_memory_reclaimed)


def _earliest(current: datetime | None, new: datetime) -> datetime:
    return new if current is None or new < current else current


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())  # clocks of two services may disagree
