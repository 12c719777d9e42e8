"""The phase fold, pinned by pod-state tables: the pods a workload has → its phase."""

from datetime import UTC, datetime, timedelta

import pytest

from fairway_contracts import Phase, WorkloadType
from fairway_lifecycle.core.fold import WorkloadInfo, fold
from tests.lifecycle.podfactory import pod

TRAINING = WorkloadInfo("w1", "bert", "team-a", WorkloadType.TRAINING, pods=1,
                        backoff_limit=6, attempt=1)
TWO_PODS = WorkloadInfo("w1", "bert", "team-a", WorkloadType.TRAINING, pods=2)  # min 1
GANG = WorkloadInfo("w1", "bert", "team-a", WorkloadType.DISTRIBUTED, pods=2, min_pods=2)


@pytest.mark.parametrize(
    ("workload", "pods", "phase", "reason"),
    [
        (TRAINING, [], Phase.CREATING, "CreatingPods"),
        (TRAINING, [pod(stage="unbound")], Phase.PENDING, "WaitingForScheduler"),
        (TRAINING, [pod(stage="pulling")], Phase.INITIALIZING, "PodsBound"),
        (TRAINING, [pod(stage="starting")], Phase.INITIALIZING, "PodsBound"),
        (TRAINING, [pod(stage="running")], Phase.RUNNING, "PodsRunning"),
        (TRAINING, [pod(stage="succeeded")], Phase.COMPLETED, "Succeeded"),
        (GANG, [pod("a", stage="running")], Phase.PENDING, "CreatingPods"),
        (GANG, [pod("a", stage="running"), pod("b", stage="unbound")], Phase.PENDING,
         "WaitingForScheduler"),
        (GANG, [pod("a", stage="running"), pod("b", stage="pulling")], Phase.INITIALIZING,
         "PodsBound"),
        # Pods that each stand alone (parallel training pods, inference replicas): one
        # running is enough to run; the other waits for room without holding it back.
        (TWO_PODS, [pod("a", stage="running")], Phase.RUNNING, "PodsRunning"),
        (TWO_PODS, [pod("a", stage="running"), pod("b", stage="unbound")], Phase.RUNNING,
         "PodsRunning"),
        (TWO_PODS, [pod("a", stage="running"), pod("b", stage="pulling")], Phase.RUNNING,
         "PodsRunning"),
        (TWO_PODS, [pod("a", stage="unbound"), pod("b", stage="unbound")], Phase.PENDING,
         "WaitingForScheduler"),
        (TWO_PODS, [pod("a", stage="pulling"), pod("b", stage="unbound")], Phase.INITIALIZING,
         "PodsBound"),
        (TWO_PODS, [pod("a", stage="succeeded"), pod("b", stage="running")], Phase.RUNNING,
         "PodsRunning"),
        (TWO_PODS, [pod("a", stage="succeeded"), pod("b", stage="succeeded")], Phase.COMPLETED,
         "Succeeded"),
    ],
)
def test_phase_of_pods(workload, pods, phase, reason):
    result = fold(workload, pods)
    assert (result.phase, result.reason) == (phase, reason)
    assert result.message


def test_failed_pod_with_retries_left_goes_back_to_pending_and_asks_for_a_retry():
    result = fold(TRAINING, [pod(stage="failed", exit_code=3)])
    assert result.phase == Phase.PENDING
    assert result.retry
    assert "exited with code 3" in result.message
    assert "6 retries left" in result.message


def test_last_attempt_failing_fails_the_workload_naming_the_exit_code():
    last = WorkloadInfo("w1", "bert", "team-a", WorkloadType.TRAINING, backoff_limit=2,
                        attempt=3)
    result = fold(last, [pod(attempt=3, stage="failed", exit_code=3)])
    assert result.phase == Phase.FAILED
    assert result.reason == "BackoffLimitExceeded"
    assert "code 3" in result.message
    assert "failed 3 times" in result.message
    assert not result.retry


def test_no_retries_at_all_reports_the_exit_code_reason():
    once = WorkloadInfo("w1", "bert", "team-a", WorkloadType.TRAINING, backoff_limit=0)
    result = fold(once, [pod(stage="failed", exit_code=3)])
    assert (result.phase, result.reason) == (Phase.FAILED, "ExitCode")
    assert "exited with code 3" in result.message


def test_oom_killed_is_named():
    once = WorkloadInfo("w1", "bert", "team-a", WorkloadType.TRAINING, backoff_limit=0)
    result = fold(once, [pod(stage="failed", exit_code=137, reason="OOMKilled")])
    assert (result.phase, result.reason) == (Phase.FAILED, "OOMKilled")


def test_pods_of_earlier_attempts_are_ignored():
    second = WorkloadInfo("w1", "bert", "team-a", WorkloadType.TRAINING, attempt=2)
    old_failure = pod("old", attempt=1, stage="failed", exit_code=3)
    assert fold(second, [old_failure]).phase == Phase.PENDING
    assert fold(second, [old_failure, pod("new", attempt=2, stage="running")]).phase == (
        Phase.RUNNING)


