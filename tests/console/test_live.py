"""The console's live feed: each browser is told only of the workloads its caller may see,
once per workload per batch (the newest transition), and one that falls behind is told to
reload rather than queue without end."""

import asyncio
import json
from datetime import UTC, datetime

from fairway_contracts.events import PhaseChanged
from fairway_contracts.workloads import Phase, WorkloadType
from fairway_submission.console import live
from fairway_submission.console.live import PhaseFeed, Visible

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def changed(wid: str, project: str, sequence: int, phase: Phase,
            kind: WorkloadType = WorkloadType.TRAINING) -> PhaseChanged:
    return PhaseChanged(event_id=f"{wid}-{sequence}", workload_id=wid, name=wid,
                        project=project, workload_type=kind, sequence=sequence,
                        previous_phase=None, phase=phase, reason="r", message="m", time=T0)


def told(watcher) -> list[dict]:
    out = []
    while not watcher.queue.empty():
        event, data = watcher.queue.get_nowait().strip().split("\n")
        assert event == "event: phase"
        out.append(json.loads(data.removeprefix("data: ")))
    return out


def test_each_browser_hears_only_what_its_caller_may_see():
    feed = PhaseFeed()
    admin = feed.watch(Visible(everything=True))
    researcher = feed.watch(Visible(False, frozenset({"team-a"})))
    engineer = feed.watch(Visible(False, inference_only=frozenset({"team-b"})))
    feed.publish([changed("w1", "team-a", 1, Phase.PENDING),
                  changed("w2", "team-b", 1, Phase.RUNNING),
                  changed("w3", "team-b", 1, Phase.RUNNING, WorkloadType.INFERENCE)])
    assert [e["id"] for e in told(admin)] == ["w1", "w2", "w3"]
    assert [e["id"] for e in told(researcher)] == ["w1"]
    assert [e["id"] for e in told(engineer)] == ["w3"]


def test_a_batch_tells_each_workloads_newest_phase_once():
    feed = PhaseFeed()
    watcher = feed.watch(Visible(everything=True))
    feed.publish([changed("w1", "p", 2, Phase.RUNNING), changed("w1", "p", 3,
                  Phase.COMPLETED), changed("w1", "p", 1, Phase.PENDING)])
    assert [(e["phase"], e["sequence"]) for e in told(watcher)] == [("Completed", 3)]


def test_a_browser_that_falls_behind_is_marked_and_one_that_left_hears_nothing():
    feed = PhaseFeed()
    slow = feed.watch(Visible(everything=True))
    slow.queue = asyncio.Queue(2)
    gone = feed.watch(Visible(everything=True))
    feed.leave(gone)
    feed.publish([changed(f"w{i}", "p", 1, Phase.PENDING) for i in range(5)])
    assert slow.behind and slow.queue.qsize() == 2
    assert gone.queue.empty()
    assert live.BACKLOG >= 100  # the real bound: a burst of a big batch fits
