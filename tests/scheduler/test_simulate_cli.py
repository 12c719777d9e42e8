"""`fairway simulate`: exit 0 and the documented JSON when the scenario runs, exit 2 with the
key and the workload named when it is rejected; readable tables without --json."""

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from fairway_cli.simulate import simulate, simulate_command

SCENARIOS = Path(__file__).parent / "scenarios"

BASE = {
    "cluster": {"nodes": [{"name": "node-1", "gpus": 8}]},
    "org": {"projects": [{"name": "team-a"}]},
    "workloads": [{"name": "w1", "project": "team-a", "gpu": 1}],
}


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_json_output_has_the_documented_shape(tmp_path, capsys):
    assert simulate(write(tmp_path, BASE), json_output=True) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"rounds", "workloads", "queues"}
    assert len(out["rounds"]) == 10 and out["rounds"][0]["t"] == 0
    assert out["rounds"][0]["decisions"] == [{"action": "bind", "workload": "w1", "pod": 0,
                                              "node": "node-1", "gpus": [0], "portion": None}]
    assert out["workloads"]["w1"] == {"status": "running",
                                      "pods": [{"node": "node-1", "gpus": [0], "portion": None}],
                                      "startedAt": 0, "preemptions": 0, "pendingReason": None,
                                      "pendingMessage": None}
    gpu = out["queues"]["team-a"]["pools"]["default"]["gpu"]
    assert gpu == {"deserved": 0, "limit": -1, "overQuotaWeight": 1, "fairShare": 1,
                   "allocated": 1, "allocatedNonPreemptible": 0, "requested": 1}
    assert set(out["queues"]["team-a"]["pools"]["default"]) == {"gpu", "cpu", "memory"}


def test_tables_without_json(tmp_path, capsys):
    assert simulate(SCENARIOS / "pending-reasons.yaml", json_output=False) == 0
    out = capsys.readouterr().out
    assert "Decisions by round" in out and "Queues" in out and "NodePoolUnavailable" in out


def test_tables_show_usage_where_time_aware_fairness_is_on(tmp_path, capsys):
    assert simulate(SCENARIOS / "time-aware-lighter-gets-more.yaml", json_output=False) == 0
    out = capsys.readouterr().out
    assert "usage (GPU-hours)" in out and "adjusted weight" in out and "0.88" in out
    assert simulate(SCENARIOS / "time-aware-off.yaml", json_output=False) == 0
    assert "usage (GPU-hours)" not in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [
    (lambda d: d["workloads"][0].update(gpuz=1),
     "workloads[0] (w1): unknown key 'gpuz'"),
    (lambda d: d["workloads"][0].update(gpu=-1), "workloads[0] (w1).gpu: -1 is below 0"),
    (lambda d: d["workloads"][0].update(gpu=1.5), "workloads[0] (w1).gpu: a fraction above 1"),
    (lambda d: d["workloads"][0].update(gpuMemoryMiB=1000),
     "workloads[0] (w1): gpu and gpuMemoryMiB cannot be given together"),
    (lambda d: d["workloads"][0].update(project="nope"),
     "workloads[0] (w1).project: project 'nope' does not exist"),
    (lambda d: d["workloads"][0].update(nodePools=["a100"]),
     "workloads[0] (w1).nodePools: node pool 'a100' does not exist"),
    (lambda d: d["workloads"][0].update(running={"nodes": ["node-9"]}),
     "workloads[0] (w1).running.nodes: node 'node-9' does not exist"),
    (lambda d: d["workloads"][0].update(running={"nodes": ["node-1"], "gpus": [[0], [1]]}),
     "workloads[0] (w1).running.gpus: 2 given, one per pod (1) expected"),
    (lambda d: d["workloads"][0].update(running={"nodes": ["node-1"], "gpus": [[0, 1]]}),
     "workloads[0] (w1).running.gpus[0]: [0, 1] given, 1 distinct device index expected"),
    (lambda d: d["workloads"][0].update(running={"nodes": ["node-1"], "gpus": [[8]]}),
     "workloads[0] (w1).running.gpus[0]: node node-1 has no GPU 8"),
    (lambda d: d["workloads"].append({"name": "w2", "project": "team-a", "gpu": 0.5,
                                      "running": {"nodes": ["node-1"], "gpus": [[3]]}})
     or d["workloads"][0].update(running={"nodes": ["node-1"], "gpus": [[3]]}),
     "workloads[1] (w2).running.gpus[0]: GPU 3 of node node-1 is over-committed"),
    (lambda d: d["workloads"][0].update(priorityClass="urgent"),
     "workloads[0] (w1).priorityClass: 'urgent' is not a priority class"),
    (lambda d: d["workloads"][0].update(pods=2, minPods=3),
     "workloads[0] (w1).minPods: 3 is more than pods (2)"),
    (lambda d: d["org"]["projects"][0].update(resources={"x": {"gpu": {"deserved": 1}}}),
     "org.projects[0] (team-a).resources.x: node pool 'x' does not exist"),
    (lambda d: d.update(extra=1), "the scenario: unknown key 'extra'"),
    (lambda d: d["workloads"][0].update(master={"gpu": 0}),
     "workloads[0] (w1).master: only a distributed workload has a master (type is training)"),
    (lambda d: d["workloads"][0].update(type="distributed", pods=2, master={"gpuLimit": 1}),
     "workloads[0] (w1).master: unknown key 'gpuLimit'"),
    (lambda d: d["workloads"][0].update(type="distributed", pods=2, master={"cpuMillis": -1}),
     "workloads[0] (w1).master.cpuMillis: -1 is below 0"),
    (lambda d: d["workloads"][0].update(type="distributed", pods=2, master={"gpu": 0},
                                        running={"nodes": ["node-1", "node-1"],
                                                 "gpus": [[0], [1]]}),
     "workloads[0] (w1).running.gpus[0]: [0] given, 0 distinct device indices expected"),
])
def test_rejected_scenarios_name_the_key_and_the_workload(tmp_path, capsys, change, message):
    data = json.loads(json.dumps(BASE))
    change(data)
    assert simulate(write(tmp_path, data), json_output=True) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in " ".join(captured.err.split())


def test_unreadable_or_not_yaml(tmp_path, capsys):
    assert simulate(tmp_path / "missing.yaml", json_output=False) == 2
    assert simulate(write(tmp_path, "a: [b"), json_output=False) == 2


def test_the_typer_command(tmp_path):
    app = typer.Typer()
    app.command("simulate")(simulate_command)
    app.command("other")(lambda: None)  # more than one command: typer keeps the name
    runner = CliRunner()
    ok = runner.invoke(app, ["simulate", str(write(tmp_path, BASE)), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["workloads"]["w1"]["status"] == "running"
    bad = runner.invoke(app, ["simulate", str(write(tmp_path, {"bogus": 1}))])
    assert bad.exit_code == 2
