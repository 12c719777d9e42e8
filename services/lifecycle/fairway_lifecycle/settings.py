"""Lifecycle's settings: the shared ones, the Kubernetes API, and the scheduling rules' pace."""

from pydantic import AliasChoices, Field, model_validator

from fairway_runtime import ServiceSettings


class LifecycleSettings(ServiceSettings):
    """The cluster lifecycle drives, and how it watches, evicts and checks running workloads."""

    kubeconfig: str | None = Field(
        default=None, alias="KUBECONFIG",
        description="the cluster whose namespaces and pods lifecycle manages; unset: the "
                    "in-cluster service account")
    namespace_prefix: str = Field(
        default="fairway-",
        validation_alias=AliasChoices("FAIRWAY_LIFECYCLE_NAMESPACE_PREFIX",
                                      "FAIRWAY_NAMESPACE_PREFIX"),
        description="a project's pods run in the namespace named this prefix followed by "
                    "the project's name")
    resync_seconds: float = Field(
        default=300.0, alias="FAIRWAY_LIFECYCLE_RESYNC_SECONDS",
        description="how often the pod and node watches list everything again (a missed "
                    "event is repaired at the latest then)")
    kube_workers: int = Field(
        default=32, ge=1, le=256, alias="FAIRWAY_LIFECYCLE_KUBE_WORKERS",
        description="threads making Kubernetes API calls concurrently (each call waits on "
                    "the API server most of its time: 32 created pods 2-4 times as fast as "
                    "8 and cost less CPU per workload, as the work waiting on them shrank)")
    eviction_grace_seconds: int = Field(
        default=10,
        validation_alias=AliasChoices("FAIRWAY_LIFECYCLE_EVICTION_GRACE_SECONDS",
                                      "FAIRWAY_EVICTION_GRACE_SECONDS"),
        description="how long a preempted pod may take to shut down (checkpoint) before it "
                    "is killed")
    retry_base_seconds: float = Field(
        default=0.5, gt=0, alias="FAIRWAY_LIFECYCLE_RETRY_BASE_SECONDS",
        description="first pause before a workload's pods are made again after a Kubernetes "
                    "call failed for a reason that may pass (5xx, 409, 429, 403, a timeout); "
                    "it doubles with each failure")
    retry_cap_seconds: float = Field(
        default=60.0, gt=0, alias="FAIRWAY_LIFECYCLE_RETRY_CAP_SECONDS",
        description="the longest pause between such retries; a refusal no retry can change "
                    "(400, 422 ...) fails the workload at once instead")
    rules_check_seconds: float = Field(
        default=5.0, gt=0,
        validation_alias=AliasChoices("FAIRWAY_LIFECYCLE_RULES_CHECK_SECONDS",
                                      "FAIRWAY_RULES_CHECK_SECONDS"),
        description="how often running workloads are checked against their scheduling rules "
                    "and their GPU utilization sampled")
    utilization_window_seconds: float = Field(
        default=30.0, gt=0,
        validation_alias=AliasChoices("FAIRWAY_LIFECYCLE_UTILIZATION_WINDOW_SECONDS",
                                      "FAIRWAY_UTILIZATION_WINDOW_SECONDS"),
        description="the window of the idle GPU limit and of utilization events (Run:ai: 30 "
                    "s); a test knob, the end-to-end stack uses 2 s")
    below_requested_grace_seconds: float = Field(
        default=300.0, ge=0, alias="FAIRWAY_LIFECYCLE_BELOW_REQUESTED_GRACE_SECONDS",
        description="an elastic workload (parallel training pods, inference replicas, an "
                    "elastic distributed job) runs once its minimum of pods runs; it is "
                    "Degraded when a pod above the minimum has waited this long for room")
    reservation_image: str = Field(
        default="fairway", alias="FAIRWAY_LIFECYCLE_RESERVATION_IMAGE",
        description="the image of the reservation pods that hold shared GPU devices (it runs "
                    "`python -m fairway_lifecycle.reservation`): Fairway's own image")
    reservation_namespace: str = Field(
        default="fairway-reservation", alias="FAIRWAY_LIFECYCLE_RESERVATION_NAMESPACE",
        description="where the reservation pods of shared GPU devices run")
    reservation_timeout_seconds: float = Field(
        default=60.0, gt=0, alias="FAIRWAY_LIFECYCLE_RESERVATION_TIMEOUT_SECONDS",
        description="how long a GPU fraction's bind waits for the reservation pod of its "
                    "device to report the device; past it the pod is made and placed again")
    reservation_check_seconds: float = Field(
        default=5.0, gt=0, alias="FAIRWAY_LIFECYCLE_RESERVATION_CHECK_SECONDS",
        description="how often reservation pods of devices no fraction uses any more are "
                    "deleted (and missing ones made again)")
    node_level_check_seconds: float = Field(
        default=2.0, gt=0, alias="FAIRWAY_LIFECYCLE_NODE_LEVEL_CHECK_SECONDS",
        description="how often the node-level scheduler looks again at the fractions on nodes "
                    "of pools where it is on (it also looks at once when a fraction changes)")
    serving_metrics_url: str | None = Field(
        default=None, alias="FAIRWAY_LIFECYCLE_SERVING_METRICS_URL",
        description="where inference servers' load is read, in the Prometheus text format "
                    "(kubesim's /metrics/serving; on a real cluster Prometheus' /federate "
                    "with the recording rules of docs/operations.md); unset: autoscaling "
                    "keeps each server's count (no metric)")
    autoscale_seconds: float = Field(
        default=5.0, gt=0, alias="FAIRWAY_LIFECYCLE_AUTOSCALE_SECONDS",
        description="how often inference servers' metrics are read and their replica "
                    "counts decided")
    autoscale_metric_window_seconds: float = Field(
        default=30.0, gt=0, alias="FAIRWAY_LIFECYCLE_AUTOSCALE_METRIC_WINDOW_SECONDS",
        description="the window a server's metric is averaged over before it is compared "
                    "with its threshold")
    autoscale_scale_down_seconds: float = Field(
        default=300.0, ge=0, alias="FAIRWAY_LIFECYCLE_AUTOSCALE_SCALE_DOWN_SECONDS",
        description="how long a lower replica count must hold before a server scales down "
                    "(the HPA's stabilisation window: against flapping)")

    # Shards (several replicas) --------------------------------------------------------------
    sharding: bool = Field(
        default=False, alias="FAIRWAY_LIFECYCLE_SHARDING",
        description="on: this replica holds Kubernetes Leases of some shards and drives only "
                    "their workloads (run it on for two replicas or more); off: this one "
                    "process drives every workload, no Leases")
    shards: int = Field(
        default=16, ge=1, le=256, alias="FAIRWAY_LIFECYCLE_SHARDS",
        description="how many shards the workloads are split into, by a hash of the project "
                    "name; more than the replicas ever run, the same on every replica, and "
                    "never changed while workloads run")
    shard_lease_namespace: str = Field(
        default="default", alias="FAIRWAY_LIFECYCLE_SHARD_LEASE_NAMESPACE",
        description="where the shard Leases (fairway-lifecycle-shard-<n>) and the replicas' "
                    "member Leases are kept")
    shard_lease_seconds: float = Field(
        default=10.0, gt=0, alias="FAIRWAY_LIFECYCLE_SHARD_LEASE_SECONDS",
        description="a shard whose Lease has not been renewed for this long is taken over "
                    "by another replica")
    shard_renew_seconds: float = Field(
        default=2.0, gt=0, alias="FAIRWAY_LIFECYCLE_SHARD_RENEW_SECONDS",
        description="how often a replica renews its shard Leases and looks at the others")
    shard_renew_deadline_seconds: float = Field(
        default=7.0, gt=0, alias="FAIRWAY_LIFECYCLE_SHARD_RENEW_DEADLINE_SECONDS",
        description="a replica stops driving a shard it could not renew for this long: less "
                    "than the lease, so it has stopped before another may take the shard")

    @model_validator(mode="after")
    def _shard_timings(self) -> "LifecycleSettings":
        if not (self.shard_renew_seconds < self.shard_renew_deadline_seconds
                < self.shard_lease_seconds):
            raise ValueError(
                "shards need FAIRWAY_LIFECYCLE_SHARD_RENEW_SECONDS < "
                "FAIRWAY_LIFECYCLE_SHARD_RENEW_DEADLINE_SECONDS < "
                f"FAIRWAY_LIFECYCLE_SHARD_LEASE_SECONDS (got {self.shard_renew_seconds:g} < "
                f"{self.shard_renew_deadline_seconds:g} < {self.shard_lease_seconds:g})")
        return self
