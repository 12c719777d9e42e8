"""Submission's workload view, fed by phase events, against a real PostgreSQL."""

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

import fairway_submission
from fairway_contracts import Phase, WorkloadType
from fairway_contracts.events import PhaseChanged, PodGroupChanged, PodSummary, SchedulingPending
from fairway_contracts.workloads import TIME_LIMIT_REASON
from fairway_store import migrate
from fairway_submission import repository as repo
from fairway_submission.workloads.view import to_workload, workload_json

pytestmark = pytest.mark.infra
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def conn(database_url):
    c = await asyncpg.connect(database_url)
    await migrate(c, "submission", Path(fairway_submission.__file__).parent / "migrations")
    await c.execute("SET search_path TO submission")
    from fairway_store.pool import _init_connection

    await _init_connection(c)
    yield c
    await c.close()


async def new_workload(conn) -> str:
    project, _ = await repo.ensure_project(conn, "default")
    wid = uuid.uuid4()
    assert await repo.insert_workload(
        conn, workload_id=wid, name=f"w-{wid.hex[:6]}", project=project, workload_type="training",
        submitted={"image": "busybox"}, effective={"image": "busybox", "pods": 1},
        created_by="admin", created_at=T0)
    return str(wid)


def transition(wid: str, sequence: int, previous: Phase | None, phase: Phase,
               seconds: float) -> PhaseChanged:
    return PhaseChanged(event_id=f"{wid}:{sequence}", workload_id=wid, name="w",
                        project="default", workload_type=WorkloadType.TRAINING,
                        sequence=sequence, previous_phase=previous, phase=phase,
                        reason="r", message=f"now {phase}", time=T0 + timedelta(seconds=seconds))


async def test_a_redelivered_transition_changes_nothing(conn):
    wid = await new_workload(conn)
    running = transition(wid, 2, Phase.PENDING, Phase.RUNNING, 5)
    assert await repo.apply_phase(conn, running)
    before = await repo.get_workload(conn, wid)
    assert not await repo.apply_phase(conn, running)
    after = await repo.get_workload(conn, wid)
    assert dict(before) == dict(after)
    history = await repo.phase_history(conn, uuid.UUID(wid))
    assert [h["sequence"] for h in history] == [2]


async def test_a_late_older_transition_never_overwrites_a_newer_phase(conn):
    wid = await new_workload(conn)
    await repo.apply_phase(conn, transition(wid, 3, Phase.RUNNING, Phase.COMPLETED, 20))
    await repo.apply_phase(conn, transition(wid, 2, Phase.PENDING, Phase.RUNNING, 5))
    view = await repo.get_workload(conn, wid)
    assert view["phase"] == "Completed"
    history = await repo.phase_history(conn, uuid.UUID(wid))
    assert [h["sequence"] for h in history] == [2, 3], "history keeps both, in order"


async def test_running_time_accumulates_between_transitions(conn):
    wid = await new_workload(conn)
    await repo.apply_phase(conn, transition(wid, 2, Phase.PENDING, Phase.RUNNING, 10))
    await repo.apply_phase(conn, transition(wid, 3, Phase.RUNNING, Phase.COMPLETED, 25))
    view = await repo.get_workload(conn, wid)
    assert view["total_running_seconds"] == pytest.approx(15)
    assert view["total_pending_seconds"] == pytest.approx(10)


async def test_events_for_an_unknown_workload_are_ignored(conn):
    assert not await repo.apply_phase(
        conn, transition(str(uuid.uuid4()), 2, Phase.PENDING, Phase.RUNNING, 1))


def pod_group(wid: str, sequence: int, phase: Phase, node: str | None,
              seconds: float) -> PodGroupChanged:
    return PodGroupChanged(event_id=f"{wid}:group:{sequence}", workload_id=wid, name="w",
                           project="default", workload_type=WorkloadType.TRAINING,
                           sequence=sequence, phase=phase, time=T0 + timedelta(seconds=seconds),
                           pods=[] if node is None else [PodSummary(name="w-0", node=node,
                                                                    phase="Running", gpus=1)])


async def test_pods_follow_pod_group_events_between_phase_changes(conn):
    """A preempted workload goes Pending while its evicted pod still runs; the pod leaves
    later, with no phase change: the view's pods (and so its allocated GPUs) follow. Whichever
    stream is read first, the newer list wins; phase events still bring pod phases."""
    wid = await new_workload(conn)
    assert await repo.apply_pod_group(conn, pod_group(wid, 1, Phase.INITIALIZING, "node-1", 1))
    running = transition(wid, 4, Phase.INITIALIZING, Phase.RUNNING, 2).model_copy(
        update={"pods": [PodSummary(name="w-0", node="node-1", phase="Running", gpus=1)]})
    assert await repo.apply_phase(conn, running)
    [pod] = (await repo.get_workload(conn, wid))["pods"]
    assert pod["phase"] == "Running"  # no pod-group event says so; the phase event does
    # The pod leaves (t=12) and the pod-group event is read before the phase event of t=10.
    assert await repo.apply_pod_group(conn, pod_group(wid, 3, Phase.PENDING, None, 12))
    pending = transition(wid, 5, Phase.RUNNING, Phase.PENDING, 10).model_copy(
        update={"pods": [PodSummary(name="w-0", node="node-1", phase="Running", gpus=1)]})
    assert await repo.apply_phase(conn, pending)
    view = await repo.get_workload(conn, wid)
    assert view["phase"] == "Pending" and view["pods"] == []
    # An older or repeated pod-group event changes nothing.
    assert not await repo.apply_pod_group(conn, pod_group(wid, 2, Phase.RUNNING, "node-1", 11))
    assert not await repo.apply_pod_group(conn, pod_group(wid, 3, Phase.PENDING, None, 12))
    assert (await repo.get_workload(conn, wid))["pods"] == []


