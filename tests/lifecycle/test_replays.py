"""The phase fold over the replay examples in replays/: every row of the phase table and every
failure cause, as the transitions `fairway lifecycle replay` (and the service) publishes."""

import itertools
import json
from pathlib import Path

import pytest

from fairway_lifecycle.core.replay import ReplayError, replay
from tests.lifecycle.make_replays import examples

REPLAYS = Path(__file__).parent / "replays"
START = [("Creating", "CreatingPods"), ("Pending", "WaitingForScheduler"),
         ("Initializing", "PodsBound"), ("Running", "PodsRunning")]

EXPECTED = {
    "training-completes": [*START, ("Completed", "Succeeded")],
    "training-exit-code-retried-then-failed": [
        *START, ("Pending", "Retrying"), ("Initializing", "PodsBound"),
        ("Running", "PodsRunning"), ("Failed", "BackoffLimitExceeded")],
    "training-exit-code-no-retries": [*START, ("Failed", "ExitCode")],
    "training-oom-killed": [*START, ("Failed", "OOMKilled")],
    "training-image-pull-backoff": [*START[:3], ("Failed", "ImagePullBackOff")],
    "training-config-error": [*START[:3], ("Failed", "CreateContainerConfigError")],
    "workspace-crash-loop-degraded-then-healed": [
        *START, ("Degraded", "CrashLoopBackOff"), ("Running", "PodsRunning")],
    "workspace-node-not-ready": [*START, ("Degraded", "NodeNotReady"),
                                 ("Running", "PodsRunning")],
    # Replicas stand alone (a minimum of one): one running serves; a lost one made again
    # within the grace period does not degrade it.
    "inference-replica-lost-and-replaced": [
        ("Creating", "CreatingPods"), ("Pending", "CreatingPods"),
        ("Initializing", "PodsBound"), ("Running", "PodsRunning")],
    "inference-second-replica-waits-for-room": [
        ("Creating", "CreatingPods"), ("Pending", "CreatingPods"),
        ("Initializing", "PodsBound"), ("Running", "PodsRunning"),
        ("Degraded", "BelowRequested"), ("Running", "PodsRunning")],
    "distributed-elastic-grows-and-shrinks": [
        ("Creating", "CreatingPods"), ("Pending", "CreatingPods"), ("Running", "PodsRunning")],
    "training-node-lost-retried": [
        *START, ("Degraded", "NodeNotReady"), ("Pending", "Retrying"),
        ("Initializing", "PodsBound"), ("Running", "PodsRunning"), ("Completed", "Succeeded")],
    "training-stopped-and-resumed": [
        *START, ("Stopping", "Stopping"), ("Stopped", "Stopped"), ("Resuming", "Resuming"),
        *START[1:], ("Completed", "Succeeded")],
    "training-deleted": [*START, ("Deleting", "Deleting"), ("Deleted", "Deleted")],
    "training-completed-then-deleted": [*START, ("Completed", "Succeeded"),
                                        ("Deleting", "Deleting"), ("Deleted", "Deleted")],
    "training-preempted-and-rescheduled": [
        *START, ("Pending", "Preempted"), ("Initializing", "PodsBound"),
        ("Running", "PodsRunning"), ("Completed", "Succeeded")],
    "training-preempted-terminates": [*START, ("Failed", "Evicted")],
    "distributed-pytorch-master-completes": [
        ("Creating", "CreatingPods"), ("Pending", "CreatingPods"), ("Running", "PodsRunning"),
        ("Completed", "Succeeded")],
    "distributed-worker-fails": [
        ("Creating", "CreatingPods"), ("Pending", "CreatingPods"), ("Running", "PodsRunning"),
        ("Failed", "ExitCode")],
}


def test_every_example_is_pinned_and_committed_as_generated():
    assert set(EXPECTED) == set(examples())
    for name, lines in examples().items():
        committed = (REPLAYS / f"{name}.jsonl").read_text()
        assert committed == "".join(json.dumps(line) + "\n" for line in lines), (
            f"{name}.jsonl is stale: run `python -m tests.lifecycle.make_replays`")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_replay_publishes_the_expected_transitions(name):
    transitions = list(replay((REPLAYS / f"{name}.jsonl").read_text().splitlines()))
    assert [(t.phase.value, t.reason) for t in transitions] == EXPECTED[name]
    assert transitions[0].previous is None
    for before, after in itertools.pairwise(transitions):
        assert after.previous == before.phase, "each transition starts where the last ended"
        assert after.time >= before.time
    assert all(t.message for t in transitions)


def test_failure_messages_say_what_happened():
    def last(name):
        return list(replay((REPLAYS / f"{name}.jsonl").read_text().splitlines()))[-1].message

    assert "exited with code 3" in last("training-exit-code-retried-then-failed")
    assert "backoffLimit 1" in last("training-exit-code-retried-then-failed")
    assert "OOMKilled" in last("training-oom-killed")
    assert "could not be pulled" in last("training-image-pull-backoff")
    assert 'secret "hf-token" not found' in last("training-config-error")
    assert "d2-worker1 exited with code 1" in last("distributed-worker-fails")


@pytest.mark.parametrize(("line", "where"), [
    ("not json", "line 2: not JSON"),
    ('{"type": "ADDED"}', "line 2"),
    ('{"type": "NOPE", "object": {}}', "NOPE"),
    ('{"type": "ACTION", "object": {"workloadId": "x", "action": "stop"}}', "undeclared"),
    ('{"type": "ACTION", "object": {"workloadId": "x", "action": "jump"}}', "jump"),
    ('{"type": "ADDED", "object": {"metadata": {"name": "p"}}}', "no fairway.io/workload-id"),
])
def test_malformed_lines_are_named(line, where):
    with pytest.raises(ReplayError, match=where):
        list(replay(["", line]))
