"""A cycle's pending reasons as it tells them (`PendingReasons`): one by one, a class of
workloads at once, or again; read back as one `PendingReason` per workload, in the order told."""

import pytest

from fairway_scheduler.core import (
    PendingCode,
    PendingReason,
    PendingReasons,
    WaitReason,
    reasons_by_workload,
)

NO_ROOM = WaitReason(PendingCode.NO_FITTING_NODE, "needs 1 pod with 1 GPU; no node has one free")
OVER = WaitReason(PendingCode.OVER_FAIR_SHARE, "project a is at its fair share of 4 GPUs")


def told(*parts) -> PendingReasons:
    out = PendingReasons()
    for kind, part in parts:
        getattr(out, kind)(part)
    return out


def test_classes_told_together_read_as_their_members_in_order():
    reasons = told(("tell_classes", [([(1, "w1"), (4, "w4")], NO_ROOM),
                                     ([(2, "w2"), (3, "w3")], OVER)]))
    assert list(reasons) == [PendingReason("w1", *NO_ROOM), PendingReason("w2", *OVER),
                             PendingReason("w3", *OVER), PendingReason("w4", *NO_ROOM)]
    assert len(reasons) == 4
    assert reasons[1] == PendingReason("w2", *OVER)


def test_one_by_one_and_classes_keep_the_order_told():
    alone = PendingReason("w9", PendingCode.WAITING_FOR_PODS, "needs 2 pods together")
    reasons = told(("tell", alone), ("tell_classes", [([(1, "w1")], NO_ROOM)]))
    assert [r.workload_id for r in reasons] == ["w9", "w1"]
    assert reasons == (alone, PendingReason("w1", *NO_ROOM))
    assert repr(reasons) == repr((alone, PendingReason("w1", *NO_ROOM)))


def test_told_again_replaces_and_goes_last():
    again = PendingReason("w1", PendingCode.WAITING_FOR_PREEMPTION, "room is being made")
    reasons = told(("tell_classes", [([(1, "w1"), (2, "w2")], NO_ROOM)]), ("retell", again))
    assert list(reasons) == [PendingReason("w2", *NO_ROOM), again]
    assert reasons.by_workload() == {"w2": NO_ROOM,
                                     "w1": WaitReason(again.code, again.message)}


def test_a_class_shares_one_reason_by_workload():
    by_id = told(("tell_classes", [([(1, "w1"), (2, "w2")], NO_ROOM)])).by_workload()
    assert by_id == {"w1": NO_ROOM, "w2": NO_ROOM}
    assert by_id["w1"] is by_id["w2"]


def test_a_workload_told_twice_is_caught_when_read():
    reasons = told(("tell_classes", [([(1, "w1")], NO_ROOM)]),
                   ("tell", PendingReason("w1", *OVER)))
    with pytest.raises(AssertionError, match="w1"):
        list(reasons)


def test_reasons_by_workload_takes_any_form():
    one = PendingReason("w1", *OVER)
    assert reasons_by_workload([one]) == reasons_by_workload(PendingReasons([one])) == {
        "w1": OVER}
    mapping = {"w1": OVER}
    assert reasons_by_workload(mapping) is mapping
