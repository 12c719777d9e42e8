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
    Allocation,
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
from tests.scheduler.test_hold_index import settle
from tests.scheduler.test_scheduler_properties import T0

# what a class reads of its workloads, besides its members
READ = ("project", "pools", "held", "gang", "short", "waiting", "unschedulable", "gangs",
        "extras", "alike", "probe")


def classes_afresh(session: Session) -> dict:
    """Each waiting workload's class key and pods, as `Allocate.run` found them every cycle."""
    out = {}
    for w in session.waiting:
        pods = sorted(w.waiting_pods, key=natural)
        out[w.id] = (id(w), _class_key(w, session.requests[w.id], session.target_pools(w),
                                       session.held[w.id], pods,
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
        held = session.held[first.id]
        fresh = _Asks(first, session.requests[first.id], session.target_pools(first),
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
    ledger = Ledger.of(snapshot)
    workloads = {w.id: w for w in snapshot.workloads}
    allocations = {(a.workload_id, a.pod): a for a in snapshot.allocations}
    nodes = list(snapshot.nodes)
    extra = Node("c0", "c", True, 8, None, 40960, cpu_millis=16000, memory_mib=65536)
    ledger.put_node(extra)
    nodes.append(extra)
    snapshot = replace(snapshot, disruption=replace(snapshot.disruption,
                                                    missing_pool_grace=60))
    arrived = 0
    for changes in [[], *cycles]:
        twice = False
        for op, i in changes:
            waiting = sorted(wid for wid, w in workloads.items()
                             if w.waiting_pods and not any(k[0] == wid for k in allocations))
            running = sorted({wid for wid, _ in allocations})
            if op == "arrive" and workloads:  # asks as another workload does
                like = workloads[sorted(workloads)[i % len(workloads)]]
                wid = f"n{arrived}"
                arrived += 1
                workloads[wid] = replace(
                    like, id=wid, started_at=None, evicting_pods=(),
                    submitted_at=like.submitted_at + timedelta(seconds=i % 3),
                    waiting_pods=tuple(f"{wid}-{j}" for j in range(like.pods)))
            elif op == "leave" and waiting:
                del workloads[waiting[i % len(waiting)]]
            elif op == "again" and workloads:  # the same content, another object
                w = workloads[sorted(workloads)[i % len(workloads)]]
                workloads[w.id] = replace(w)
            elif op == "change" and waiting:
                w = workloads[waiting[i % len(waiting)]]
                workloads[w.id] = (replace(w, priority=w.priority + 50) if i % 2 else
                                   replace(w, preemptible=not w.preemptible))
            elif op == "missing" and waiting:  # it prefers a pool that is not there (yet)
                w = workloads[waiting[i % len(waiting)]]
                workloads[w.id] = replace(w, node_pools=("gone",),
                                          submitted_at=snapshot.now - timedelta(seconds=30))
            elif op == "time":  # past a missing pool's grace: unschedulable, the same object
                snapshot = replace(snapshot, now=snapshot.now + timedelta(seconds=45))
            elif op == "hold" and waiting:  # a pod held, its workload's object as it was
                w = workloads[waiting[i % len(waiting)]]
                a = Allocation(w.id, w.waiting_pods[0], nodes[i % len(nodes)].name)
                allocations[(w.id, a.pod)] = a
                ledger.hold(a, w.project, w.preemptible)
            elif op == "release" and running:  # its pods released, its object as it was
                wid = running[i % len(running)]
                for key in [k for k in allocations if k[0] == wid]:
                    del allocations[key]
                    ledger.release(*key)
            elif op == "node":
                n = i % len(nodes)
                nodes[n] = replace(nodes[n], ready=not nodes[n].ready)
            elif op == "pool":  # the session's pools change
                if extra in nodes:  # gone, with what ran there
                    nodes.remove(extra)
                    for key in [k for k, a in allocations.items() if a.node == extra.name]:
                        del allocations[key]
                        ledger.release(*key)
                else:
                    nodes.append(extra)
            elif op == "twice":
                twice = True
        snapshot = replace(snapshot, nodes=tuple(nodes), workloads=tuple(workloads.values()),
                           allocations=tuple(allocations[k] for k, _ in ledger.entries()))
        session = Session(snapshot, ledger)
        Allocate(session)._find_classes()
        assert isinstance(ledger.asks, WaitingClasses)
        check(ledger.asks, session)
        kept = decide(snapshot, ledger)
        if twice:  # what the first cycle placed did not stay in the kept classes
            assert decide(snapshot, ledger) == kept
        assert kept == decide(snapshot)
        assert list(kept.pending) == list(decide(snapshot, Ledger.of(snapshot)).pending)
        settle(kept, workloads, allocations, ledger, snapshot.now)
        snapshot = replace(snapshot, nominated=kept.nominated)


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
