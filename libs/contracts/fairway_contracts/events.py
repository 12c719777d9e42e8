"""Event payloads. One class per kind of message; each names the subject it travels on."""

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from fairway_contracts.base import Contract
from fairway_contracts.workloads import (
    EffectiveSpec,
    Phase,
    PodSummary,
    WorkloadType,
    utcnow,
)


class WorkloadSubmitted(Contract):
    """A workload was accepted by submission (policy applied) and persisted."""

    event_id: str
    workload_id: str
    name: str
    project: str
    project_id: str
    workload_type: WorkloadType
    created_at: datetime
    created_by: str
    spec: EffectiveSpec
    # A third-party workload's request for the scheduler (its pods exist already: lifecycle
    # makes none, it binds the owner's pods where the scheduler places them).
    third_party: bool = False
    # A third-party workload's request is sent again when its owner is scaled (its pods and
    # minimum follow): each time with the next revision; the scheduler keeps the highest.
    revision: int = Field(default=0, ge=0)


class WorkloadAction(Contract):
    """A change of desired phase requested through the API."""

    event_id: str
    workload_id: str
    project: str
    action: Literal["stop", "resume", "delete"]
    requested_at: datetime = Field(default_factory=utcnow)
    requested_by: str


class PhaseChanged(Contract):
    """A workload moved from one phase to another. `sequence` grows by one per transition."""

    event_id: str
    workload_id: str
    name: str
    project: str
    workload_type: WorkloadType
    sequence: int = Field(ge=1)
    previous_phase: Phase | None
    phase: Phase
    reason: str
    message: str
    time: datetime
    pods: list[PodSummary] = Field(default_factory=list)
    attempt: int = Field(default=1, ge=1, description="1 + retries so far")


class PodGroupChanged(Contract):
    """A workload's pod group as lifecycle sees it in Kubernetes.

    Published whenever a pod appears, is bound, finishes or goes away, whether or not the
    phase changes with it (a retry's new pod, an elastic replica), and when the workload ends.
    The scheduler places the group's unbound pods and releases what finished or vanished pods
    held. `sequence` grows by one per event of the workload; an older one is stale.
    `phase_sequence`: set when the phase event of that sequence, published with this one, lists
    the same pods at the same time, so a view that follows the phase events learns nothing new
    from this one.
    """

    event_id: str
    workload_id: str
    name: str
    project: str
    workload_type: WorkloadType
    # 64 bits: a third-party workload's counts tenths of a second since 2026 (past 2**31 in 2032)
    sequence: int = Field(ge=1, lt=2**63)
    phase: Phase
    attempt: int = Field(default=1, ge=1)
    pods: list[PodSummary] = Field(default_factory=list)
    time: datetime
    phase_sequence: int | None = Field(default=None, ge=1)


class PodPlacement(Contract):
    pod: str
    node: str
    gpu_devices: list[int] = Field(default_factory=list)
    # Fractions: the portion of each of `gpu_devices` the pod takes (None: whole devices), the
    # GPU memory it asked for (memory-sized fractions), the portion it may grow to (dynamic).
    portion: float | None = None
    gpu_memory_mib: int | None = None
    gpu_limit: float | None = None


class BindDecision(Contract):
    """The scheduler placed (part of) a workload's pod group."""

    decision_id: str
    workload_id: str
    project: str
    placements: list[PodPlacement]
    decided_at: datetime


class PreemptDecision(Contract):
    """The scheduler takes a running workload's GPUs back (reclaim, preempt, consolidate,
    stale gang). Lifecycle evicts the pods; the workload returns to Pending, or fails when it
    asked to terminate after preemption."""

    decision_id: str
    workload_id: str
    project: str
    reason: Literal["reclaim", "preempt", "consolidate", "stale-gang"]
    by: str | None = None  # the workload that needed the room, where there is one
    message: str
    pods: list[str] | None = None  # None: every pod of the workload
    decided_at: datetime


class ForeignUsage(Contract):
    """The sum of what a node's pods that Fairway did not place hold (neither its workloads'
    pods nor its reservation pods), while they have not ended."""

    pods: int = Field(default=0, ge=0)
    gpus: int = Field(default=0, ge=0)
    cpu_millis: int = Field(default=0, ge=0)
    memory_mib: int = Field(default=0, ge=0)


