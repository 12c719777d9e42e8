"""Lifecycle's state machine, pinned by tables: pod events and requests in → phase transitions
and Kubernetes intents out. The controller and `fairway lifecycle replay` both run it."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from fairway_contracts import EffectiveSpec, Phase, WorkloadType
from fairway_lifecycle.core.fold import WorkloadInfo
from fairway_lifecycle.core.machine import (
    CreatePod,
    DeletePod,
    EnsureNamespace,
    EvictPod,
    Machine,
    PodTarget,
    Workload,
    action_ignored,
    converge,
    desire_for,
)
from tests.lifecycle.podfactory import pod

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NS = "fairway-team-a"
W = WorkloadType


def info(kind: WorkloadType = W.TRAINING, **extra) -> WorkloadInfo:
    return WorkloadInfo("w1", "bert", "team-a", kind, **extra)


class Driver:
    """Feeds one workload's inputs to a machine the way the controller does (every input is
    folded at once), keeping the transitions (a move of the phase; a new reason within the
    same phase is none) and the intents it answers."""

    def __init__(self, workload: WorkloadInfo):
        self.machine = Machine()
        self.machine.track("w1", Workload(workload))
        self.now = T0
        self.transitions: list[tuple[Phase, str]] = []
        self.messages: list[str] = []
        self.intents: list = []
        self.steps: list = []
        self.fold()

    def fold(self) -> None:
        step = self.machine.fold("w1", self.now)
        if step is not None:
            self.steps.append(step)
            if step.result is not None:
                self.transitions.append((step.result.phase, step.result.reason))
                self.messages.append(step.result.message)

    def run(self, *inputs) -> "Driver":
        for item in inputs:
            self.now += timedelta(seconds=1)
            what, *args = item
            if what in ("ADDED", "MODIFIED", "DELETED"):
                self.machine.observe(what, args[0])
            elif what in ("stop", "resume", "delete"):
                w = self.machine.workloads["w1"]
                if not action_ignored(w.phase, w.info.desired, what) and (
                        desire := desire_for(w.info.desired, what)):
                    self.machine.desire("w1", *desire, *args)
            elif what == "preempt":
                preemption = self.machine.preemption("w1", args[0] if args else None)
                if preemption is not None:
                    self.intents += self.machine.preempt("w1", preemption, *args[1:])
            elif what == "reject":
                if self.machine.rejectable("w1"):
                    self.intents += self.machine.reject("w1", *args)
            elif what == "wait":
                self.now += timedelta(seconds=args[0])
            self.fold()
        return self

    @property
    def attempt(self) -> int:
        return self.machine.workloads["w1"].info.attempt


def up(name: str, *stages: str, **kw) -> list[tuple[str, dict]]:
    """A pod ADDED unbound, then MODIFIED through `stages` on node-1."""
    return [("ADDED", pod(name, **kw)),
            *[("MODIFIED", pod(name, stage=s, node="node-1", **kw)) for s in stages]]


START = [(Phase.CREATING, "CreatingPods"), (Phase.PENDING, "WaitingForScheduler"),
         (Phase.INITIALIZING, "PodsBound"), (Phase.RUNNING, "PodsRunning")]
RUNNING = up("p", "pulling", "running")
GONE = ("DELETED", pod("p", stage="running", node="node-1"))


def terminating(p: dict) -> dict:
    p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return p


# evicted: deleted gracefully, its grace period running
EVICTING = ("MODIFIED", terminating(pod("p", stage="running", node="node-1")))


@pytest.mark.parametrize(("workload", "inputs", "expected"), [
    # a training runs to completion
    (info(), [*RUNNING, ("MODIFIED", pod("p", stage="succeeded", node="node-1"))],
     [*START, (Phase.COMPLETED, "Succeeded")]),
    # stop, its pod goes, resume: the pods come again
    (info(), [*RUNNING, ("stop",), GONE, ("resume",), *up("p", "pulling", "running")],
     [*START, (Phase.STOPPING, "Stopping"), (Phase.STOPPED, "Stopped"),
      (Phase.RESUMING, "Resuming"), *START[1:]]),
    # a stop asked twice is one ask; a resume of a running workload asks for nothing
    (info(), [*RUNNING, ("resume",), ("stop",), ("stop",), GONE],
     [*START, (Phase.STOPPING, "Stopping"), (Phase.STOPPED, "Stopped")]),
    # delete, then the pod goes; nothing more can be asked of it
    (info(), [*RUNNING, ("delete",), GONE, ("resume",), ("stop",)],
     [*START, (Phase.DELETING, "Deleting"), (Phase.DELETED, "Deleted")]),
    # a finished workload can be deleted, not stopped
    (info(), [*RUNNING, ("MODIFIED", pod("p", stage="succeeded", node="node-1")), ("stop",),
              ("delete",), ("DELETED", pod("p", stage="succeeded", node="node-1"))],
     [*START, (Phase.COMPLETED, "Succeeded"), (Phase.DELETING, "Deleting"),
      (Phase.DELETED, "Deleted")]),
    # preempted: Pending until placed again (a new pod, a new uid)
    (info(), [*RUNNING, ("preempt",), ("MODIFIED", pod("p", stage="evicted", node="node-1")),
              ("DELETED", pod("p", stage="evicted", node="node-1")),
              *up("p", "pulling", "running", uid="again")],
     [*START, (Phase.PENDING, "Preempted"), (Phase.INITIALIZING, "PodsBound"),
      (Phase.RUNNING, "PodsRunning")]),
    # preempted with terminateAfterPreemption: Failed
    (info(terminate_after_preemption=True), [*RUNNING, ("preempt",)],
     [*START, (Phase.FAILED, "Evicted")]),
    # ... and deleted while its evicted pod still terminates: Deleting until it is gone
    (info(terminate_after_preemption=True),
     [*RUNNING, ("preempt",), EVICTING, ("delete",), GONE],
     [*START, (Phase.FAILED, "Evicted"), (Phase.DELETING, "Deleting"),
      (Phase.DELETED, "Deleted")]),
    # ... or once it is gone: Deleted at once
    (info(terminate_after_preemption=True),
     [*RUNNING, ("preempt",), EVICTING, GONE, ("delete",)],
     [*START, (Phase.FAILED, "Evicted"), (Phase.DELETED, "Deleted")]),
    # an exit code with one retry: a second attempt, then BackoffLimitExceeded
    (info(backoff_limit=1),
     [*RUNNING, ("MODIFIED", pod("p", stage="failed", exit_code=3, node="node-1")),
      *up("p2", "pulling", "running", attempt=2),
      ("MODIFIED", pod("p2", stage="failed", exit_code=3, node="node-1", attempt=2))],
     [*START, (Phase.PENDING, "Retrying"), (Phase.INITIALIZING, "PodsBound"),
      (Phase.RUNNING, "PodsRunning"), (Phase.FAILED, "BackoffLimitExceeded")]),
    # a crash loop degrades a workspace; the kubelet's restarts heal it
    (info(W.WORKSPACE), [*up("p", "pulling", "running", "crashloop", "running")],
     [*START, (Phase.DEGRADED, "CrashLoopBackOff"), (Phase.RUNNING, "PodsRunning")]),
    # a gang that loses a pod is degraded
    (info(W.DISTRIBUTED, pods=2, min_pods=2, framework="PyTorch"),
     [*up("m", "running", role="master"), *up("w", "running", role="worker"),
      ("DELETED", pod("w", stage="running", node="node-1", role="worker"))],
     [(Phase.CREATING, "CreatingPods"), (Phase.PENDING, "CreatingPods"),
      (Phase.RUNNING, "PodsRunning"), (Phase.DEGRADED, "PodLost")]),
    # the scheduler says it can never be placed
    (info(), [*up("p"), ("reject", "NoSuchResource", "needs 64 GPUs on one node")],
     [*START[:2], (Phase.FAILED, "NoSuchResource")]),
    # an image that cannot be pulled fails once its deadline passes, without a pod event
    (info(image_pull_deadline_seconds=60),
     [*up("p", "pulling", "pull-backoff", bound_at=T0.isoformat()), ("wait", 30),
      ("wait", 60)],
     [*START[:3], (Phase.FAILED, "ImagePullBackOff")]),
])
def test_transitions(workload, inputs, expected):
    assert Driver(workload).run(*inputs).transitions == expected


def test_a_retry_starts_the_next_attempt():
    driver = Driver(info(backoff_limit=2)).run(
        *RUNNING, ("MODIFIED", pod("p", stage="failed", exit_code=1, node="node-1")))
    assert driver.attempt == 2
    assert driver.steps[-1].attempt == 2
    assert "2 retries left" in driver.messages[-1]
    # the failed pod of attempt 1 no longer counts: the retry waits for its own pods
    driver.run(("MODIFIED", pod("p", stage="failed", exit_code=1, node="node-1")))
    assert driver.transitions[-1] == (Phase.PENDING, "Retrying")


def test_a_preemption_evicts_every_pod_once_and_says_who_needed_the_room():
    driver = Driver(info(pods=2)).run(*up("a", "running"), *up("b", "running"))
    driver.run(("preempt", None, ("Reclaim", "team-b needs its 2 GPUs back")))
    assert driver.intents == [EvictPod(NS, "a"), EvictPod(NS, "b")]
    assert driver.transitions[-1] == (Phase.PENDING, "Preempted")
    assert driver.messages[-1] == ("preempted by the scheduler (Reclaim): team-b needs its 2 "
                                   "GPUs back; waiting to be scheduled again")
    driver.run(("preempt", None, ("Reclaim", "again")))  # redelivered
    assert driver.intents == [EvictPod(NS, "a"), EvictPod(NS, "b")]


def test_a_preemption_of_some_pods_leaves_the_workload_running_on_the_rest():
    driver = Driver(info(W.INFERENCE, pods=2)).run(*up("a", "running", role="replica"),
                                                  *up("b", "running", role="replica"))
    driver.run(("preempt", ["b"]))
    assert driver.intents == [EvictPod(NS, "b")]
    w = driver.machine.workloads["w1"]
    assert not w.info.preempted and w.info.preempted_pods == {"uid-b-1"}
    # One replica of two, at its minimum of one: it still serves.
    assert driver.transitions[-1] == (Phase.RUNNING, "PodsRunning")


def test_a_workload_not_running_is_not_preempted():
    driver = Driver(info()).run(*RUNNING, ("stop",), ("preempt",))
    assert driver.intents == []
    assert driver.transitions[-1] == (Phase.STOPPING, "Stopping")


def test_a_rejection_deletes_the_unbound_pods_at_once():
    driver = Driver(info(pods=2)).run(*up("a", "pulling"), *up("b"))
    driver.run(("reject", "NoSuchResource", "needs 64 GPUs"))
    # one of its pods is bound: it stays a candidate for the scheduler's placement
    assert driver.intents == [DeletePod(NS, "b", grace_seconds=0)]
    driver.run(("reject", "NoSuchResource", "again"))  # said once
    assert driver.intents == [DeletePod(NS, "b", grace_seconds=0)]


def test_a_scheduling_rule_stop_names_the_rule():
    driver = Driver(info(W.WORKSPACE)).run(
        *RUNNING, ("stop", ("IdleGpuLimitReached", "stopped: idle for 600 s")), GONE)
    assert driver.transitions[-2:] == [(Phase.STOPPING, "IdleGpuLimitReached"),
                                       (Phase.STOPPED, "IdleGpuLimitReached")]
    assert driver.messages[-1] == "stopped: idle for 600 s"
    # a user's resume is theirs: the rule's reason is gone
    driver.run(("resume",), ("stop",))
    assert driver.transitions[-1] == (Phase.STOPPED, "Stopped")


def test_a_finished_workload_still_reports_its_pod_group_until_its_pods_are_gone():
    driver = Driver(info(W.DISTRIBUTED, pods=2, framework="PyTorch")).run(
        *up("m", "running", role="master"), *up("w", "running", role="worker"),
        ("MODIFIED", pod("m", stage="succeeded", node="node-1", role="master")))
    assert driver.transitions[-1] == (Phase.COMPLETED, "Succeeded")
    steps = len(driver.steps)
    driver.run(("DELETED", pod("w", stage="running", node="node-1", role="worker")))
    assert len(driver.steps) == steps + 1
    last = driver.steps[-1]
    assert last.result is None and last.signature == "m@node-1/done"
    driver.run(("wait", 5))  # nothing moved
    assert len(driver.steps) == steps + 1


def test_the_same_pods_fold_to_no_step():
    driver = Driver(info()).run(*RUNNING)
    steps = len(driver.steps)
    driver.run(("MODIFIED", pod("p", stage="running", node="node-1")))
    assert len(driver.steps) == steps


def test_pods_of_workloads_not_tracked_wait_for_them():
    machine = Machine()
    assert machine.observe("ADDED", pod("p", workload="w2")) == "w2"
    assert machine.observe("ADDED", {"metadata": {"name": "other", "labels": {}}}) is None
    machine.track("w2", Workload(replace(info(), workload_id="w2")))
    step = machine.fold("w2", T0)
    assert step.result.phase == Phase.PENDING and step.signature == "p@"
    machine.forget("w2")
    machine.forget_untracked_pods()
    assert machine.pods_of("w2") == []


@pytest.mark.parametrize(("phase", "desired", "action", "ignored", "desire"), [
    (Phase.RUNNING, "Running", "stop", False, ("Stopped", False)),
    (Phase.RUNNING, "Running", "resume", False, None),
    (Phase.STOPPED, "Stopped", "resume", False, ("Running", True)),
    (Phase.STOPPING, "Stopped", "stop", False, None),
    (Phase.RUNNING, "Running", "delete", False, ("Deleted", False)),
    (Phase.COMPLETED, "Running", "stop", True, None),
    (Phase.COMPLETED, "Running", "delete", False, ("Deleted", False)),
    (Phase.DELETING, "Deleted", "delete", True, None),
    (Phase.DELETED, "Deleted", "resume", True, None),
])
def test_what_an_action_asks(phase, desired, action, ignored, desire):
    assert action_ignored(phase, desired, action) is ignored
    if not ignored:
        assert desire_for(desired, action) == desire


# converging the pods --------------------------------------------------------------------------

SPEC = EffectiveSpec.model_validate({"image": "busybox", "priorityClass": "train",
                                     "preemptible": True, "backoffLimit": 6, "pods": 2,
                                     "compute": {"gpuDevicesRequest": 1}})


def target(phase: Phase = Phase.PENDING, desired: str = "Running", attempt: int = 1,
           spec: EffectiveSpec = SPEC) -> PodTarget:
    return PodTarget("0123456789ab", "bert", "team-a", W.TRAINING, spec, NS, attempt, phase,
                     desired)


def names(intents) -> list:
    return [(type(i).__name__, i.manifest["metadata"]["name"] if isinstance(i, CreatePod)
             else getattr(i, "name", None), getattr(i, "grace_seconds", None))
            for i in intents]


@pytest.mark.parametrize(("target", "pods", "expected"), [
    # nothing yet: the namespace, then every pod of the attempt
    (target(), [], [("EnsureNamespace", NS, None), ("CreatePod", "bert-01234567-1-0", None),
                    ("CreatePod", "bert-01234567-1-1", None)]),
    # one there: only the other is made
    (target(), [pod("bert-01234567-1-0")],
     [("EnsureNamespace", NS, None), ("CreatePod", "bert-01234567-1-1", None)]),
    (target(), [pod("bert-01234567-1-0"), pod("bert-01234567-1-1")], []),
    # a retry recorded: the older attempt's pods go at once, the new attempt's are made
    (target(attempt=2), [pod("bert-01234567-1-0", stage="failed"),
                         terminating(pod("bert-01234567-1-1", stage="running"))],
     [("DeletePod", "bert-01234567-1-0", 0), ("EnsureNamespace", NS, None),
      ("CreatePod", "bert-01234567-2-0", None), ("CreatePod", "bert-01234567-2-1", None)]),
    # a pod its node refused goes at once; once gone it is made again, same attempt
    (target(), [pod("bert-01234567-1-0", stage="refused"), pod("bert-01234567-1-1")],
     [("DeletePod", "bert-01234567-1-0", 0)]),
    (target(), [terminating(pod("bert-01234567-1-0", stage="refused")),
                pod("bert-01234567-1-1")], []),
    (target(), [pod("bert-01234567-1-1")],
     [("EnsureNamespace", NS, None), ("CreatePod", "bert-01234567-1-0", None)]),
    # stopped or deleted: every pod goes, gracefully, once
    (target(Phase.STOPPING, "Stopped"), [pod("a", stage="running"),
                                         terminating(pod("b", stage="running"))],
     [("DeletePod", "a", None)]),
    (target(Phase.DELETING, "Deleted"), [pod("a", stage="succeeded")],
     [("DeletePod", "a", None)]),
    (target(Phase.STOPPED, "Stopped"), [], []),
    # over: what still runs must go (a PyTorch job's workers after its master completed);
    # finished pods stay for their logs
    (target(Phase.COMPLETED), [pod("m", stage="succeeded"), pod("w", stage="running")],
     [("DeletePod", "w", None)]),
    (target(Phase.FAILED), [pod("m", stage="failed")], []),
    # deleted while Failed: what still runs goes, a pod already terminating is left be
    (target(Phase.FAILED, "Deleted"), [terminating(pod("a", stage="running"))], []),
    (target(Phase.DELETING, "Deleted"), [terminating(pod("a", stage="running")),
                                         pod("b", stage="running")],
     [("DeletePod", "b", None)]),
])
def test_converge(target, pods, expected):
    assert names(converge(target, pods)) == expected


def test_created_pods_are_the_workloads_manifests():
    intents = converge(target(), [])
    assert isinstance(intents[0], EnsureNamespace)
    manifest = intents[1].manifest
    assert manifest["metadata"]["namespace"] == NS
    assert manifest["metadata"]["labels"]["fairway.io/attempt"] == "1"
    assert manifest["spec"]["schedulerName"] == "fairway"


def test_a_replica_waiting_for_room_past_the_grace_period_degrades_the_workload():
    driver = Driver(info(W.INFERENCE, pods=2, below_requested_grace_seconds=60))
    driver.run(*up("a", "pulling", "running", role="replica"), ("ADDED", pod("b", role="replica")))
    assert driver.transitions[-1] == (Phase.RUNNING, "PodsRunning")
    assert driver.messages[-1].endswith("1 more pod waits for room")
    driver.run(("wait", 60))
    assert driver.transitions[-1] == (Phase.DEGRADED, "BelowRequested")
    driver.run(("MODIFIED", pod("b", stage="running", node="node-2", role="replica")))
    assert driver.transitions[-1] == (Phase.RUNNING, "PodsRunning")
    assert driver.messages[-1] == "2 pods running on node-1, node-2"
