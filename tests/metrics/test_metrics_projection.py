"""The pure fold of submissions and phase events into a workload's projection and the series
it records."""

from datetime import UTC, datetime, timedelta

import pytest

from fairway_contracts.events import PhaseChanged, ThirdPartyWorkloadChanged, WorkloadSubmitted
from fairway_contracts.workloads import Compute, EffectiveSpec, Phase, PodSummary, WorkloadType
from fairway_metrics.core.projection import newest
from fairway_metrics.core.workloads import (
    Outcome,
    WorkloadView,
    fold_batch,
    on_phase_changed,
    on_submitted,
    on_third_party,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def submitted(seconds: float = 0) -> WorkloadSubmitted:
    return WorkloadSubmitted(
        event_id="s", workload_id="w1", name="job", project="team-a", project_id="p1",
        workload_type=WorkloadType.TRAINING, created_at=at(seconds), created_by="alice",
        spec=EffectiveSpec(image="x", priority_class="train", preemptible=True, backoff_limit=6),
    )


def phase(sequence: int, phase: Phase, seconds: float, pods=()) -> PhaseChanged:
    return PhaseChanged(
        event_id=f"e{sequence}", workload_id="w1", name="job", project="team-a",
        workload_type=WorkloadType.TRAINING, sequence=sequence, previous_phase=None,
        phase=phase, reason="", message="", time=at(seconds), pods=list(pods),
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


# events in order, then per event: (phase after it, transition, submit→running,
# submit→completed)
SCENARIOS = {
    "submitted, then through to completion": (
        [submitted(0), phase(1, Phase.CREATING, 1), phase(2, Phase.PENDING, 2),
         phase(3, Phase.RUNNING, 10), phase(4, Phase.COMPLETED, 70)],
        [(None, None, None, None),
         ("Creating", "Creating", None, None),
         ("Pending", "Pending", None, None),
         ("Running", "Running", 10.0, None),
         ("Completed", "Completed", None, 70.0)],
    ),
    "running before the submission arrives: observed once both are known": (
        [phase(1, Phase.RUNNING, 20), submitted(5)],
        [("Running", "Running", None, None),
         ("Running", None, 15.0, None)],
    ),
    "running again after a degradation is not observed twice": (
        [submitted(0), phase(1, Phase.RUNNING, 3), phase(2, Phase.DEGRADED, 4),
         phase(3, Phase.RUNNING, 5)],
        [(None, None, None, None),
         ("Running", "Running", 3.0, None),
         ("Degraded", "Degraded", None, None),
         ("Running", "Running", None, None)],
    ),
    "a late, older event counts as a transition but leaves the current phase": (
        [submitted(0), phase(2, Phase.PENDING, 2), phase(1, Phase.CREATING, 1)],
        [(None, None, None, None),
         ("Pending", "Pending", None, None),
         ("Pending", "Creating", None, None)],
    ),
    "a second submission of the same workload changes nothing": (
        [submitted(0), submitted(9)],
        [(None, None, None, None), (None, None, None, None)],
    ),
    "failure: no completion latency": (
        [submitted(0), phase(1, Phase.FAILED, 4)],
        [(None, None, None, None), ("Failed", "Failed", None, None)],
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_fold(name):
    events, expected = SCENARIOS[name]
    got = [
        (o.view.phase, o.transition,
         o.submit_to_running, o.submit_to_completed)
        for o in fold(events)
    ]
    assert got == expected


def test_the_projection_keeps_the_times():
    view = fold([submitted(0), phase(1, Phase.RUNNING, 10), phase(2, Phase.FAILED, 30)])[-1].view
    assert (view.submitted_at, view.first_running_at, view.failed_at, view.completed_at) == (
        at(0), at(10), at(30), None)
    assert (view.phase, view.phase_sequence) == ("Failed", 2)


def test_pending_and_running_time_add_up_over_stretches():
    view = fold([submitted(0), phase(1, Phase.CREATING, 1), phase(2, Phase.PENDING, 2),
                 phase(3, Phase.RUNNING, 10), phase(4, Phase.DEGRADED, 20),
                 phase(5, Phase.PENDING, 25), phase(6, Phase.RUNNING, 40)])[-1].view
    assert (view.pending_seconds, view.running_seconds) == (8 + 15, 15)
    # the open stretch counts up to the moment asked about
    assert view.open_seconds(at(50)) == (23, 25)


def test_gpus_asked_for_by_the_gang_and_held_by_its_live_bound_pods():
    event = submitted(0).model_copy(update={"spec": EffectiveSpec(
        image="x", priority_class="train", preemptible=True, backoff_limit=6, pods=3,
        compute=Compute(gpu_devices_request=2), node_pools=["a100", "default"])})
    pods = [PodSummary(name="w-0", node="n1", phase="Running", gpus=2),
            PodSummary(name="w-1", node="n2", phase="Running", gpus=2),
            PodSummary(name="w-2", node=None, phase="Pending", gpus=2),
            PodSummary(name="w-old", node="n1", phase="Failed", gpus=2)]
    outcomes = fold([event, phase(1, Phase.RUNNING, 3, pods), phase(2, Phase.COMPLETED, 9, pods)])
    running, done = outcomes[1].view, outcomes[2].view
    assert running.gpus_requested == 6 and running.node_pools == ("a100", "default")
    assert running.placements == (("n1", 2.0), ("n2", 2.0)) and running.gpus_allocated == 4
    assert done.finished and done.gpus_allocated == 0


def test_a_deleted_workload_leaves_the_current_figures_but_not_the_totals():
    from fairway_metrics.core.projection import Projection

    view = fold([submitted(0), phase(1, Phase.RUNNING, 0), phase(2, Phase.DELETED, 10)])[-1].view
    projection = Projection(workloads={"w1": view})
    snapshot = projection.snapshot(at(100))
    assert snapshot.rows == []
    assert [r.running_total for r in snapshot.all_rows] == [10]


def test_nodes_are_in_pools_by_the_schedulers_rule():
    from fairway_contracts.events import NodeInventory, NodePoolChanged
    from fairway_metrics.core.projection import NODE, NODEPOOL, Projection

    projection = Projection()
    for name, label in (("n1", "a100"), ("n2", "t4")):
        projection.put(NODE, name, NodeInventory(
            name=name, node_pool=label, ready=True, gpus=8, labels={"kind": label},
            observed_at=at(0)))
    # no labelled pool yet: what the inventory says
    assert projection.snapshot(at(1)).node_pool == {"n1": "a100", "n2": "t4"}
    projection.put(NODEPOOL, "default", NodePoolChanged(event_id="d", name="default"))
    assert projection.snapshot(at(1)).node_pool == {"n1": "a100", "n2": "t4"}
    # a labelled pool takes its nodes; `default` the rest
    projection.put(NODEPOOL, "fast", NodePoolChanged(event_id="f", name="fast",
                                                     label_key="kind", label_value="a100"))
    snapshot = projection.snapshot(at(1))
    assert snapshot.node_pool == {"n1": "fast", "n2": "default"}
    assert snapshot.pool_figures()["fast"]["gpus"] == 8


def other(event: PhaseChanged) -> PhaseChanged:
    return event.model_copy(update={"workload_id": "w2"})


def test_a_batch_folds_each_workloads_events_in_order_into_one_view_each():
    empty = {wid: WorkloadView(wid, "team-a", "training") for wid in ("w1", "w2")}
    events = [phase(1, Phase.PENDING, 1), other(phase(1, Phase.RUNNING, 2)),
              phase(2, Phase.RUNNING, 3), phase(3, Phase.COMPLETED, 9),
              other(phase(2, Phase.DEGRADED, 4))]
    folded = fold_batch(empty, events, on_phase_changed)
    # the same views as event by event
    assert folded.views["w1"] == fold([phase(1, Phase.PENDING, 1), phase(2, Phase.RUNNING, 3),
                                       phase(3, Phase.COMPLETED, 9)])[-1].view
    assert (folded.views["w2"].phase, folded.views["w2"].phase_sequence) == ("Degraded", 2)
    # every event counted, in order
    assert [o.transition for o in folded.outcomes] == [
        "Pending", "Running", "Running", "Completed", "Degraded"]
    assert folded.finished == {"w1"}


def test_a_batch_writes_only_the_workloads_it_changed():
    done = fold([submitted(0)])[-1].view
    folded = fold_batch({"w1": done}, [submitted(5)], on_submitted)
    assert folded.views == {} and folded.finished == set()
    assert [o.transition for o in folded.outcomes] == [None]


def test_a_workload_finished_mid_batch_is_finished_even_if_it_lives_again():
    empty = {"w1": WorkloadView("w1", "team-a", "training")}
    folded = fold_batch(empty, [phase(1, Phase.STOPPED, 1), phase(2, Phase.RESUMING, 2)],
                        on_phase_changed)
    assert folded.views["w1"].phase == "Resuming" and folded.finished == {"w1"}


def test_the_newest_value_of_each_key_in_a_batch():
    assert newest([("q1", 5, "a"), ("q2", 6, "b"), ("q1", 7, "c"), ("q2", 3, "d")]) == {
        "q1": (7, "c"), "q2": (6, "b")}


def test_fractions_count_by_portion_and_a_reclaim_is_recorded_with_its_node():
    spec = EffectiveSpec(image="x", priority_class="train", preemptible=True, backoff_limit=6,
                         pods=2, compute=Compute(gpu_request_type="portion",
                                                 gpu_portion_request=0.25,
                                                 gpu_devices_request=2))
    event = submitted(0).model_copy(update={"spec": spec})
    view = on_submitted(WorkloadView("w1", "team-a", "training"), event).view
    assert view.gpus_requested == 1.0  # 2 pods x 0.25 of each of 2 devices
    pods = [PodSummary(name="p0", node="n1", phase="Running", gpu_devices=[0, 1],
                       gpu_portion=0.25),
            PodSummary(name="p1", node="n2", phase="Running", gpus=1)]
    running = on_phase_changed(view, phase(1, Phase.RUNNING, 5, pods))
    assert running.view.gpus_allocated == 1.5
    assert running.gpu_memory_reclaimed is None
    reclaimed = phase(2, Phase.DEGRADED, 9, pods).model_copy(
        update={"reason": "GpuMemoryReclaimed"})
    outcome = on_phase_changed(running.view, reclaimed)
    assert outcome.gpu_memory_reclaimed == ("team-a", "n1")


def third_party(phase_: Phase, seconds: float, nodes: list[str | None],
                replicas: int) -> ThirdPartyWorkloadChanged:
    return ThirdPartyWorkloadChanged(
        event_id=f"t{seconds}", workload_id="w1", kind="Deployment", api_version="apps/v1",
        name="web", namespace="ml", owner_uid="u", grouping="elastic", min_members=1,
        project="team-a", priority_class="train", priority=50, preemptible=True,
        pods=[f"web-{i}" for i in range(len(nodes))], replicas=replicas, gpus_per_pod=1,
        phase=phase_, observed_at=at(seconds),
        pod_summaries=[PodSummary(name=f"web-{i}", node=n, gpus=1 if n else 0,
                                  phase="Running" if n else "Pending")
                       for i, n in enumerate(nodes)])


def test_a_third_party_workload_is_its_own_type_and_its_pods_follow_within_a_phase():
    view = on_submitted(WorkloadView("w1", "team-a", "training"),
                        submitted().model_copy(update={"third_party": True})).view
    assert view.workload_type == "thirdParty"
    pending = on_third_party(view, third_party(Phase.PENDING, 1, [None, None], 2))
    assert (pending.transition, pending.view.phase) == ("Pending", "Pending")
    running = on_third_party(pending.view, third_party(Phase.RUNNING, 5, ["n1", "n1"], 2))
    assert (running.transition, running.view.gpus_allocated) == ("Running", 2)
    assert running.submit_to_running == 5
    # reclaimed one pod, scaled to 3: the same phase, no transition; its stretch goes on
    later = on_third_party(running.view, third_party(Phase.RUNNING, 9, ["n1", None, None], 3))
    assert later.transition is None
    assert (later.view.gpus_allocated, later.view.gpus_requested) == (1, 3)
    assert later.view.phase_changed_at == at(5)
    # older news changes nothing
    assert on_third_party(later.view, third_party(Phase.PENDING, 2, [None], 1)).view == later.view