class NodeInventory(Contract):
    """The current state of one node, as lifecycle sees it in Kubernetes. Last value wins."""

    name: str
    node_pool: str
    ready: bool
    gpus: int
    gpu_product: str | None = None
    gpu_memory_mib: int | None = None
    cpu_millis: int = 0
    memory_mib: int = 0
    max_pods: int = 110  # the kubelet refuses pods beyond this ("OutOfpods")
    labels: dict[str, str] = Field(default_factory=dict)
    deleted: bool = False
    observed_at: datetime
    # What pods another scheduler bound here hold (the default scheduler, another GPU
    # scheduler): taken from the node's free room, counted against no project.
    foreign: ForeignUsage = Field(default_factory=ForeignUsage)


class Quota(Contract):
    """One resource's quota in one node pool. `limit` None: no limit beyond the pool."""

    deserved: float = Field(default=0, ge=0)
    limit: float | None = None
    over_quota_weight: float = Field(default=1, ge=0)


class PoolResources(Contract):
    """A project's or department's quotas in one node pool: GPUs (devices), CPU (cores),
    memory (MiB)."""

    node_pool: str
    gpu: Quota = Field(default_factory=Quota)
    cpu: Quota = Field(default_factory=Quota)
    memory: Quota = Field(default_factory=Quota)


class SchedulingRules(Contract):
    """Run:ai's scheduling rules of a project or department, in seconds (None: no limit).

    Interactive covers workspaces, training covers trainings and distributed workloads;
    inference is never stopped by these rules (a serving endpoint is expected to idle).
    A project's effective rule is the stricter of its own and its department's."""

    interactive_job_time_limit_seconds: int | None = Field(default=None, ge=1)
    interactive_job_max_idle_duration_seconds: int | None = Field(default=None, ge=1)
    training_job_time_limit_seconds: int | None = Field(default=None, ge=1)
    training_job_max_idle_duration_seconds: int | None = Field(default=None, ge=1)


class NodeTypes(Contract):
    """The node types (values of the node label fairway.io/node-type) a workload may pick;
    an empty list: no restriction. `workspace` covers workspaces, `training` trainings and
    distributed workloads (Run:ai's shape)."""

    training: list[str] = Field(default_factory=list)
    workspace: list[str] = Field(default_factory=list)


class ProjectChanged(Contract):
    """A project's current state (subject fairway.org.project.<projectId>; the stream keeps the
    last one per project)."""

    event_id: str
    project_id: str
    name: str
    department_id: str | None = None
    deleted: bool = False
    resources: list[PoolResources] = Field(default_factory=list)
    default_node_pools: list[str] = Field(default_factory=list)
    scheduling_rules: SchedulingRules | None = None
    node_types: NodeTypes | None = None
    # When the unit was created: ties between queues go to the older one.
    created_at: datetime | None = None


class DepartmentChanged(Contract):
    """A department's current state (fairway.org.department.<departmentId>, last value kept)."""

    event_id: str
    department_id: str
    name: str
    deleted: bool = False
    resources: list[PoolResources] = Field(default_factory=list)
    default_node_pools: list[str] = Field(default_factory=list)
    scheduling_rules: SchedulingRules | None = None
    node_types: NodeTypes | None = None
    # When the unit was created: ties between queues go to the older one.
    created_at: datetime | None = None


class TimeAwareFairness(Contract):
    """A node pool's own time-aware fairness (unset fields: the scheduler's cluster setting):
    over-quota divided by weights corrected by each queue's usage in a window. Durations as
    in the API ("7d", "12h"); `window_type` sliding or tumbling; `k_value` >= 0."""

    enabled: bool | None = None
    window_type: Literal["sliding", "tumbling"] | None = None
    window_size: str | None = None
    half_life_period: str | None = None
    k_value: float | None = None


class NodePoolChanged(Contract):
    """A node pool's current state (fairway.org.nodepool.<name>, last value kept). Nodes belong
    to the pool whose label (label_key=label_value) they carry; `default` takes the rest."""

    event_id: str
    name: str
    label_key: str | None = None
    label_value: str | None = None
    gpu_placement_strategy: Literal["binpack", "spread"] = "binpack"
    cpu_placement_strategy: Literal["binpack", "spread"] = "binpack"
    min_guaranteed_runtime: str | None = None
    # gpuResourceOptimization: lifecycle's node-level scheduler runs on the pool's nodes
    node_level_scheduler_enabled: bool = False
    # gpuResourceOptimization, GPU memory swap: on the pool's swap-capable nodes (label
    # fairway.io/gpu-swap=true) fractions of one device may together ask for more memory than
    # it has, up to cpu_swap_memory_mib of host memory per node, with reserved MiB of each
    # device kept for swapping (sizes in MiB; 0: none).
    swap_enabled: bool = False
    cpu_swap_memory_mib: int = 0
    reserved_gpu_memory_for_swap_mib: int = 0
    # None: the cluster's time-aware fairness (FAIRWAY_SCHEDULER_TIME_AWARE_FAIRNESS_*)
    time_aware_fairness: TimeAwareFairness | None = None
    # Its network topology: node label keys, the widest level first (zone, block, rack,
    # host); empty: none (`topology.requiredPlacement` cannot be met in it).
    topology_levels: list[str] = Field(default_factory=list)
    deleted: bool = False


