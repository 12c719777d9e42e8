"""How the CLI shows a third-party workload: its kind and namespace in `list`, its owner and
grouping in `describe`."""

from rich.console import Console

from fairway_cli.workload_commands import _owner_line, _table

SWEEP = {"workloadId": "w1", "name": "sweep", "projectName": "team-a", "type": "thirdParty",
         "kind": "Job", "namespace": "ml", "phase": "Running", "desiredPhase": "Running",
         "phaseMessage": "", "currentNodePools": [], "requestedNodePools": [],
         "requestedResources": {"gpu": 4}, "runningPods": 4, "requestedPods": 4,
         "createdAt": "2026-01-01T00:00:00Z",
         "owner": {"kind": "Job", "apiVersion": "batch/v1", "name": "sweep", "namespace": "ml",
                   "uid": "9f1c", "grouping": "gang", "minMembers": 4}}


def test_list_shows_a_third_party_workloads_kind_and_namespace():
    console = Console(width=200, record=True)
    console.print(_table([SWEEP, {**SWEEP, "name": "train", "type": "training", "kind": None,
                                  "namespace": None, "owner": None}]))
    lines = console.export_text().splitlines()
    assert "thirdParty Job (ml)" in next(line for line in lines if "sweep" in line)
    train = next(line for line in lines if line.split() and line.split()[0] == "train")
    assert "training" in train and "thirdParty" not in train


def test_describe_names_the_owner_and_how_its_pods_are_grouped():
    assert _owner_line(SWEEP) == ("owner:    Job sweep in namespace ml (batch/v1, uid 9f1c); "
                                  "a gang of 4")
    web = {"owner": {**SWEEP["owner"], "kind": "Deployment", "grouping": "elastic",
                     "minMembers": 1}}
    assert _owner_line(web).endswith("; elastic, never below 1")
    assert _owner_line({"owner": None}) is None
