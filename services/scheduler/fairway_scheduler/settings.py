"""Scheduler settings: the shared ones plus the cycle's pace."""

from pydantic import Field

from fairway_runtime import ServiceSettings


class SchedulerSettings(ServiceSettings):
    cycle_seconds: float = Field(
        default=0.5, gt=0, alias="FAIRWAY_SCHEDULER_CYCLE_SECONDS",
        description="a scheduling cycle runs at least this often",
    )
    settle_seconds: float = Field(
        default=0.02, ge=0, alias="FAIRWAY_SCHEDULER_SETTLE_SECONDS",
        description="after a change, wait this long for more before cycling, so that a burst "
                    "of events costs one cycle instead of one per event",
    )
    pending_refresh_seconds: float = Field(
        default=5.0, ge=0, alias="FAIRWAY_SCHEDULER_PENDING_REFRESH_SECONDS",
        description="a pending reason whose code stays the same and whose numbers change is "
                    "published again at most this often per workload (a new code, or no "
                    "longer pending, is published at once)",
    )
