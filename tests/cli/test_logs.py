"""`fairway logs`: which pod it reads, how it reads --since, and what it says when there is
nothing to read yet (the log itself streams end to end in tests/e2e/test_logs.py)."""

import pytest

from fairway_cli.client import CliError
from fairway_cli.log_commands import choose_pod, parse_duration

TRAINING = {"name": "bert", "phase": "Pending"}


def test_durations_read_as_kubectl_reads_them():
    assert [parse_duration(t) for t in ("90", "30s", "5m", "2h30m", "1d")] == [
        90, 30, 300, 9000, 86400]
    for bad in ("", "5x", "m5", "1.5h", "5m junk"):
        with pytest.raises(CliError, match="--since"):
            parse_duration(bad)


def test_without_pod_it_reads_the_master_of_a_distributed_workload_else_the_first():
    pods = [{"name": "ddp-1-worker-0", "role": "worker"},
            {"name": "ddp-1-master-0", "role": "master"}]
    assert choose_pod(TRAINING, pods, None)["name"] == "ddp-1-master-0"
    replicas = [{"name": "llm-b", "role": "replica"}, {"name": "llm-a", "role": "replica"}]
    assert choose_pod(TRAINING, replicas, None)["name"] == "llm-a"
    assert choose_pod(TRAINING, replicas, "llm-b")["name"] == "llm-b"


def test_no_pods_yet_names_the_phase_and_an_unknown_pod_names_the_pods():
    with pytest.raises(CliError, match=r"'bert' has no pods yet \(it is Pending\)") as exc:
        choose_pod(TRAINING, [], None)
    assert exc.value.exit_code == 1
    with pytest.raises(CliError, match="has no pod 'x'; its pods: a, b"):
        choose_pod(TRAINING, [{"name": "a"}, {"name": "b"}], "x")