async def test_a_batch_of_transitions_gives_the_view_one_by_one_gives(conn):
    """The phase consumer applies a fetch at once: same history, phase, clocks and pods as
    applying each transition alone, with a late older one and a repeat in the batch."""
    alone, batched = await new_workload(conn), await new_workload(conn)

    def sequence(wid: str) -> list[PhaseChanged]:
        return [transition(wid, 1, None, Phase.PENDING, 0),
                transition(wid, 3, Phase.INITIALIZING, Phase.RUNNING, 10),
                transition(wid, 2, Phase.PENDING, Phase.INITIALIZING, 4),  # late, older
                transition(wid, 4, Phase.RUNNING, Phase.DEGRADED, 20),
                transition(wid, 4, Phase.RUNNING, Phase.DEGRADED, 20),  # a repeat
                transition(wid, 5, Phase.DEGRADED, Phase.COMPLETED, 32)]

    for event in sequence(alone):
        await repo.apply_phase(conn, event)
    async with conn.transaction():
        await repo.apply_phases(conn, sequence(batched))
    fields = ("phase", "phase_sequence", "phase_message", "total_running_seconds",
              "total_pending_seconds", "pods")
    one, many = await repo.get_workload(conn, alone), await repo.get_workload(conn, batched)
    assert {f: one[f] for f in fields} == {f: many[f] for f in fields}
    assert many["phase"] == "Completed" and many["total_running_seconds"] == pytest.approx(22)
    assert ([h["sequence"] for h in await repo.phase_history(conn, uuid.UUID(batched))]
            == [1, 2, 3, 4, 5])


async def test_a_batch_with_a_rules_stop_sets_the_desired_phase_as_one_by_one_does(conn):
    """A time or idle limit's stop (lifecycle stops the workload; the view keeps it stopped)
    is applied at once for the whole fetch, as each transition alone would: a stop followed
    by a repeat of it; a stop arriving after a newer transition (the workload was resumed
    since: it stays Running); a workload with no stop at all."""
    def stop(wid: str, sequence: int, seconds: float) -> PhaseChanged:
        return transition(wid, sequence, Phase.RUNNING, Phase.STOPPING, seconds).model_copy(
            update={"reason": TIME_LIMIT_REASON})

    def sequences(wids: list[str]) -> list[PhaseChanged]:
        stopped, late, running = wids
        return [transition(stopped, 1, None, Phase.RUNNING, 0), stop(stopped, 2, 5),
                stop(stopped, 2, 5),
                transition(late, 1, None, Phase.RUNNING, 0),
                transition(late, 3, Phase.PENDING, Phase.RUNNING, 9), stop(late, 2, 5),
                transition(running, 1, None, Phase.RUNNING, 0)]

    alone = [await new_workload(conn) for _ in range(3)]
    batched = [await new_workload(conn) for _ in range(3)]
    for event in sequences(alone):
        await repo.apply_phase(conn, event)
    async with conn.transaction():
        await repo.apply_phases(conn, sequences(batched))
    desired = [(await repo.get_workload(conn, wid))["desired_phase"] for wid in batched]
    assert desired == [(await repo.get_workload(conn, wid))["desired_phase"] for wid in alone]
    assert desired == ["Stopped", "Running", "Running"]


async def test_a_batch_of_pod_group_events_keeps_the_newest_list(conn):
    wid = await new_workload(conn)
    async with conn.transaction():
        await repo.apply_pod_groups(conn, [pod_group(wid, 1, Phase.INITIALIZING, "node-1", 1),
                                           pod_group(wid, 3, Phase.PENDING, None, 12),
                                           pod_group(wid, 2, Phase.RUNNING, "node-1", 5)])
    view = await repo.get_workload(conn, wid)
    assert view["pods"] == [] and view["pods_sequence"] == 3


