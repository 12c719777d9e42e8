"""The pure fold of submissions and phase events into a workload's projection and the series
it records."""

from datetime import UTC, datetime, timedelta

import pytest

from fairway_contracts.events import PhaseChanged, WorkloadSubmitted
from fairway_contracts.workloads import EffectiveSpec, Phase, WorkloadType
from fairway_metrics.domain import Outcome, WorkloadView, on_phase_changed, on_submitted

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def submitted(seconds: float = 0) -> WorkloadSubmitted:
    return WorkloadSubmitted(
        event_id="s", workload_id="w1", name="job", project="team-a", project_id="p1",
        workload_type=WorkloadType.TRAINING, created_at=at(seconds), created_by="alice",
        spec=EffectiveSpec(image="x", priority_class="train", preemptible=True, backoff_limit=6),
    )


def phase(sequence: int, phase: Phase, seconds: float) -> PhaseChanged:
    return PhaseChanged(
        event_id=f"e{sequence}", workload_id="w1", name="job", project="team-a",
        workload_type=WorkloadType.TRAINING, sequence=sequence, previous_phase=None,
        phase=phase, reason="", message="", time=at(seconds),
    )


def fold(events) -> list[Outcome]:
    view = WorkloadView("w1", "team-a", "training")
    outcomes = []
    for event in events:
        outcome = (on_submitted(view, event) if isinstance(event, WorkloadSubmitted)
                   else on_phase_changed(view, event))
        outcomes.append(outcome)
        view = outcome.view
    return outcomes


# events in order,  then per event: (gauge move, transition, submit→running, submit→completed)
SCENARIOS = {
    "submitted, then through to completion": (
        [submitted(0), phase(1, Phase.CREATING, 1), phase(2, Phase.PENDING, 2),
         phase(3, Phase.RUNNING, 10), phase(4, Phase.COMPLETED, 70)],
        [(None, None, None, None),
         ((None, "Creating"), "Creating", None, None),
         (("Creating", "Pending"), "Pending", None, None),
         (("Pending", "Running"), "Running", 10.0, None),
         (("Running", "Completed"), "Completed", None, 70.0)],
    ),
    "running before the submission arrives: observed once both are known": (
        [phase(1, Phase.RUNNING, 20), submitted(5)],
        [((None, "Running"), "Running", None, None),
         (None, None, 15.0, None)],
    ),
    "running again after a degradation is not observed twice": (
        [submitted(0), phase(1, Phase.RUNNING, 3), phase(2, Phase.DEGRADED, 4),
         phase(3, Phase.RUNNING, 5)],
        [(None, None, None, None),
         ((None, "Running"), "Running", 3.0, None),
         (("Running", "Degraded"), "Degraded", None, None),
         (("Degraded", "Running"), "Running", None, None)],
    ),
    "a late, older event counts as a transition but leaves the current phase": (
        [submitted(0), phase(2, Phase.PENDING, 2), phase(1, Phase.CREATING, 1)],
        [(None, None, None, None),
         ((None, "Pending"), "Pending", None, None),
         (None, "Creating", None, None)],
    ),
    "a second submission of the same workload changes nothing": (
        [submitted(0), submitted(9)],
        [(None, None, None, None), (None, None, None, None)],
    ),
    "failure: no completion latency": (
        [submitted(0), phase(1, Phase.FAILED, 4)],
        [(None, None, None, None), ((None, "Failed"), "Failed", None, None)],
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_fold(name):
    events, expected = SCENARIOS[name]
    got = [
        (None if o.entered_phase is None else (o.left_phase, o.entered_phase), o.transition,
         o.submit_to_running, o.submit_to_completed)
        for o in fold(events)
    ]
    assert got == expected


def test_the_projection_keeps_the_times():
    view = fold([submitted(0), phase(1, Phase.RUNNING, 10), phase(2, Phase.FAILED, 30)])[-1].view
    assert (view.submitted_at, view.first_running_at, view.failed_at, view.completed_at) == (
        at(0), at(10), at(30), None)
    assert (view.phase, view.phase_sequence) == ("Failed", 2)