def test_terminating_pods_do_not_count():
    terminating = pod(stage="running")
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert fold(TRAINING, [terminating]).phase == Phase.CREATING


def test_the_fold_is_deterministic():
    pods = [pod("a", stage="running"), pod("b", stage="pulling")]
    assert fold(TWO_PODS, pods) == fold(TWO_PODS, list(reversed(pods)))


def test_a_workload_the_scheduler_can_never_place_fails_with_its_reason():
    from dataclasses import replace

    never = replace(TRAINING, unschedulable=("NoSuchResource", "needs 64 GPUs on one node"))
    result = fold(never, [pod(stage="unbound")])
    assert (result.phase, result.reason) == (Phase.FAILED, "NoSuchResource")
    assert "64 GPUs" in result.message


# GPU fractions --------------------------------------------------------------------------------

def _gpu_oom(p: dict) -> dict:
    """The pod's main container ended as a fraction above its GPU memory limit ends."""
    p["status"]["containerStatuses"][0]["state"] = {"terminated": {
        "exitCode": 1, "reason": "GPUOutOfMemory",
        "message": "CUDA out of memory: used 51200 MiB of its 40960 MiB GPU memory limit"}}
    return p


def test_a_fraction_above_its_gpu_memory_limit_fails_saying_so():
    once = WorkloadInfo("w1", "bert", "team-a", WorkloadType.TRAINING, backoff_limit=0)
    result = fold(once, [_gpu_oom(pod(stage="failed", exit_code=1))])
    assert (result.phase, result.reason) == (Phase.FAILED, "GpuOutOfMemory")
    assert "ran out of GPU memory" in result.message
    assert "51200 MiB of its 40960 MiB" in result.message
    retried = fold(TRAINING, [_gpu_oom(pod(stage="failed", exit_code=1))])
    assert (retried.phase, retried.reason) == (Phase.PENDING, "Retrying")
    assert "ran out of GPU memory" in retried.message


def test_a_workspace_that_keeps_running_out_of_gpu_memory_is_degraded_saying_so():
    workspace = WorkloadInfo("w1", "nb", "team-a", WorkloadType.WORKSPACE, has_run=True)
    looping = pod(stage="crashloop")
    looping["status"]["containerStatuses"][0]["lastState"] = {"terminated": {
        "exitCode": 1, "reason": "GPUOutOfMemory", "message": "CUDA out of memory"}}
    result = fold(workspace, [looping])
    assert (result.phase, result.reason) == (Phase.DEGRADED, "GpuOutOfMemory")
    assert "keeps running out of GPU memory" in result.message


def test_a_pod_whose_borrowed_gpu_memory_is_reclaimed_degrades_its_workload_with_the_reason():
    """Pod events: running; annotated and deleted (terminating); gone; made again."""
    workspace = WorkloadInfo("w1", "nb", "team-a", WorkloadType.WORKSPACE, has_run=True)
    running = pod(stage="running")
    assert fold(workspace, [running]).phase == Phase.RUNNING
    going = pod(stage="running")
    going["metadata"].setdefault("annotations", {})["fairway.io/gpu-memory-reclaimed"] = (
        "GPU memory above its request of 10 GiB was reclaimed for notebook-2 (it used 30 GiB)")
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    result = fold(workspace, [going])
    assert (result.phase, result.reason) == (Phase.DEGRADED, "GpuMemoryReclaimed")
    assert "above its request of 10 GiB was reclaimed for notebook-2" in result.message
    assert fold(workspace, []).reason != "GpuMemoryReclaimed"
    assert fold(workspace, [pod("bert-2", stage="running")]).phase == Phase.RUNNING


def test_pods_say_which_devices_they_share():
    from fairway_lifecycle.core.fold import summarize

    shared = pod(stage="running")
    shared["metadata"]["labels"]["fairway.io/gpu-fraction"] = "true"
    shared["metadata"].setdefault("annotations", {}).update({
        "fairway.io/gpu-devices": "3", "fairway.io/gpu-uuids": "GPU-abc",
        "fairway.io/gpu-portion": "0.5", "fairway.io/gpu-memory-limit-mib": "40960",
        "kubesim.fairway.io/gpu-memory-used-mib": "12288"})
    whole = pod("whole", stage="running")
    whole["metadata"].setdefault("annotations", {}).update({
        "fairway.io/gpu-devices": "0", "kubesim.fairway.io/gpu-uuids": "GPU-def"})
    got = {s.name: s for s in summarize([shared, whole])}
    frac = got["bert-1"]
    assert (frac.gpu_devices, frac.gpu_uuids, frac.gpu_portion, frac.gpu_memory_limit_mib,
            frac.gpu_memory_used_mib, frac.gpu_share) == ([3], ["GPU-abc"], 0.5, 40960, 12288,
                                                          0.5)
    assert (got["whole"].gpu_devices, got["whole"].gpu_uuids, got["whole"].gpu_portion,
            got["whole"].gpu_share) == ([0], ["GPU-def"], None, 1.0)