class WorkloadUtilization(Contract):
    """A running workload's GPU utilization over one window (subject
    fairway.utilization.<project>.<workloadId>; lifecycle publishes one per workload per
    window while it runs). `utilization_percent` is the mean of its GPU pods' reported
    utilization, weighted by GPUs; `idle` is true when every pod reported zero for the whole
    window (the window counts towards the idle GPU limit)."""

    event_id: str
    workload_id: str
    name: str
    project: str
    workload_type: WorkloadType
    node_pool: str | None = None
    gpus: float = Field(ge=0)
    utilization_percent: float = Field(ge=0, le=100)
    idle: bool
    # GPU memory its pods use at the end of the window, summed (None: not reported).
    gpu_memory_used_mib: int | None = Field(default=None, ge=0)
    window_start: datetime
    window_end: datetime


class ThirdPartyWorkloadChanged(Contract):
    """A workload Fairway schedules but did not create: the pods of one top owner (a Job, a
    Deployment, a StatefulSet, a PyTorchJob, a bare pod ...) whose `schedulerName` is
    Fairway's, as lifecycle's pod grouper formed it (subject
    fairway.thirdparty.workload.<workloadId>; the stream keeps the last one per workload).
    Published when it is discovered and whenever what it says changes; `gone` when its last
    pod went."""

    event_id: str
    workload_id: str  # a UUID (version 5) of the top owner's uid
    kind: str  # the top owner's kind ("Pod" for a bare pod)
    api_version: str
    name: str  # the top owner's name
    namespace: str
    owner_uid: str
    # How its pods are placed: one by one, all together (a gang of min_members), or each
    # replica its own unit but never below min_members (elastic).
    grouping: Literal["single", "gang", "elastic"]
    min_members: int = Field(ge=1)
    project: str | None = None  # None: its namespace belongs to no project (`problem` says so)
    # why it cannot be scheduled as it is (no project; a fraction annotation that cannot be
    # read): it waits with this, and is not sent to the scheduler
    problem: str | None = None
    priority_class: str
    priority: int
    preemptible: bool
    pods: list[str] = Field(default_factory=list)
    # The pods its owner wants now (a set's `replicas`, a Job's `parallelism`, a PyTorchJob's
    # replicas summed), which follows a scale; None: the owner does not say (its pods count).
    replicas: int | None = Field(default=None, ge=0)
    # What one pod asks for (its first container's, summed over its containers)
    gpus_per_pod: int = Field(default=0, ge=0)
    # ... or a fraction of one GPU, by annotation (`gpu-fraction` / `fairway.io/gpu-fraction`:
    # a portion; `gpu-memory` / `fairway.io/gpu-memory`: MiB), with no whole GPU asked
    gpu_portion: float | None = Field(default=None, gt=0, lt=1)
    gpu_memory_mib: int | None = Field(default=None, gt=0)
    cpu_millis: int = Field(default=0, ge=0)
    memory_mib: int = Field(default=0, ge=0)
    # Its phase, folded from its pods by lifecycle's fold (a Job, a PyTorchJob or a bare pod
    # as a run to completion, the other kinds as a service that runs until deleted), and its
    # pods as a phase event shows them.
    phase: Phase = Phase.PENDING
    phase_reason: str = ""
    phase_message: str = ""
    pod_summaries: list[PodSummary] = Field(default_factory=list)
    gone: bool = False
    observed_at: datetime


class ServingChanged(Contract):
    """An inference server's serving status (subject fairway.serving.<project>.<workloadId>;
    lifecycle publishes one when its endpoint, replicas or load change, the stream keeps the
    last). `desired_replicas` is its autoscaler's count (0: scaled to zero), `ready_replicas`
    those ready behind its Service; `requests_per_second` what arrives at it and
    `metric_value` its autoscaling metric as last read (None: not read)."""

    event_id: str
    workload_id: str
    name: str
    project: str
    sequence: int = Field(ge=1, description="one more per status; an older one is stale")
    endpoint: str | None = None
    protocol: str | None = None
    desired_replicas: int = Field(ge=0)
    ready_replicas: int = Field(ge=0)
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=1, ge=0)
    metric: str | None = None
    metric_threshold: float | None = None
    metric_value: float | None = None
    requests_per_second: float | None = None
    reason: str = ""
    time: datetime


