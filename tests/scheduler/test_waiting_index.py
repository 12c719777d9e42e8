"""The session's index of waiting workloads, kept between cycles in the ledger (`WaitingIndex`),
against what the session worked out afresh every cycle before (each waiting workload's request,
the unschedulable ones, every queue's `requested`, the queues made and their order): after
random sequences of workloads made again or kept as the same object, gone and back, pods held
and released, nodes and pools changed, and the cycle's time moving past a missing pool's grace,
cycle after cycle on one ledger; and the cycle decides as when everything is worked out afresh
(each waiting workload's target pools are kept too, and follow its placements)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairway_scheduler.core import (
    Allocation,
    ClusterSnapshot,
    DisruptionSettings,
    Node,
    NodePool,
    QueueSpec,
    Quota,
    Workload,
    decide,
)
from fairway_scheduler.core.framework import Session, Statement
from fairway_scheduler.core.framework.session import WaitingIndex, requests_of
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.model import PodSize

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NODES = [("n1", "a"), ("n2", "a"), ("n3", "b"), ("n4", "c")]
WIDS = [f"w{i}" for i in range(8)]
PODS = ["p0", "p1", "p2"]
PROJECTS = ["x", "y", "z"]  # z has no queue spec: its queues are made as it asks
# (gpus per pod, portion, memory MiB, millicores, node type, master): some too large for
# every node, some of a node type no node has, one with its master sized apart
SHAPES = [(1, None, None, 100, None, None), (1, 0.5, None, 100, None, None),
          (1, None, 2000, 100, None, None), (0, None, None, 500, None, None),
          (8, None, None, 100, None, None), (1, None, None, 100, "h100", None),
          (1, None, None, 100, None, PodSize(0, cpu_millis=9000)),
          (0, None, None, 100, "a100", None)]
WHERE = [(), ("a",), ("b", "a"), ("gone",), ("gone", "b"), ("c",)]


class Afresh(WaitingIndex):
    """Never kept: the session works everything out afresh, as it did every cycle before."""

    def sync(self, session: Session) -> bool:
        return False


def requested_before(session: Session) -> dict[tuple[str, str, str], list[int]]:
    """Each queue's `requested` as `_count_requests` summed it before: per project, pool and
    request object, in the order the waiting workloads come."""
    out = {key: list(q.allocated) for key, q in session.queues.queues.items()
           if q.kind == "project"}  # (a department's: its projects', summed after)
    pods: dict[tuple[str, str, int], int] = {}
    requests = {}
    for w in session.waiting:
        if w.id in session.unschedulable:
            continue
        pool = session.target_pools(w)[0]
        request = session.requests[w.id]
        waiting = len(w.waiting_pods)
        if request.master is not None and w.master_pod in w.waiting_pods:
            requests[id(request.master)] = request.master
            key = (w.project, pool, id(request.master))
            pods[key] = pods.get(key, 0) + 1
            waiting -= 1
        requests[id(request)] = request
        key = (w.project, pool, id(request))
        pods[key] = pods.get(key, 0) + waiting
    for (project, pool, request_id), count in pods.items():
        pool_nodes = session.pools.get(pool)
        vector = requests[request_id].vector(pool_nodes.max_dev_memory if pool_nodes else 0)
        total = out.setdefault(("project", project, pool), [0, 0, 0])
        for r in range(3):
            total[r] += vector[r] * count
    return out


def seen(session: Session) -> dict:
    return {
        "requests": session.requests,
        # workloads that ask alike share one request object
        "shared": sorted(sorted(wid for wid in session.requests
                                if session.requests[wid] is r)
                         for r in {id(r): r for r in session.requests.values()}.values()),
        "unschedulable": session.unschedulable,
        "queues": [(key, q.requested, q.allocated, q.fair)
                   for key, q in session.queues.queues.items()],
    }


def made(wid: str, shape: int, project: str, where: tuple[str, ...], waiting: set[str],
         pods: int, age: int) -> Workload:
    gpus, portion, memory, cpu, node_type, master = SHAPES[shape]
    names = [f"p{i}" for i in range(pods)]
    return Workload(wid, project, 1, T0 - timedelta(seconds=age), gpus, min(pods, 2), pods,
                    node_pools=where, waiting_pods=tuple(p for p in names if p in waiting),
                    gpu_portion=portion, gpu_memory_mib=memory, cpu_millis=cpu,
                    memory_mib=10, node_type=node_type, master=master,
                    master_pod="p0" if master else None)


workload = st.tuples(st.integers(0, len(SHAPES) - 1), st.sampled_from(PROJECTS),
                     st.sampled_from(WHERE), st.sets(st.sampled_from(PODS), min_size=1),
                     st.integers(1, 3), st.integers(0, 120))
change = st.one_of(
    st.tuples(st.just("workload"), st.sampled_from(WIDS), workload),
    st.tuples(st.just("same"), st.sampled_from(WIDS)),  # the same content, another object
    st.tuples(st.just("gone"), st.sampled_from(WIDS)),
    st.tuples(st.just("hold"), st.sampled_from(WIDS), st.sampled_from(PODS),
              st.integers(0, 2)),
    st.tuples(st.just("release"), st.sampled_from(WIDS), st.sampled_from(PODS)),
    st.tuples(st.just("node"), st.integers(0, len(NODES) - 1), st.booleans(),
              st.sampled_from([None, "h100"])),
    st.tuples(st.just("pool"), st.sampled_from(["a", "b", "c"])),  # configured or not
)
# each cycle after some changes: its time, and the missing pools' grace
cycles = st.lists(st.tuples(st.lists(change, max_size=5), st.integers(0, 90),
                            st.sampled_from([0, 60, 120])), min_size=1, max_size=8)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(workload, min_size=len(WIDS), max_size=len(WIDS)), cycles, st.booleans())
def test_the_kept_index_answers_as_worked_out_afresh(first, rounds, with_nodes):
    nodes = {name: Node(name, pool, True, 4, 4000, cpu_millis=8000, memory_mib=8192)
             for name, pool in NODES} if with_nodes else {}
    ledger = Ledger(nodes.values())
    workloads = {wid: made(wid, *args) for wid, args in zip(WIDS, first, strict=True)}
    configured = {"a", "b"}
    specs = tuple(QueueSpec(p, "project", pool, "d" if p == "x" else None, Quota(1))
                  for p in ("x", "y") for pool in ("a", "b"))
    for changes, at, grace in rounds:
        for kind, *args in changes:
            if kind == "workload":
                workloads[args[0]] = made(args[0], *args[1])
            elif kind == "same" and args[0] in workloads:
                workloads[args[0]] = replace(workloads[args[0]])
            elif kind == "gone":
                workloads.pop(args[0], None)
            elif kind == "hold" and nodes:
                wid, pod, n = args
                w = workloads.get(wid)
                ledger.hold(Allocation(wid, pod, NODES[n][0], (n,), cpu_millis=100),
                            w.project if w else None, True)
            elif kind == "release":
                ledger.release(*args)
            elif kind == "node" and nodes:
                n, ready, node_type = args
                name, pool = NODES[n]
                nodes[name] = Node(name, pool, ready, 4, 4000, cpu_millis=8000,
                                   memory_mib=8192, node_type=node_type)
                ledger.put_node(nodes[name])
            elif kind == "pool":
                configured ^= {args[0]}
        snapshot = ClusterSnapshot(
            tuple(nodes.values()), tuple(workloads.values()),
            pools=tuple(NodePool(p) for p in sorted(configured)), queues=specs,
            now=T0 + timedelta(seconds=at),
            disruption=DisruptionSettings(missing_pool_grace=grace))
        kept = Session(snapshot, ledger)
        index = ledger.waiting
        assert isinstance(index, WaitingIndex)
        ledger.waiting = Afresh()
        afresh = Session(snapshot, ledger)
        ledger.waiting = index
        assert seen(kept) == seen(afresh)
        assert afresh.requests == requests_of(afresh.waiting)
        assert {key: q.requested for key, q in afresh.queues.queues.items()
                if q.kind == "project"} == requested_before(afresh)
        assert [kept.target_pools(w) for w in kept.waiting] == [
            afresh.target_pools(w) for w in afresh.waiting]
        # the waiting workloads that hold pods: those the ledger holds pods of
        assert kept.waiting_holding == afresh.waiting_holding == (
            {w.id for w in snapshot.waiting_workloads()} & ledger.held.keys())
        # and the cycle decides alike (placements change where a workload is tried)
        kept_result = decide(snapshot, ledger)
        ledger.waiting = Afresh()
        assert kept_result == decide(snapshot, ledger)
        ledger.waiting = index


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(WIDS) - 1), st.booleans()), max_size=12))
def test_the_same_workload_twice_is_worked_out_afresh(twice):
    """A snapshot with a workload id (or object) twice: nothing kept, the answer of before."""
    nodes = (Node("n1", "a", True, 4, cpu_millis=8000, memory_mib=8192),)
    ledger = Ledger(nodes)
    base = [Workload(wid, "x", 1, T0, 1, waiting_pods=("p0",)) for wid in WIDS]
    for i, same_object in twice:
        again = base[i] if same_object else replace(base[i], gpus_per_pod=9)
        snapshot = ClusterSnapshot(nodes, (*base, again), pools=(NodePool("a"),))
        kept = Session(snapshot, ledger)
        index = ledger.waiting
        ledger.waiting = Afresh()
        assert seen(kept) == seen(Session(snapshot, ledger))
        ledger.waiting = index
        snapshot = ClusterSnapshot(nodes, tuple(base), pools=(NodePool("a"),))
        assert decide(snapshot, ledger) == decide(snapshot)


def test_a_placement_makes_a_workload_tried_where_it_holds():
    """Its first pods placed in its second pool, it is tried there only; taken back, where it
    was tried before."""
    nodes = (Node("n1", "a", True, 1, cpu_millis=8000, memory_mib=8192),
             Node("n2", "b", True, 4, cpu_millis=8000, memory_mib=8192))
    w = Workload("w", "x", 1, T0, 1, 1, 3, node_pools=("a", "b"),
                 waiting_pods=("p0", "p1", "p2"))
    snapshot = ClusterSnapshot(nodes, (w,), pools=(NodePool("a"), NodePool("b")))
    ledger = Ledger(nodes)
    for _ in range(2):  # the index made, then kept
        session = Session(snapshot, ledger)
        assert session._targets.keys() == {"w"}
        assert session.target_pools(w) == ("a", "b")
        statement = Statement(session, session.pools["b"])
        assert statement.place("p0", session.requests["w"]) is not None
        statement.allocate(w)
        assert session.target_pools(w) == ("b",) and session.held_pool["w"] == "b"
        statement.rollback()
        assert session.target_pools(w) == ("a", "b") and "w" not in session.held_pool
    gone = ClusterSnapshot(nodes, (), pools=snapshot.pools)
    assert Session(gone, ledger)._targets == {}
