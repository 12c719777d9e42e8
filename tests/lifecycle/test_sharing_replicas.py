"""GPU sharing with several lifecycle replicas (shards): a replica never releases the
reservation another replica made for a fraction it is binding."""

import time

from fairway_lifecycle.core.fractions import reservation_pod
from fairway_lifecycle.sharing import GpuSharing


def test_a_reservation_another_replica_made_for_a_bind_on_its_way_stays():
    """Two lifecycle replicas (shards): one makes a device's reservation for the fraction it
    binds; the other sees the reservation, maybe before the pod that claims it, and must not
    release it as unused (it did: the bind then waited 60 s and the pod was made again)."""
    other = GpuSharing(None, image="x", namespace="fairway-reservation", timeout_seconds=60,
                       check_seconds=1, resync_seconds=60)
    reservation = reservation_pod("n1", 0, "x", "fairway-reservation")
    other.on_reservation("ADDED", reservation)
    assert ("n1", 0) in other.reservations and ("n1", 0) not in other.in_use(time.monotonic())
    assert other._created[("n1", 0)] > 0  # the grace a bind on its way gets
    fraction = {"metadata": {"namespace": "team", "name": "f",
                             "labels": {"fairway.io/gpu-fraction": "true"},
                             "annotations": {"fairway.io/gpu-devices": "0",
                                             "fairway.io/bind-node": "n1"}},
                "spec": {}, "status": {"phase": "Pending"}}
    other.on_pod("MODIFIED", fraction)
    assert ("n1", 0) in other.in_use(time.monotonic())
    other.on_pod("DELETED", fraction)
    assert ("n1", 0) not in other.in_use(time.monotonic())


async def test_a_reservation_its_node_refused_is_made_again_while_a_fraction_waits():
    """The node refused the reservation pod at admission (a device still held by a pod the
    scheduler did not count): it is Failed and will never report its device. It is deleted and
    made again while the fraction waits, not waited for until the bind times out, again and
    again (a workload stayed Pending for ever that way)."""
    from fairway_contracts.events import PodPlacement
    from fairway_contracts.workloads import Compute
    from fairway_lifecycle.sharing import FractionBind
    from tests.lifecycle.test_controller import FakeKube

    kube = FakeKube()
    sharing = GpuSharing(kube, image="x", namespace="fairway-reservation", timeout_seconds=60,
                         check_seconds=1, resync_seconds=60)
    sharing.find_unbound = list
    job = FractionBind("team", PodPlacement(pod="f", node="n1", gpu_devices=[7], portion=0.5),
                       Compute(gpu_portion_request=0.5), "f", time.monotonic())
    sharing.waiting[job.key] = job
    refused = reservation_pod("n1", 7, "x", "fairway-reservation")
    sharing.on_reservation("ADDED", refused)
    assert ("n1", 7) in sharing.reservations
    refused["status"] = {"phase": "Failed", "reason": "OutOfnvidia.com/gpu",
                         "message": "Pod was rejected: Node didn't have enough resource"}
    sharing.on_reservation("MODIFIED", refused)
    assert ("n1", 7) not in sharing.reservations and sharing._poked.is_set()
    await sharing.converge()
    name = refused["metadata"]["name"]
    assert kube.calls.index(("delete", name, 0)) < kube.calls.index(("create", name))
    assert job.key in sharing.waiting  # bound once the new one reports
    reported = reservation_pod("n1", 7, "x", "fairway-reservation")
    reported["metadata"]["annotations"]["fairway.io/gpu-uuid"] = "GPU-7"
    sharing.on_reservation("ADDED", reported)
    assert sharing.reservations[("n1", 7)] == "GPU-7"


async def test_a_whole_gpu_bind_first_clears_a_reservation_its_last_fraction_left():
    """The scheduler gives a whole GPU to a device whose last fraction just ended: the
    reservation pod still there would make the kubelet refuse the pod, so it goes first; a
    reservation a fraction still uses, or one just made for a bind on its way to another
    device, stays."""
    from tests.lifecycle.test_controller import FakeKube

    kube = FakeKube()
    sharing = GpuSharing(kube, image="x", namespace="fairway-reservation", timeout_seconds=60,
                         check_seconds=1, resync_seconds=60)
    for index in (5, 6, 7):
        sharing.on_reservation("ADDED", reservation_pod("n1", index, "x", "fairway-reservation"))
    fraction = {"metadata": {"namespace": "team", "name": "f",
                             "labels": {"fairway.io/gpu-fraction": "true"},
                             "annotations": {"fairway.io/gpu-devices": "5"}},
                "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    sharing.on_pod("ADDED", fraction)  # device 5 is shared; 6 and 7 were just made (grace)
    await sharing.clear_for_whole("n1", [6])
    deleted = [c[1] for c in kube.calls if c[0] == "delete"]
    assert deleted == ["gpu-reservation-n1-6"]
    assert set(sharing.reservations) == {("n1", 5), ("n1", 7)}