class ResourceStatus(Contract):
    """One resource of one queue after a scheduling cycle: GPUs (devices, may be fractional),
    CPU (millicores) or memory (MiB). `limit` -1: no limit."""

    deserved: float
    limit: float
    over_quota_weight: float
    fair_share: float
    allocated: float
    allocated_non_preemptible: float
    requested: float
    # Time-aware fairness on in the queue's pool (absent otherwise): the queue's usage in the
    # window (resource-seconds: GPU-seconds, millicore-seconds, MiB-seconds, decayed by the
    # half-life) and the over-quota weight that usage corrected its weight to (absent when
    # it did not compete for over-quota, or nobody had used anything); `fair_share` is then
    # the share those corrected weights give.
    usage: float | None = None
    adjusted_over_quota_weight: float | None = None


class QueueStatusChanged(Contract):
    """A queue's status changed (subject fairway.scheduler.queue.<kind>.<name>.<nodePool>; the
    last message per subject is the queue's state). A queue is one project or department in
    one node pool. Published by the scheduler only when something in it changed."""

    kind: Literal["project", "department"]
    name: str
    org_id: str | None = None  # the project's or department's id, when the scheduler knows it
    parent: str | None = None  # a project's department (name)
    node_pool: str
    gpu: ResourceStatus
    cpu: ResourceStatus
    memory: ResourceStatus
    changed_at: datetime


class SchedulingPending(Contract):
    """Why a workload's pods wait for a node (subject fairway.scheduler.pending.<project>.
    <workloadId>; the last message per subject counts). `pending` False (code and message
    None): it no longer waits (placed, or over). `unschedulable` True (code NoSuchResource or
    NodePoolUnavailable, sent once): it can never be placed as the cluster stands (none of its
    node pools exists or has nodes, or a pod asks for more than any of their nodes has), so it
    is refused rather than left pending."""

    workload_id: str
    project: str
    pending: bool = True
    code: str | None = None  # a stable machine code: OverLimit, OverFairShare, ...
    message: str | None = None  # one sentence with the numbers
    since: datetime | None = None  # when this stretch of waiting began
    changed_at: datetime
    unschedulable: bool = False


class PolicyEvaluateRequest(Contract):
    """Submission asks policy for the effective spec of a workload it is about to accept."""

    workload_type: WorkloadType
    project: str
    name: str
    spec: dict
    # The project's branch, so policy can find the policies that apply (cluster, department,
    # project); without them only the cluster's policy applies.
    project_id: str | None = None
    department_id: str | None = None


class Violation(Contract):
    field: str
    message: str
    rule: str = "default"
    # For a policy rule: what was checked and who set the rule (e.g. "department ml").
    value: Any = None
    scope: str | None = None


class PolicyEvaluateReply(Contract):
    ok: bool
    effective_spec: EffectiveSpec | None = None
    violations: list[Violation] = Field(default_factory=list)


class Heartbeat(Contract):
    service: str
    instance: str
    ready: bool
    time: datetime


class SchedulingCycle(Contract):
    """One scheduling cycle that ran (core NATS, no stream; news for people, not state):
    when it ended, how long it took and what came of it. The console's overview shows the
    last one."""

    instance: str
    finished_at: datetime
    took_seconds: float = Field(ge=0)
    placed: int = Field(ge=0, description="workloads placed on nodes")
    evicted: int = Field(ge=0, description="pods preempted or reclaimed")
    pending: int = Field(ge=0, description="workloads left waiting")


class PhaseApplied(Contract):
    """One workload's newest transition, as the API's workload view now holds it."""

    workload_id: str
    project: str
    workload_type: WorkloadType
    sequence: int = Field(ge=1)
    phase: Phase
    reason: str
    message: str


class PhasesApplied(Contract):
    """Phase changes the API's workload view has committed (core NATS, no stream; news for the
    console's browsers, not state): each API replica tells the browsers connected to it."""

    changes: list[PhaseApplied]


class DeadLetter(Contract):
    """A message that failed `max_deliver` times; kept for an operator to inspect or replay."""

    consumer: str
    stream: str
    subject: str
    stream_sequence: int
    deliveries: int
    error: str
    payload: str
    headers: dict[str, str] = Field(default_factory=dict)
    failed_at: datetime
