"""Allocation's classes of waiting workloads, kept between cycles in the ledger
(`allocate.WaitingClasses`), against the classes found afresh as `Allocate.run` found them every
cycle before (every waiting workload's class key, its pods waiting in natural order): cycle
after cycle on one ledger, with workloads that arrive, leave, are made again or changed, pods
bound and evicted as decided, pods held or released without the workload's object changing,
nodes made ready or not, a pool that comes and goes, and a missing pool's grace running out as
the cycle's time moves. A cycle changes only its own copies: deciding twice on the same ledger
decides alike, and the cycle decides as on a ledger built afresh (same placements, pending
reasons and their order)."""

from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairway_scheduler.core import (
    ClusterSnapshot,
    DisruptionSettings,
    Node,
    NodePool,
    Workload,
    decide,
)
from fairway_scheduler.core.actions.allocate import (
    Allocate,
    WaitingClasses,
    _Asks,
    _class_key,
    _told_order,
)
from fairway_scheduler.core.framework import Session
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.nodes import natural
from tests.scheduler.test_disruption_walk import alike
from tests.scheduler.test_scheduler_properties import T0
from tests.scheduler.test_waiting_runs import Changes

# what a class reads of its workloads, besides its members
READ = ("project", "pools", "held", "gang", "short", "waiting", "unschedulable", "gangs",
        "extras", "alike", "probe")


def classes_afresh(session: Session) -> dict:
    """Each waiting workload's class key and pods, as `Allocate.run` found them every cycle."""
    out = {}
    for w in session.waiting:
        pods = sorted(w.waiting_pods, key=natural)
        out[w.id] = (id(w), _class_key(w, session.requests[w.id], session.target_pools(w),
                                       session.held.get(w.id, 0), pods,
                                       session.unschedulable.get(w.id)), pods)
    return out


def check(kept: WaitingClasses, session: Session) -> None:
    want = classes_afresh(session)
    assert {wid: (id(kept.workload[wid]), kept.asked[wid].key, kept.pods[wid])
            for wid in kept.asked} == want
    members: dict[tuple, set[str]] = {}
    for wid, (_, key, _) in want.items():
        members.setdefault(key, set()).add(wid)
    assert {key: set(asks.members) for key, asks in kept.classes.items()} == members
    for key, asks in kept.classes.items():
        assert asks.key == key and asks.needs == [None, None]
        assert all(kept.asked[wid] is asks for wid in asks.members)
        assert all(w is kept.workload[wid] for wid, w in asks.members.items())
        assert asks.members.order == sorted(map(_told_order, asks.members.values()))
        first = next(iter(asks.members.values()))
        held = session.held.get(first.id, 0)
        fresh = _Asks.of(first, session.requests[first.id], session.target_pools(first),
                         held, max(0, first.min_pods - held), kept.pods[first.id],
                         session.unschedulable.get(first.id))
        assert asks.request is fresh.request
        assert [getattr(asks, a) for a in READ] == [getattr(fresh, a) for a in READ]


ops = st.lists(st.tuples(st.sampled_from(["arrive", "leave", "again", "change", "hold",
                                          "release", "node", "pool", "missing", "time",
                                          "twice"]),
                         st.integers(0, 1000)), max_size=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alike(), st.lists(ops, min_size=1, max_size=5))
def test_the_kept_classes_are_those_found_afresh(snapshot, cycles):
    changes = Changes(replace(snapshot, disruption=replace(snapshot.disruption,
                                                           missing_pool_grace=60)),
                      with_pool=True)
    ledger = changes.ledger
    for steps in [[], *cycles]:
        for op, i in steps:
            changes.apply(op, i)
        snapshot = changes.cycle_snapshot()
        session = Session(snapshot, ledger)
        Allocate(session)._find_classes()
        assert isinstance(ledger.asks, WaitingClasses)
        check(ledger.asks, session)
        kept = decide(snapshot, ledger)
        if any(op == "twice" for op, _ in steps):
            # what the first cycle placed did not stay in the kept classes
            assert decide(snapshot, ledger) == kept
        assert kept == decide(snapshot)
        assert list(kept.pending) == list(decide(snapshot, Ledger.of(snapshot)).pending)
        changes.settle(kept)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alike())
def test_the_same_workload_twice_is_found_for_the_cycle_alone(snapshot):
    """A snapshot with a workload id twice: nothing kept, and the next cycle finds all."""
    ledger = Ledger.of(snapshot)
    w = next(w for w in snapshot.workloads if w.waiting_pods)
    twice = replace(snapshot, workloads=(*snapshot.workloads, replace(w)))
    decide(twice, ledger)
    assert isinstance(ledger.asks, WaitingClasses) and not ledger.asks.asked
    assert decide(snapshot, ledger) == decide(snapshot)
    session = Session(snapshot, ledger)
    Allocate(session)._find_classes()
    check(ledger.asks, session)


def test_a_missing_pools_grace_running_out_finds_the_class_again():
    """The same workload object, unschedulable once its missing pool's grace has run out: its
    class is found again (it is told why it never fits)."""
    nodes = (Node("n1", "a", True, 4, cpu_millis=8000, memory_mib=8192),)
    w = Workload("w", "x", 1, T0, 1, waiting_pods=("p0",), node_pools=("gone",))
    ledger = Ledger(nodes)
    for at, unschedulable in ((10, False), (100, True)):
        snapshot = ClusterSnapshot(nodes, (w,), pools=(NodePool("a"),),
                                   now=T0 + timedelta(seconds=at),
                                   disruption=DisruptionSettings(missing_pool_grace=60))
        session = Session(snapshot, ledger)
        Allocate(session)._find_classes()
        check(ledger.asks, session)
        assert [p.unschedulable for p in decide(snapshot, ledger).pending] == [unschedulable]


moments = st.one_of(st.datetimes(), st.datetimes(timezones=st.timezones()))


@given(st.lists(st.tuples(st.integers(-10**6, 10**6), moments), min_size=2, max_size=20),
       st.booleans())
def test_a_workloads_place_orders_as_its_priority_then_its_submission_time(
        asks: list, aware: bool) -> None:
    """`_told_order`'s integer stands for (-priority, submitted_at) exactly: highest priority
    first, then the earlier submission, for any datetime (before 1970, the last one, naive or
    with any zone, as long as all are alike)."""
    asks = [(p, t.replace(tzinfo=None) if not aware else
             (t if t.tzinfo is not None else t.replace(tzinfo=T0.tzinfo))) for p, t in asks]
    if aware:
        asks = [(p, t) for p, t in asks if _utc_fits(t)]
    workloads = [Workload(f"w{i}", "p", p, t, 1) for i, (p, t) in enumerate(asks)]
    assert (sorted(workloads, key=_told_order)
            == sorted(workloads, key=lambda w: (-w.priority, w.submitted_at, w.id)))


def _utc_fits(moment) -> bool:  # an aware datetime whose UTC time is a datetime too
    try:
        moment.astimezone(T0.tzinfo)
    except OverflowError:
        return False
    return True
