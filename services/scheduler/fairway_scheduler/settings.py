"""Scheduler settings: the shared ones, the cycle's pace, and leader election."""

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from fairway_runtime import ServiceSettings
from fairway_scheduler.core import DisruptionSettings, TimeAwareFairness

ACTIONS = ("consolidate", "reclaim", "preempt", "stale-gang")

# Where a pod finds its own namespace (the service account's projected token volume).
_IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class SchedulerSettings(ServiceSettings):
    """The cycle's pace, the disruptive actions it may take, and active/standby by a Lease."""

    cycle_seconds: float = Field(
        default=0.5, gt=0, alias="FAIRWAY_SCHEDULER_CYCLE_SECONDS",
        description="a scheduling cycle runs at least this often",
    )
    settle_seconds: float = Field(
        default=0.02, ge=0, alias="FAIRWAY_SCHEDULER_SETTLE_SECONDS",
        description="after a change, wait this long for more before cycling, so that a burst "
                    "of events costs one cycle instead of one per event",
    )
    cycle_rest_ratio: float = Field(
        default=1.0, ge=0, alias="FAIRWAY_SCHEDULER_CYCLE_REST_RATIO",
        description="after a change, wait at least this many times as long as the last cycle "
                    "took before the next one (1: cycles take at most about half the time "
                    "while events pour in; 0: only the settle time)",
    )
    verify_kept_state: bool = Field(
        default=False, alias="FAIRWAY_SCHEDULER_VERIFY_KEPT_STATE",
        description="check every cycle that the snapshot and ledger the scheduler keeps "
                    "between cycles equal those made afresh, and that the cycle decides as on "
                    "a ledger made afresh (what is kept with the ledger: indexes, classes, "
                    "runs, nodes and pools) (a cycle that finds a difference fails and the "
                    "next starts from the tables); the test suite turns it on, it costs a "
                    "rebuild and a second decision per cycle",
    )
    pending_refresh_seconds: float = Field(
        default=5.0, ge=0, alias="FAIRWAY_SCHEDULER_PENDING_REFRESH_SECONDS",
        description="a pending reason whose code stays the same and whose numbers change is "
                    "published again at most this often per workload (a new code, or no "
                    "longer pending, is published at once)",
    )

    # Disruption (reclaim, preempt, consolidate, stale gangs) -----------------------------------
    disruptive_actions: str = Field(
        default="consolidate,reclaim,preempt,stale-gang",
        alias="FAIRWAY_SCHEDULER_DISRUPTIVE_ACTIONS",
        description="the disruptive actions a cycle may take, comma-separated (empty: none)",
    )
    stale_gang_grace_seconds: float = Field(
        default=60.0, ge=0, alias="FAIRWAY_SCHEDULER_STALE_GANG_GRACE_SECONDS",
        description="a running workload below its minimum pods for this long is evicted whole",
    )
    max_pods_moved_per_cycle: int = Field(
        default=8, ge=0, alias="FAIRWAY_SCHEDULER_MAX_PODS_MOVED_PER_CYCLE",
        description="consolidation moves at most this many pods per cycle",
    )

    reclaimer_saturation_multiplier: float = Field(
        default=1.0, ge=1.0, alias="FAIRWAY_SCHEDULER_RECLAIMER_SATURATION_MULTIPLIER",
        description="reclaim's saturation rule: a queue taking from another only to "
                    "maintain fair shares must end less saturated (allocated / fair share, "
                    "times this) than the queue it takes from; above 1 reclaims less eagerly",
    )

    missing_pool_grace_seconds: float = Field(
        default=60, ge=0, alias="FAIRWAY_SCHEDULER_MISSING_POOL_GRACE_SECONDS",
        description="a workload naming a node pool the scheduler has not heard of, or one "
                    "with no node, waits this long after its submission (the pool may be on "
                    "its way) before it is refused as never placeable",
    )

    @field_validator("disruptive_actions")
    @classmethod
    def _known_actions(cls, value: str) -> str:
        unknown = sorted({a.strip() for a in value.split(",") if a.strip()} - set(ACTIONS))
        if unknown:
            raise ValueError(f"unknown disruptive action {unknown[0]!r} (known: "
                             f"{', '.join(ACTIONS)})")
        return value

    def disruption(self) -> DisruptionSettings:
        """The core's disruption settings from these."""
        actions = {a.strip() for a in self.disruptive_actions.split(",") if a.strip()}
        return DisruptionSettings(
            reclaim="reclaim" in actions, preempt="preempt" in actions,
            consolidate="consolidate" in actions,
            stale_gang_grace=(self.stale_gang_grace_seconds if "stale-gang" in actions
                              else float("inf")),
            max_pods_moved=self.max_pods_moved_per_cycle,
            reclaimer_saturation_multiplier=self.reclaimer_saturation_multiplier,
            missing_pool_grace=self.missing_pool_grace_seconds)

    # Time-aware fairness ------------------------------------------------------------------
    time_aware_fairness: bool = Field(
        default=False, alias="FAIRWAY_SCHEDULER_TIME_AWARE_FAIRNESS",
        description="divide over-quota GPUs (and CPU, memory) by weights corrected by each "
                    "queue's past usage, in every node pool that does not set its own "
                    "(schedulingConfiguration.timeAwareFairness); deserved quota is never "
                    "affected",
    )
    time_aware_fairness_window_type: Literal["sliding", "tumbling"] = Field(
        default="sliding", alias="FAIRWAY_SCHEDULER_TIME_AWARE_FAIRNESS_WINDOW_TYPE",
        description="sliding: usage of the last window length counts; tumbling: usage since "
                    "the current window started (windows from 1970-01-01 UTC) counts",
    )
    time_aware_fairness_window_seconds: float = Field(
        default=7 * 86400, gt=0, alias="FAIRWAY_SCHEDULER_TIME_AWARE_FAIRNESS_WINDOW_SECONDS",
        description="the window's length",
    )
    time_aware_fairness_half_life_seconds: float = Field(
        default=0, ge=0, alias="FAIRWAY_SCHEDULER_TIME_AWARE_FAIRNESS_HALF_LIFE_SECONDS",
        description="usage this old counts half, twice as old a quarter (0: no decay)",
    )
    time_aware_fairness_k_value: float = Field(
        default=1.0, ge=0, alias="FAIRWAY_SCHEDULER_TIME_AWARE_FAIRNESS_K_VALUE",
        description="how strongly usage corrects a weight: P = max(0, W + k (W - U)), W the "
                    "queue's share of its siblings' weights, U of their usage",
    )
    time_aware_fairness_refresh_seconds: float = Field(
        default=60, gt=0, alias="FAIRWAY_SCHEDULER_TIME_AWARE_FAIRNESS_REFRESH_SECONDS",
        description="with time-aware fairness on anywhere, a cycle runs at least this often "
                    "even when nothing changed (usage moves fair shares as time passes)",
    )
    usage_bucket_seconds: float = Field(
        default=3600, gt=0, alias="FAIRWAY_SCHEDULER_USAGE_BUCKET_SECONDS",
        description="the usage history's resolution: what each queue held is summed per "
                    "bucket this long (a row per queue and bucket)",
    )
    usage_flush_seconds: float = Field(
        default=30, gt=0, alias="FAIRWAY_SCHEDULER_USAGE_FLUSH_SECONDS",
        description="usage accrued in memory is written to the database this often (and "
                    "when the scheduler stops or stops leading); a crash loses at most this",
    )
    usage_retention_seconds: float = Field(
        default=30 * 86400, gt=0, alias="FAIRWAY_SCHEDULER_USAGE_RETENTION_SECONDS",
        description="usage older than this is deleted; a window longer than it sees only "
                    "this much",
    )

    def time_aware(self) -> TimeAwareFairness:
        """The cluster's time-aware fairness, for the core."""
        return TimeAwareFairness(
            enabled=self.time_aware_fairness,
            window_type=self.time_aware_fairness_window_type,
            window_seconds=self.time_aware_fairness_window_seconds,
            half_life_seconds=self.time_aware_fairness_half_life_seconds,
            k_value=self.time_aware_fairness_k_value)

    # Leader election (active/standby) -------------------------------------------------------
    leader_election: Literal["auto", "on", "off"] = Field(
        default="auto", alias="FAIRWAY_SCHEDULER_LEADER_ELECTION",
        description="on: only the holder of a Kubernetes Lease consumes and decides; off: "
                    "this instance is the only one; auto: on when a kubeconfig is given or "
                    "the process runs in a cluster",
    )
    kubeconfig: str | None = Field(
        default=None, alias="KUBECONFIG",
        description="the cluster holding the Lease; unset: the in-cluster service account",
    )
    kubernetes_service_host: str | None = Field(
        default=None, alias="KUBERNETES_SERVICE_HOST",
        description="set by Kubernetes in every pod: the process runs in a cluster (leader "
                    "election auto is then on)",
    )
    lease_name: str = Field(
        default="fairway-scheduler", alias="FAIRWAY_SCHEDULER_LEASE_NAME",
        description="the Lease the schedulers of one installation compete for",
    )
    lease_namespace: str | None = Field(
        default=None, alias="FAIRWAY_SCHEDULER_LEASE_NAMESPACE",
        description="unset: the pod's own namespace in a cluster, else 'default'",
    )
    lease_seconds: float = Field(
        default=10.0, gt=0, alias="FAIRWAY_SCHEDULER_LEASE_SECONDS",
        description="a standby takes the Lease over when it has seen no renewal for this long",
    )
    lease_renew_seconds: float = Field(
        default=2.0, gt=0, alias="FAIRWAY_SCHEDULER_LEASE_RENEW_SECONDS",
        description="the leader renews the Lease this often",
    )
    lease_renew_deadline_seconds: float = Field(
        default=7.0, gt=0, alias="FAIRWAY_SCHEDULER_LEASE_RENEW_DEADLINE_SECONDS",
        description="the leader stops deciding when it could not renew for this long; less "
                    "than the lease duration, so it has stopped before anyone else may take over",
    )
    lease_retry_seconds: float = Field(
        default=2.0, gt=0, alias="FAIRWAY_SCHEDULER_LEASE_RETRY_SECONDS",
        description="a standby looks at the Lease this often",
    )

    @model_validator(mode="after")
    def _lease_timings(self) -> "SchedulerSettings":
        if not (self.lease_renew_seconds < self.lease_renew_deadline_seconds
                < self.lease_seconds):
            raise ValueError(
                "leader election needs FAIRWAY_SCHEDULER_LEASE_RENEW_SECONDS < "
                "FAIRWAY_SCHEDULER_LEASE_RENEW_DEADLINE_SECONDS < FAIRWAY_SCHEDULER_LEASE_SECONDS"
                f" (got {self.lease_renew_seconds:g} < {self.lease_renew_deadline_seconds:g} < "
                f"{self.lease_seconds:g})")
        return self

    def elect_leader(self) -> bool:
        """Whether this instance must hold the Lease to decide."""
        if self.leader_election == "auto":
            return bool(self.kubeconfig or self.kubernetes_service_host)
        return self.leader_election == "on"

    def lease_namespace_or_default(self) -> str:
        if self.lease_namespace:
            return self.lease_namespace
        if not self.kubeconfig and _IN_CLUSTER_NAMESPACE.exists():
            return _IN_CLUSTER_NAMESPACE.read_text().strip()
        return "default"
