"""Scenario tests: every `scenarios/*.yaml` runs through the simulator (the same core the
service and `fairway simulate` use) and must match its `expect:` section.

`expect` (ignored by `fairway simulate`):
  workloads:
    NAME: {status, pendingReason, pendingMessage (exact), messageContains, nodes (one per
           bound pod), gpus (one list per bound pod), portions, startedAt}
  queues:
    NAME: {POOL: {RESOURCE: {fairShare, allocated, ...}}}   # any subset of the output
  binds:          # binds of one round, as (workload, pod, node) triples
    - {t: 0, count: 3}
  preemptions:    # every preemption of the run, in order: any subset of the keys
    - {t: 1, workload: a-1, reason: reclaim, by: b-1}
  stable: true    # the last two rounds decide nothing (converged)
  stableRounds: 20  # ... the last 20 rounds decide nothing (no oscillation)
"""

from pathlib import Path

import pytest
import yaml

from fairway_scheduler.simulation import parse_scenario, simulate

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))


def run(path: Path) -> tuple[dict, dict]:
    data = yaml.safe_load(path.read_text())
    return simulate(parse_scenario(data)), data.get("expect") or {}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario(path: Path):
    result, expect = run(path)
    assert expect, f"{path.name} has no expect section"
    for name, want in (expect.get("workloads") or {}).items():
        got = result["workloads"][name]
        pods = got["pods"]
        for key, value in want.items():
            if key == "nodes":
                assert [p["node"] for p in pods] == value, (name, pods)
            elif key == "gpus":
                assert [p["gpus"] for p in pods] == value, (name, pods)
            elif key == "portions":
                assert [p["portion"] for p in pods] == value, (name, pods)
            elif key == "podCount":
                assert len(pods) == value, (name, pods)
            elif key == "messageContains":
                for part in [value] if isinstance(value, str) else value:
                    assert part in (got["pendingMessage"] or ""), (name, got["pendingMessage"])
            else:
                assert got[key] == value, (name, key, got)
    for name, pools in (expect.get("queues") or {}).items():
        got_pools = result["queues"][name]["pools"]
        for pool, resources in pools.items():
            for resource, fields in resources.items():
                got = got_pools[pool][resource]
                for key, value in fields.items():
                    assert got[key] == value, (name, pool, resource, key, got)
    for want in expect.get("binds") or []:
        [round_] = [r for r in result["rounds"] if r["t"] == want["t"]]
        binds = [d for d in round_["decisions"] if d["action"] == "bind"]
        if "count" in want:
            assert len(binds) == want["count"], binds
        if "decisions" in want:
            assert [{k: d[k] for k in w} for d, w in zip(binds, want["decisions"], strict=True)
                    ] == want["decisions"]
    if "preemptions" in expect:
        got = [dict(d, t=r["t"]) for r in result["rounds"] for d in r["decisions"]
               if d["action"] == "preempt"]
        want = expect["preemptions"] or []
        assert len(got) == len(want), got
        for g, w in zip(got, want, strict=True):
            assert {k: g.get(k) for k in w} == w, g
    if expect.get("stable"):
        assert not result["rounds"][-1]["decisions"] and not result["rounds"][-2]["decisions"]
    if expect.get("stableRounds"):
        quiet = result["rounds"][-expect["stableRounds"]:]
        assert len(quiet) == expect["stableRounds"], "not enough rounds"
        assert all(not r["decisions"] for r in quiet), [r for r in quiet if r["decisions"]]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_is_deterministic(path: Path):
    assert run(path)[0] == run(path)[0]


def test_every_listed_topic_has_a_scenario():
    names = {p.stem for p in SCENARIOS}
    for topic in ("fair-share", "lending", "limit", "non-preemptible-project",
                  "non-preemptible-department", "gang-fits", "gang-does-not-fit", "pool-order",
                  "binpack-spread", "fraction-portion", "fraction-memory", "device-packing",
                  "pending-reasons", "reclaim-restores-fair-share", "reclaim-from-department",
                  "reclaim-across-pools", "preempt-vs-reclaim", "preempt-in-project",
                  "min-guaranteed-runtime", "elastic-surplus-first", "consolidate-frees-node",
                  "consolidate-off-when-spreading", "stale-gang", "stable-indivisible-gangs",
                  "stable-evictions-at-different-times", "stable-unplaceable-head-of-line",
                  "never-evicts-non-preemptible", "node-type"):
        assert any(topic in name for name in names), topic


@pytest.mark.parametrize(("workload", "nodes_extra", "message"), [
    ({"topology": {"requiredPlacement": "zone"}}, {},
     "workloads[0] (w).topology.requiredPlacement: zone is not a topology level of any node "
     "pool"),
    ({"topology": {"preferredPlacement": ""}}, {},
     "workloads[0] (w).topology.preferredPlacement: expected a topology level"),
    ({"topology": {"required": "rack"}}, {}, "workloads[0] (w).topology: "),
    ({}, {"topology": [{"nodeLabel": "rack"}]},
     "cluster.nodes[0] (n-{1..2}).topology[0].nodesPerDomain: expected a whole number"),
])
def test_topology_keys_that_cannot_be_met_are_errors_naming_the_key(workload, nodes_extra,
                                                                    message):
    from fairway_scheduler.simulation.scenario import ScenarioError

    data = {"cluster": {"nodePools": [{"name": "default", "networkTopology": {
                "levels": [{"nodeLabel": "rack"}]}}],
                        "nodes": [{"name": "n-{1..2}", "gpus": 1, **nodes_extra}]},
            "org": {"projects": [{"name": "p"}]},
            "workloads": [{"name": "w", "project": "p", **workload}]}
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    assert message in str(info.value)