def test_a_pod_its_node_refused_is_no_failure_it_waits_to_be_made_again():
    """The kubelet refused the pod when it was bound (a device still held by a pod the
    scheduler did not count): no attempt is spent, the workload waits, naming the node."""
    result = fold(TRAINING, [pod(stage="refused", node="fr-1")])
    assert (result.phase, result.reason, result.retry) == (Phase.PENDING, "NodeRejected", False)
    assert "node fr-1 refused pod bert-1" in result.message
    assert "nvidia.com/gpu, requested: 1, used: 2, capacity: 2" in result.message


def test_pods_made_again_after_a_refusal_leave_the_workload_pending_not_creating():
    """Creating is a workload's first phase only: once it was anything else, the moment its
    refused pod is gone and the next is not made yet is Pending."""
    from dataclasses import replace
    assert fold(TRAINING, []).phase == Phase.CREATING
    result = fold(replace(TRAINING, created=True), [])
    assert (result.phase, result.reason) == (Phase.PENDING, "CreatingPods")
    assert "again" in result.message


def test_a_refused_pod_beside_a_failed_one_leaves_the_failure_to_decide():
    result = fold(TWO_PODS, [pod("a", stage="refused"), pod("b", stage="failed", exit_code=2)])
    assert result.phase == Phase.PENDING and result.retry
    assert "exited with code 2" in result.message


def test_a_refused_pod_of_a_workload_that_ran_is_degraded_not_pending():
    ran = WorkloadInfo("w1", "bert", "team-a", WorkloadType.TRAINING, pods=2, has_run=True)
    result = fold(ran, [pod("a", stage="running"), pod("b", stage="refused", reason="OutOfcpu")])
    assert (result.phase, result.reason) == (Phase.DEGRADED, "NodeRejected")


# Elastic workloads: pods that stand alone (a minimum below the pod count) run on their
# minimum; a pod above it that waits too long for room degrades the workload.
T0 = datetime(2026, 1, 1, tzinfo=UTC)
REPLICAS = WorkloadInfo("w1", "llm", "team-a", WorkloadType.INFERENCE, pods=3, min_pods=1,
                        has_run=True, below_requested_grace_seconds=300)
ELASTIC_JOB = WorkloadInfo("w1", "ddp", "team-a", WorkloadType.DISTRIBUTED, pods=3,
                           min_pods=2, framework="PyTorch")


@pytest.mark.parametrize(
    ("workload", "pods", "seconds", "phase", "reason", "says"),
    [
        (REPLICAS, [pod("a", stage="running"), pod("b"), pod("c")], 10,
         Phase.RUNNING, "PodsRunning", "1 of 3 pods running on node-1 (its minimum is 1); "
                                       "2 more pods wait for room"),
        (REPLICAS, [pod("a", stage="running"), pod("b"), pod("c")], 300,
         Phase.DEGRADED, "BelowRequested", "2 pods above its minimum of 1 waited more than "
                                           "300 s for room"),
        # The wait counts from the pod that has waited longest.
        (REPLICAS, [pod("a", stage="running"), pod("b", stage="pulling"),
                    pod("c", created="2026-01-01T00:04:00Z")], 320,
         Phase.DEGRADED, "BelowRequested", "1 of 3 pods running"),
        # A pod just lost and not made again yet has not waited.
        (REPLICAS, [pod("a", stage="running"), pod("b", stage="running")], 1000,
         Phase.RUNNING, "PodsRunning", "2 of 3 pods running"),
        (REPLICAS, [pod(n, stage="running") for n in "abc"], 1000,
         Phase.RUNNING, "PodsRunning", "3 pods running on node-1"),
        # Below its minimum after it ran: a pod is lost.
        (REPLICAS, [pod("a"), pod("b"), pod("c")], 10, Phase.DEGRADED, "PodLost",
         "3 pods of 3 lost"),
        (REPLICAS, [pod("a", stage="crashloop", restarts=4), pod("b", stage="running")], 10,
         Phase.DEGRADED, "CrashLoopBackOff", "pod a keeps crashing"),
        # An elastic gang: the master and one worker are its minimum.
        (ELASTIC_JOB, [pod("m", role="master", stage="running"), pod("w0", role="worker"),
                       pod("w1", role="worker")], 10,
         Phase.PENDING, "WaitingForScheduler", "1/3 pods placed"),
        (ELASTIC_JOB, [pod("m", role="master", stage="running"),
                       pod("w0", role="worker", stage="pulling"), pod("w1", role="worker")],
         10, Phase.INITIALIZING, "PodsBound", "2/3 pods bound to nodes (its minimum is 2)"),
        (ELASTIC_JOB, [pod("m", role="master", stage="running"),
                       pod("w0", role="worker", stage="running"), pod("w1", role="worker")],
         10, Phase.RUNNING, "PodsRunning", "2 of 3 pods running on node-1 (its minimum is 2)"),
    ],
)
def test_elastic_workloads_run_on_their_minimum(workload, pods, seconds, phase, reason, says):
    result = fold(workload, pods, T0 + timedelta(seconds=seconds))
    assert (result.phase, result.reason) == (phase, reason)
    assert says in result.message
