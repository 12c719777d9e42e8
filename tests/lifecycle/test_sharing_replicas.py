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
