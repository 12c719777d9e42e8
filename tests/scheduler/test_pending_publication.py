"""Which pending reasons a cycle publishes (`SchedulerService._outcome`, then `_apply`), cycle by
cycle for one waiting workload: a new reason, a new code, or a workload that stopped waiting
at once; the same code with other numbers at most every `pending_refresh_seconds` (kept back
meanwhile, and compared again the next cycle); an unschedulable one once; none for a workload
whose name cannot be a subject token. Pure: no broker, no database."""

from datetime import UTC, datetime, timedelta

import pytest

from fairway_contracts.workloads import Phase
from fairway_scheduler import core, service
from fairway_scheduler.core.cluster import PodStatus, WorkloadRequest, WorkloadStatus
from fairway_scheduler.service import SchedulerService
from fairway_scheduler.settings import SchedulerSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REFRESH = 5.0
FITS = core.PendingCode.NO_FITTING_NODE
OVER = core.PendingCode.OVER_FAIR_SHARE


class Cycles:
    """A scheduler service without connections, fed cycle results at chosen times."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, project: str = "team-a") -> None:
        settings = SchedulerSettings.model_validate(
            {"FAIRWAY_SCHEDULER_PENDING_REFRESH_SECONDS": REFRESH})
        self.service = SchedulerService(None, settings)  # type: ignore[arg-type]
        self.monkeypatch = monkeypatch
        state = self.service.state
        state.add_request(WorkloadRequest(
            id="w1", project=project, priority_class="train", priority=50, preemptible=True,
            node_pools=(), pods=1, min_pods=1, gpus_per_pod=1, submitted_at=T0))
        state.apply_status(WorkloadStatus(workload_id="w1", project=project, sequence=1,
                                          phase=Phase.PENDING, pods=(PodStatus("w1-0"),)),
                           released=())

    def at(self, seconds: float, *reasons: core.PendingReason) -> list[tuple[str, str]]:
        """A cycle `seconds` after T0 that finds `reasons`: the (code, message) it publishes,
        "" for "no longer waits"."""
        self.monkeypatch.setattr(service, "utcnow", lambda: T0 + timedelta(seconds=seconds))
        result = core.CycleResult(pending=reasons)
        outcome = self.service._outcome(result)
        self.service._apply(outcome, result)
        return [(event.code or "", event.message or "") if event.pending else ("", "")
                for _, _, event in outcome.pending_events]


def waits(code: core.PendingCode, message: str, unschedulable: bool = False
          ) -> core.PendingReason:
    return core.PendingReason("w1", code, message, unschedulable)


def test_numbers_alone_are_published_again_at_most_every_refresh(monkeypatch):
    cycles = Cycles(monkeypatch)
    assert cycles.at(0, waits(FITS, "2 GPUs free")) == [(FITS, "2 GPUs free")]
    assert cycles.at(1, waits(FITS, "3 GPUs free")) == []  # kept back
    assert cycles.at(2, waits(FITS, "4 GPUs free")) == []
    assert cycles.at(REFRESH + 0.5, waits(FITS, "5 GPUs free")) == [(FITS, "5 GPUs free")]


def test_a_reason_kept_back_is_compared_again_and_published_when_due(monkeypatch):
    cycles = Cycles(monkeypatch)
    cycles.at(0, waits(FITS, "2 GPUs free"))
    cycles.at(1, waits(FITS, "3 GPUs free"))
    # the same as the one kept back, but not as the one published: due now
    assert cycles.at(REFRESH + 1, waits(FITS, "3 GPUs free")) == [(FITS, "3 GPUs free")]
    # the same as the one published: nothing to say
    assert cycles.at(REFRESH + 2, waits(FITS, "3 GPUs free")) == []


def test_a_new_code_is_published_at_once(monkeypatch):
    cycles = Cycles(monkeypatch)
    cycles.at(0, waits(FITS, "2 GPUs free"))
    assert cycles.at(1, waits(OVER, "over its fair share")) == [(OVER, "over its fair share")]


def test_a_workload_that_no_longer_waits_is_told_at_once(monkeypatch):
    cycles = Cycles(monkeypatch)
    cycles.at(0, waits(FITS, "2 GPUs free"))
    assert cycles.at(1) == [("", "")]


def test_an_unschedulable_workload_is_told_once(monkeypatch):
    cycles = Cycles(monkeypatch)
    assert cycles.at(0, waits(FITS, "no node has 9 GPUs", True)) == [(FITS, "no node has 9 GPUs")]
    assert cycles.at(REFRESH * 3, waits(FITS, "no node has 9 GPUs (12 nodes)", True)) == []


def test_a_workload_whose_project_is_no_subject_token_is_not_published(monkeypatch):
    cycles = Cycles(monkeypatch, project="team.a")
    assert cycles.at(0, waits(FITS, "2 GPUs free")) == []
    assert cycles.at(REFRESH + 1, waits(FITS, "3 GPUs free")) == []
