"""Profile loading: the scenario `cluster:` section, kubesim extensions, and rejections."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairway_kubesim import DEFAULT_PROFILE, ProfileError, load_profile
from fairway_kubesim.profile import expand_name, parse_duration, parse_profile_text


def test_default_profile_has_two_pools_of_gpu_nodes() -> None:
    assert isinstance(DEFAULT_PROFILE, Path) and DEFAULT_PROFILE.is_file()
    profile = load_profile(DEFAULT_PROFILE)
    assert [p.name for p in profile.node_pools] == ["a100", "t4"]
    assert {p.label_key for p in profile.node_pools} == {"fairway.io/node-pool"}
    by_name = {n.name: n for n in profile.nodes}
    assert sorted(by_name) == ["a100-1", "a100-2", "t4-1", "t4-2"]
    assert (by_name["a100-2"].gpus, by_name["a100-2"].gpu_memory_mib) == (8, 81920)
    assert by_name["a100-2"].labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert (by_name["t4-1"].gpus, by_name["t4-1"].gpu_memory_mib) == (4, 15360)
    assert by_name["t4-1"].labels["fairway.io/node-pool"] == "t4"
    assert all(n.ready for n in profile.nodes)


def test_a_whole_scenario_file_is_a_profile(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("""
simulation: {rounds: 3}
cluster:
  nodePools:
    - {name: a100, labelKey: fairway.io/node-pool, labelValue: a100,
       placement: {gpu: spread}, minGuaranteedRuntime: 1h30m}
  nodes:
    - name: a100-{1..4}
      labels: {fairway.io/node-pool: a100}
      gpus: 8
      gpuMemoryMiB: 81920
    - {name: cpu-1, cpuMillis: 8000, memoryMiB: 32768, ready: false}
  timings: {pullSeconds: 0.5, startSeconds: 2, jitter: 0}
org: {projects: [{name: team-a}]}
workloads: [{name: w, project: team-a}]
""")
    profile = load_profile(path)
    assert [n.name for n in profile.nodes] == ["a100-1", "a100-2", "a100-3", "a100-4", "cpu-1"]
    assert profile.node_pools[0].placement == {"gpu": "spread", "cpu": "binpack"}
    assert profile.node_pools[0].min_guaranteed_runtime_seconds == 5400
    assert profile.node("cpu-1").ready is False and profile.node("cpu-1").gpus == 0
    assert (profile.timings.pull_seconds, profile.timings.start_seconds) == (0.5, 2.0)
    assert profile.source == str(path)


def test_top_level_nodes_and_extensions() -> None:
    profile = parse_profile_text("""
nodes:
  - {name: "n-{01..03}", gpus: 2, gpuProduct: Tesla-T4, maxPods: 20}
