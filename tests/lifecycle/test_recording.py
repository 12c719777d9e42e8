"""What recording the machine's steps writes: phase events numbered on from the recorded
sequence, a pod group event when the group moved or the workload ended, and the row's new
state."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fairway_contracts import Phase, WorkloadType
from fairway_lifecycle.core.fold import PhaseResult, WorkloadInfo
from fairway_lifecycle.core.machine import Step
from fairway_lifecycle.core.recording import Named, Recorded, plan
from tests.lifecycle.podfactory import pod

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMED = Named("w1", "bert", "team-a", WorkloadType.TRAINING)
FOLDED = WorkloadInfo("w1", "bert", "team-a", WorkloadType.TRAINING)
CREATING = Recorded(Phase.CREATING, 1, "Running", False, False, 0, "")


def step(phase: Phase | None, signature: str = "p@node-1", attempt: int = 1,
         at: int = 0) -> Step:
    result = None if phase is None else PhaseResult(phase, phase.value, f"now {phase.value}")
    return Step("w1", None, result, attempt, signature,
                [pod("p", workload="w1", stage="running", node="node-1")],
                T0 + timedelta(seconds=at))


def test_each_step_that_moves_the_phase_is_one_event_numbered_on():
    steps = [step(Phase.PENDING, "p@"), step(Phase.INITIALIZING, at=1),
             step(Phase.RUNNING, at=2)]
    r = plan(NAMED, steps, CREATING, FOLDED)
    assert [(e.sequence, e.previous_phase, e.phase) for e in r.published] == [
        (2, Phase.CREATING, Phase.PENDING), (3, Phase.PENDING, Phase.INITIALIZING),
        (4, Phase.INITIALIZING, Phase.RUNNING)]
    assert [o.msg_id for o in r.outgoing] == ["phase:w1:2", "phase:w1:3", "phase:w1:4",
                                              "podgroup:w1:1"]
    assert r.outgoing[0].subject == "fairway.phase.team-a.w1.Pending"
    group = r.outgoing[-1].event
    assert (group.sequence, group.phase, [p.name for p in group.pods]) == (
        1, Phase.RUNNING, ["p"])
    p = r.progress
    assert (p.phase, p.reason, p.sequence, p.podgroup_sequence, p.podgroup_signature) == (
        Phase.RUNNING, "Running", 4, 1, "p@node-1")
    assert r.delete_after is None and not r.clear_preempted and r.clear_resuming is None
    assert not r.writes_more  # recorded in one statement


def test_a_step_to_the_recorded_phase_or_past_the_end_publishes_nothing():
    recorded = replace(CREATING, podgroup_signature="p@node-1")
    r = plan(NAMED, [step(Phase.CREATING)], recorded, FOLDED)
    assert r.outgoing == [] and r.progress.phase is None and r.progress.sequence == 1
    over = Recorded(Phase.COMPLETED, 5, "Running", False, False, 2, "p@node-1")
    r = plan(NAMED, [step(Phase.RUNNING, "p@node-1/done")], over, FOLDED)
    # the phase stays; the pod group's move (its last pod finished) is announced
    assert r.published == [] and [o.msg_id for o in r.outgoing] == ["podgroup:w1:3"]


def test_an_end_is_announced_to_the_scheduler_and_starts_the_auto_deletion_clock():
    running = Recorded(Phase.RUNNING, 4, "Running", False, False, 1, "p@node-1")
    named = replace(NAMED, auto_deletion_seconds=60)
    r = plan(named, [step(Phase.COMPLETED, at=10)], running, FOLDED)
    assert [o.msg_id for o in r.outgoing] == ["phase:w1:5", "podgroup:w1:2"]
    assert r.delete_after == T0 + timedelta(seconds=70)
    assert r.writes_more  # recorded under the row's lock, with the deletion time


def test_placed_again_ends_the_preemption_and_pods_made_again_end_the_resumption():
    preempted = Recorded(Phase.PENDING, 5, "Running", True, True, 2, "")
    r = plan(NAMED, [step(Phase.INITIALIZING)], preempted,
             replace(FOLDED, preempted_pods=frozenset({"uid-p-1"})))
    assert r.clear_preempted and r.preempted_pods == {"uid-p-1"}
    assert r.clear_resuming == "Running"
    assert r.writes_more
    r = plan(NAMED, [step(Phase.RESUMING, "")], preempted, replace(FOLDED, preempted=True))
    assert not r.clear_preempted and r.clear_resuming is None


def test_a_pod_group_event_names_the_phase_event_that_lists_the_same_pods():
    # The last step moved the phase: its phase event lists the pods the group event lists,
    # at the same time, so a view following phase events may leave the group event be.
    steps = [step(Phase.PENDING, "p@"), step(Phase.INITIALIZING, at=1)]
    r = plan(NAMED, steps, CREATING, FOLDED)
    group, last_phase = r.outgoing[-1].event, r.published[-1]
    assert group.phase_sequence == last_phase.sequence == 3
    assert (group.pods, group.time) == (last_phase.pods, last_phase.time)

    # The last step moved the pods, not the phase (a pod bound while still Pending; a pod of
    # an ended workload finishing): the group event is the only news of those pods.
    steps = [step(Phase.PENDING, "p@"), step(Phase.PENDING, "p@node-1", at=1)]
    r = plan(NAMED, steps, CREATING, FOLDED)
    assert [o.msg_id for o in r.outgoing] == ["phase:w1:2", "podgroup:w1:1"]
    assert r.outgoing[-1].event.phase_sequence is None
    over = Recorded(Phase.COMPLETED, 5, "Running", False, False, 2, "p@node-1")
    r = plan(NAMED, [step(Phase.RUNNING, "p@node-1/done")], over, FOLDED)
    assert r.outgoing[-1].event.phase_sequence is None
