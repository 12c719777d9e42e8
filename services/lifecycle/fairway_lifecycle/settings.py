from pydantic import Field

from fairway_runtime import ServiceSettings


class LifecycleSettings(ServiceSettings):
    kubeconfig: str | None = Field(default=None, alias="KUBECONFIG",
                                   description="unset: the in-cluster service account")
    namespace_prefix: str = Field(default="fairway-", alias="FAIRWAY_NAMESPACE_PREFIX")
    resync_seconds: float = Field(default=300.0, alias="FAIRWAY_LIFECYCLE_RESYNC_SECONDS")
    kube_workers: int = Field(default=8, alias="FAIRWAY_LIFECYCLE_KUBE_WORKERS")
    eviction_grace_seconds: int = Field(
        default=10, alias="FAIRWAY_EVICTION_GRACE_SECONDS",
        description="how long a preempted pod may take to shut down (checkpoint) before it "
                    "is killed")
    rules_check_seconds: float = Field(
        default=5.0, gt=0, alias="FAIRWAY_RULES_CHECK_SECONDS",
        description="how often running workloads are checked against their scheduling rules "
                    "and their GPU utilization sampled")
    utilization_window_seconds: float = Field(
        default=30.0, gt=0, alias="FAIRWAY_UTILIZATION_WINDOW_SECONDS",
        description="the window of the idle GPU limit and of utilization events (Run:ai: 30 "
                    "s); a test knob, the end-to-end stack uses 2 s")