timings: {pullSeconds: 3}
""")
    assert [n.name for n in profile.nodes] == ["n-01", "n-02", "n-03"]
    assert profile.nodes[0].gpu_product == "Tesla-T4" and profile.nodes[0].max_pods == 20
    assert profile.timings.pull_seconds == 3 and profile.timings.start_seconds == 1


def test_name_ranges() -> None:
    assert expand_name("a100-{1..3}") == ["a100-1", "a100-2", "a100-3"]
    assert expand_name("r{1..2}-n{a..b}") == ["r1-na", "r1-nb", "r2-na", "r2-nb"]
    assert expand_name("plain") == ["plain"]
    assert parse_duration("90s", "x") == 90 and parse_duration("2h", "x") == 7200


@pytest.mark.parametrize(("text", "expected"), [
    ("nodes: [{name: a, gpus: -1}]", "nodes[0] (a).gpus: must be non-negative"),
    ("nodes: [{name: a, gpu: 1}]", "nodes[0].gpu: unknown key"),
    ("cluster: {nodes: [{name: a}], nodepools: []}", "cluster.nodepools: unknown key"),
    ("cluster: {nodes: [{name: 'a-{1..2}'}, {name: a-2}]}", "node 'a-2' is also declared"),
    ("nodes: [{name: a, labels: {'bad key!': x}}]", "labels.bad key!: label key"),
    ("nodes: [{name: a, labels: {k: 'no spaces'}}]", "labels.k: 'no spaces' is not a valid"),
    ("nodes: [{name: A_1}]", "'A_1' is not a valid node name"),
    ("nodes: [{name: 'a-{3..1}'}]", "start is greater than end"),
    ("nodes: [{name: a, cpuMillis: 1.5}]", "cpuMillis: must be a whole number"),
    ("nodes: [{name: a, ready: 'yes'}]", "ready: must be true or false"),
    ("nodes: [{name: a, gpuMemoryMiB: 10}]", "gpuMemoryMiB: set, but the node has no gpus"),
    ("nodes: []", "nodes: a profile needs at least one node"),
    ("nodePools: [{name: a100}]\nnodes: [{name: a}]", "nodePools[0] (a100).labelKey: required"),
    ("nodePools: [{name: p, labelKey: k, labelValue: v, placement: {gpu: pack}}]\n"
     "nodes: [{name: a}]", "placement.gpu: must be binpack or spread"),
    ("nodePools: [{name: p, labelKey: k, labelValue: v, minGuaranteedRuntime: soon}]\n"
     "nodes: [{name: a}]", "minGuaranteedRuntime: must be a duration"),
    ("nodes: [{name: a}]\ntimings: {jitter: 2}", "timings.jitter: must be a fraction below 1"),
    ("nodes: [{name: a}]\ntimings: {pullSecs: 2}", "timings.pullSecs: unknown key"),
    ("cluster: {nodes: [{name: a}]}\nextra: 1", "extra: unknown key"),
    ("", "the profile is empty"),
    ("- a\n- b", "the profile must be a mapping"),
    ("nodes: [{name: a", "not valid YAML"),
    ("nodes: [{name: a, topology: [{nodeLabel: rack}]}]",
     "topology[0].nodesPerDomain: must be at least 1"),
    ("nodes: [{name: a, topology: [{nodeLabel: rack, nodesPerDomain: 2, prefix: 'r !'}]}]",
     "topology[0].prefix: 'r !1' is not a valid"),
    ("nodePools: [{name: default, networkTopology: {levels: []}}]\nnodes: [{name: a}]",
     "networkTopology.levels: must be a non-empty list"),
    ("nodePools: [{name: default, networkTopology: {levels: [{nodeLabel: r}, {nodeLabel: r}]}}]"
     "\nnodes: [{name: a}]", "levels[1].nodeLabel: level r is named twice"),
])
def test_bad_profiles_are_rejected_naming_the_key(text: str, expected: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile_text(text)
    assert expected in str(info.value)


def test_missing_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(tmp_path / "nope.yaml")


def test_large_profile_has_5000_gpu_nodes_in_two_pools() -> None:
    import time

    from fairway_kubesim import LARGE_PROFILE, KubeSim

    profile = load_profile(LARGE_PROFILE)
    assert len(profile.nodes) == 5000 and {n.gpus for n in profile.nodes} == {8}
    assert [p.name for p in profile.node_pools] == ["h100", "a100"]
    pools = {n.labels["fairway.io/node-pool"] for n in profile.nodes}
    assert pools == {"h100", "a100"}
    started = time.monotonic()
    sim = KubeSim(profile)
    assert len(sim.store["nodes"]) == 5000
    assert time.monotonic() - started < 10
    node = sim.store["nodes"].get("", "a100-2500").obj
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"


def test_back_off_and_eviction_timings() -> None:
    profile = parse_profile_text("nodes: [{name: a}]\ntimings: {backoffSeconds: 0.5, "
                                 "backoffMaxSeconds: 4, nodeEvictionSeconds: 30}")
    t = profile.timings
    assert (t.backoff_seconds, t.backoff_max_seconds, t.node_eviction_seconds) == (0.5, 4, 30)
    defaults = parse_profile_text("nodes: [{name: a}]").timings
    assert (defaults.backoff_seconds, defaults.backoff_max_seconds,
            defaults.node_eviction_seconds) == (10, 300, 300)
    with pytest.raises(ProfileError, match="nodeEvictionSeconds"):
        parse_profile_text("nodes: [{name: a}]\ntimings: {nodeEvictionSeconds: -1}")


def test_a_profile_generates_topology_labels_and_names_the_pools_levels() -> None:
    profile = parse_profile_text("""
nodePools:
  - name: default
    networkTopology:
      levels: [{nodeLabel: example.com/block}, {nodeLabel: example.com/rack}]
nodes:
  - name: gpu-{1..6}
    gpus: 8
    labels: {example.com/zone: z1}
    topology:
      - {nodeLabel: example.com/block, nodesPerDomain: 4, prefix: blk-}
      - {nodeLabel: example.com/rack, nodesPerDomain: 2}
""")
    [pool] = profile.node_pools
    assert pool.topology_levels == ("example.com/block", "example.com/rack")
    assert [(n.labels["example.com/block"], n.labels["example.com/rack"])
            for n in profile.nodes] == [("blk-1", "rack-1"), ("blk-1", "rack-1"),
                                        ("blk-1", "rack-2"), ("blk-1", "rack-2"),
                                        ("blk-2", "rack-3"), ("blk-2", "rack-3")]
    assert all(n.labels["example.com/zone"] == "z1" for n in profile.nodes)
