"""Foreign usage: which pods count as placed by another scheduler, and their sum per node
(pure)."""

import pytest

from fairway_contracts.events import ForeignUsage
from fairway_lifecycle.core.foreign import ForeignPod, ForeignPods, foreign_pod


def pod(name: str = "p", node: str | None = "n1", *, scheduler: str = "default-scheduler",
        labels: dict | None = None, phase: str = "Running", gpu: str | None = "2",
        cpu: str | None = "500m", memory: str | None = "1Gi", init: dict | None = None,
        namespace: str = "ns") -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    limits = {"nvidia.com/gpu": gpu} if gpu is not None else {}
    spec: dict = {"schedulerName": scheduler,
                  "containers": [{"name": "c", "resources": {"requests": requests,
                                                             "limits": limits}}]}
    if node:
        spec["nodeName"] = node
    if init:
        spec["initContainers"] = [{"name": "i", "resources": {"requests": init}}]
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": spec, "status": {"phase": phase}}


@pytest.mark.parametrize("case, expected", [
    (pod(), ForeignPod("n1", 2, 500, 1024)),
    (pod(scheduler="volcano"), ForeignPod("n1", 2, 500, 1024)),  # another GPU scheduler
    (pod(phase="Pending"), ForeignPod("n1", 2, 500, 1024)),  # bound, starting: holds already
    (pod(gpu=None, memory=None), ForeignPod("n1", 0, 500, 0)),
    (pod(init={"cpu": "2", "nvidia.com/gpu": "1"}), ForeignPod("n1", 2, 2000, 1024)),
    (pod(gpu="bad"), ForeignPod("n1", 0, 500, 1024)),
    (pod(node=None), None),  # not bound: holds nothing yet
    (pod(scheduler="fairway"), None),  # a third-party pod Fairway binds: its workload's
    (pod(labels={"fairway.io/workload-id": "w"}), None),
    (pod(labels={"fairway.io/gpu-reservation": "true"}), None),
    (pod(phase="Succeeded"), None),
    (pod(phase="Failed"), None),
])
def test_what_a_pod_holds_when_another_scheduler_placed_it(case, expected):
    assert foreign_pod(case) == expected


def test_the_sum_per_node_follows_binds_ends_and_deletions():
    pods = ForeignPods()
    assert pods.put("ADDED", pod("a", node=None)) == set()
    assert pods.put("MODIFIED", pod("a")) == {"n1"}  # bound
    assert pods.put("ADDED", pod("b", gpu="1")) == {"n1"}
    assert pods.usage("n1") == ForeignUsage(pods=2, gpus=3, cpu_millis=1000, memory_mib=2048)
    assert pods.put("MODIFIED", pod("b", gpu="1")) == set()  # nothing new: no publish
    assert pods.put("MODIFIED", pod("a", phase="Succeeded")) == {"n1"}
    assert pods.usage("n1") == ForeignUsage(pods=1, gpus=1, cpu_millis=500, memory_mib=1024)
    assert pods.put("DELETED", pod("b", gpu="1")) == {"n1"}
    assert pods.usage("n1") == ForeignUsage()
    assert pods.nodes == {}


def test_a_pod_in_another_namespace_with_the_same_name_is_another_pod():
    pods = ForeignPods()
    pods.put("ADDED", pod("a", namespace="x"))
    pods.put("ADDED", pod("a", namespace="y", node="n2"))
    assert (pods.usage("n1").gpus, pods.usage("n2").gpus) == (2, 2)
