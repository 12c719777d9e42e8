"""Metrics' pure core: fold a workload's submission and phase events into its projection, and
say what the Prometheus series must record. No I/O; the two events may come in either order.
"""

from dataclasses import dataclass, replace
from datetime import datetime

from fairway_contracts.events import PhaseChanged, WorkloadSubmitted
from fairway_contracts.workloads import Phase


@dataclass(frozen=True, slots=True)
class WorkloadView:
    id: str
    project: str
    workload_type: str
    submitted_at: datetime | None = None
    phase: str | None = None
    phase_sequence: int = 0
    phase_changed_at: datetime | None = None
    first_running_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    running_latency_observed: bool = False
    completed_latency_observed: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """The new projection and what the series record for it."""

    view: WorkloadView
    left_phase: str | None = None  # the current-phase gauge moves from here...
    entered_phase: str | None = None  # ...to here (None: no move)
    transition: str | None = None  # a phase transition to count
    submit_to_running: float | None = None  # seconds, observed once per workload
    submit_to_completed: float | None = None


def on_submitted(view: WorkloadView, event: WorkloadSubmitted) -> Outcome:
    if view.submitted_at is not None:
        return Outcome(view)
    return _observe_latencies(Outcome(replace(view, submitted_at=event.created_at)))


def on_phase_changed(view: WorkloadView, event: PhaseChanged) -> Outcome:
    # Every transition happened, even one that arrives late; only the newest sets the phase.
    outcome = Outcome(view, transition=event.phase.value)
    if event.phase is Phase.RUNNING:
        view = replace(view, first_running_at=_earliest(view.first_running_at, event.time))
    elif event.phase is Phase.COMPLETED:
        view = replace(view, completed_at=_earliest(view.completed_at, event.time))
    elif event.phase is Phase.FAILED:
        view = replace(view, failed_at=_earliest(view.failed_at, event.time))
    if event.sequence > view.phase_sequence:
        if view.phase != event.phase.value:
            outcome = replace(outcome, left_phase=view.phase, entered_phase=event.phase.value)
        view = replace(view, phase=event.phase.value, phase_sequence=event.sequence,
                       phase_changed_at=event.time)
    return _observe_latencies(replace(outcome, view=view))


def _observe_latencies(outcome: Outcome) -> Outcome:
    view = outcome.view
    if view.submitted_at is None:
        return outcome
    if view.first_running_at is not None and not view.running_latency_observed:
        outcome = replace(outcome, submit_to_running=_seconds(view.submitted_at,
                                                              view.first_running_at))
        view = replace(view, running_latency_observed=True)
    if view.completed_at is not None and not view.completed_latency_observed:
        outcome = replace(outcome, submit_to_completed=_seconds(view.submitted_at,
                                                                view.completed_at))
        view = replace(view, completed_latency_observed=True)
    return replace(outcome, view=view)


def _earliest(current: datetime | None, new: datetime) -> datetime:
    return new if current is None or new < current else current


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())  # clocks of two services may disagree