def _life(wid: str) -> tuple[list[PhaseChanged], list[PodGroupChanged]]:
    """A workload's events as lifecycle publishes them: each pod group event that goes out
    with a phase event listing the same pods names it; one (the pod evicted and gone while the
    phase stays) goes out alone."""
    def pods(node: str | None, phase: str) -> list[PodSummary]:
        return [] if phase == "gone" else [PodSummary(name="w-0", node=node, phase=phase, gpus=1)]

    life = [  # (phase sequence or None, phase, group: whether a group event goes too, pods)
        (2, Phase.PENDING, True, pods(None, "Pending")),
        (3, Phase.INITIALIZING, True, pods("node-1", "Pending")),
        (4, Phase.RUNNING, False, pods("node-1", "Running")),
        (5, Phase.PENDING, True, pods("node-1", "Running")),  # preempted, pod leaving
        (None, None, True, pods(None, "gone")),
    ]
    phases: list[PhaseChanged] = []
    groups: list[PodGroupChanged] = []
    previous = Phase.CREATING
    for at, (sequence, phase, group, listed) in enumerate(life, start=1):
        if sequence is not None:
            phases.append(transition(wid, sequence, previous, phase, at).model_copy(
                update={"pods": listed}))
            previous = phase
        if group:
            groups.append(pod_group(wid, len(groups) + 1, previous, None, at).model_copy(
                update={"pods": listed, "phase_sequence": sequence}))
    return phases, groups


async def test_pod_group_events_a_phase_event_carries_are_not_written_and_the_view_ends_alike(
        conn):
    """Whatever order the two consumers read the two streams in (each in its own order, a
    fetch at a time), the view ends with the pods it ends with when every pod group event is
    written; and the events carried by phase events write nothing."""
    phases, groups = _life("x")
    assert [g.phase_sequence for g in groups] == [2, 3, 5, None]
    assert repo.pod_groups_to_write(groups) == [groups[3]]
    n, m = len(phases), len(groups)
    for reads in itertools.combinations(range(n + m), m):  # where the group events come
        ends = []
        for carried in (True, False):
            wid = await new_workload(conn)
            ps, gs = _life(wid)
            if not carried:
                gs = [g.model_copy(update={"phase_sequence": None}) for g in gs]
            ps.reverse(), gs.reverse()
            for i in range(n + m):
                if i in reads:
                    await repo.apply_pod_groups(conn, [gs.pop()])
                else:
                    await repo.apply_phases(conn, [ps.pop()])
            view = await repo.get_workload(conn, wid)
            ends.append((view["phase"], view["pods"]))
        assert ends[0] == ends[1] == (Phase.PENDING.value, []), reads


async def test_a_batch_that_fails_changes_nothing(conn):
    """A fetch is applied in one statement: when one transition cannot be stored, none of the
    batch is (the bus then retries each message alone)."""
    wid = await new_workload(conn)
    good = transition(wid, 1, None, Phase.PENDING, 0)
    bad = transition(wid, 2, Phase.PENDING, Phase.RUNNING, 5).model_copy(
        update={"reason": "nul\x00"})  # PostgreSQL text cannot hold it
    with pytest.raises(asyncpg.PostgresError):
        await repo.apply_phases(conn, [good, bad])
    assert await repo.phase_history(conn, uuid.UUID(wid)) == []
    view = await repo.get_workload(conn, wid)
    assert view["phase_sequence"] == 0 and view["pending_since"] == T0
    with pytest.raises(asyncpg.PostgresError):
        await repo.apply_pod_groups(conn, [pod_group(wid, 1, Phase.RUNNING, "node-1", 1),
                                           pod_group(wid, 2, Phase.RUNNING, "node\x00", 2)])
    assert (await repo.get_workload(conn, wid))["pods_sequence"] == 0


def waiting(wid: str, seconds: float, code: str | None) -> SchedulingPending:
    return SchedulingPending(workload_id=wid, project="default", pending=code is not None,
                             code=code, message=code and f"{code} now",
                             changed_at=T0 + timedelta(seconds=seconds))


async def test_a_batch_of_pending_reasons_keeps_each_workloads_newest(conn):
    first, second = await new_workload(conn), await new_workload(conn)
    await repo.apply_pendings(conn, [waiting(first, 1, "OverQuota"),
                                     waiting(second, 1, "OverFairShare"),
                                     waiting(first, 3, None),  # placed
                                     waiting(first, 2, "NoFittingNode"),  # late: older news
                                     waiting("not-a-uuid", 4, "OverQuota")])
    placed, waits = await repo.get_workload(conn, first), await repo.get_workload(conn, second)
    assert placed["scheduler_code"] is None and placed["scheduler_changed_at"] == T0 + timedelta(
        seconds=3)
    assert (waits["scheduler_code"], waits["scheduler_message"]) == ("OverFairShare",
                                                                     "OverFairShare now")
    # one at a time, as a redelivery comes: older news changes nothing
    assert not await repo.apply_pending(conn, waiting(first, 2, "OverQuota"))
    assert await repo.apply_pending(conn, waiting(second, 5, None))
    assert (await repo.get_workload(conn, second))["scheduler_code"] is None


async def test_a_submission_answers_the_same_json_the_view_shows(conn, monkeypatch):
    monkeypatch.setattr("fairway_submission.workloads.view.utcnow",
                        lambda: T0 + timedelta(seconds=7.1234))  # times the same in both
    wid = await new_workload(conn)
    await repo.apply_pod_groups(conn, [pod_group(wid, 1, Phase.RUNNING, "node-1", 1)])
    row = await repo.get_workload(conn, wid)
    assert json.loads(workload_json(row)) == to_workload(row)
