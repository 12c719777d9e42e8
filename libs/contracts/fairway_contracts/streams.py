"""Streams and durable consumers: declared here, created by the bus bootstrap step."""

from dataclasses import dataclass, field

from fairway_contracts import subjects


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    description: str
    max_age_seconds: float = 7 * 24 * 3600
    max_msgs_per_subject: int = -1
    duplicate_window_seconds: float = 120.0


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer owned by one service."""

    service: str
    durable: str
    stream: str
    filter_subjects: tuple[str, ...]
    description: str
    max_deliver: int = 8
    ack_wait_seconds: float = 30.0
    # Retry delays for nak(delay=...), by delivery count; the last repeats.
    retry_delays_seconds: tuple[float, ...] = field(default=(0.2, 0.5, 1.0, 2.0, 5.0, 10.0))
    max_ack_pending: int = 1000
    deliver_last_per_subject: bool = False
    # Messages of different ordering keys may be handled concurrently, up to `parallel` at a
    # time; one key's messages always in stream order. The key is the subject's first
    # `ordering_tokens` tokens (None: the whole subject).
    parallel: int = 1
    ordering_tokens: int | None = None

    def ordering_key(self, subject: str) -> str:
        if self.ordering_tokens is None:
            return subject
        return ".".join(subject.split(".")[: self.ordering_tokens])

    def retry_delay(self, delivered: int) -> float:
        i = max(0, min(delivered - 1, len(self.retry_delays_seconds) - 1))
        return self.retry_delays_seconds[i]


WORKLOADS = StreamSpec(
    "FAIRWAY_WORKLOADS",
    (subjects.WORKLOAD_ALL,),
    "Accepted workloads and the actions requested on them (from submission).",
)
PHASES = StreamSpec(
    "FAIRWAY_PHASES",
    (subjects.PHASE_ALL,),
    "Workload phase transitions (from lifecycle). Subject: fairway.phase.<project>.<id>.<phase>.",
)
PODGROUPS = StreamSpec(
    "FAIRWAY_PODGROUPS",
    (subjects.PODGROUP_ALL,),
    "Workload pod groups as Kubernetes shows them (from lifecycle), for the scheduler.",
)
DECISIONS = StreamSpec(
    "FAIRWAY_DECISIONS",
    (subjects.DECISION_ALL,),
    "Scheduling decisions: bind and preempt, queue status, pending reasons (from scheduler).",
)
INVENTORY = StreamSpec(
    "FAIRWAY_INVENTORY",
    (subjects.INVENTORY_ALL,),
    "Node inventory (from lifecycle); the last message per node is its state.",
    max_msgs_per_subject=1,
    max_age_seconds=0,
)
ORG = StreamSpec(
    "FAIRWAY_ORG",
    (subjects.ORG_ALL,),
    "Organisation changes: projects, departments, quotas, node pools (from submission).",
    max_msgs_per_subject=1,
    max_age_seconds=0,
)
DEADLETTER = StreamSpec(
    "FAIRWAY_DEADLETTER",
    (subjects.DEADLETTER_ALL,),
    "Messages that exhausted their deliveries, by consumer.",
    max_age_seconds=30 * 24 * 3600,
)
UTILIZATION = StreamSpec(
    "FAIRWAY_UTILIZATION",
    (subjects.UTILIZATION_ALL,),
    "GPU utilization per running workload, one message per window (from lifecycle).",
)
SERVING = StreamSpec(
    "FAIRWAY_SERVING",
    (subjects.SERVING_ALL,),
    "Inference servers' serving status: endpoint, desired and ready replicas, load (from "
    "lifecycle); the last message per server is its state.",
    max_msgs_per_subject=1,
    max_age_seconds=0,
)
LIFECYCLE_SHARDS = StreamSpec(
    "FAIRWAY_LIFECYCLE_SHARDS",
    (subjects.LIFECYCLE_SHARD_ALL,),
    "Lifecycle work messages a replica received for a shard it does not hold, handed on to "
    "the shard's holder (one durable consumer per shard, made by the replica that takes it). "
    "Subject: fairway.lifecycle.shard.<shard>.<kind>.<workload id>.",
    max_age_seconds=24 * 3600,
)
THIRDPARTY = StreamSpec(
    "FAIRWAY_THIRDPARTY",
    (subjects.THIRDPARTY_ALL,),
    "Third-party workloads: pods Fairway schedules but did not create, grouped by top owner "
    "(from lifecycle); the last message per workload is its state.",
    max_msgs_per_subject=1,
    max_age_seconds=0,
)
STREAMS: tuple[StreamSpec, ...] = (
    WORKLOADS, PHASES, PODGROUPS, DECISIONS, INVENTORY, ORG, DEADLETTER, UTILIZATION, SERVING,
    LIFECYCLE_SHARDS, THIRDPARTY,
)


LIFECYCLE_WORKLOADS = ConsumerSpec(
    "lifecycle", "lifecycle-workloads", WORKLOADS.name, (subjects.WORKLOAD_SUBMITTED_ALL,),
    "Creates namespaces and pods for submitted workloads.",
    parallel=8, ordering_tokens=5,  # fairway.workload.submitted.<project>.<id>: one workload
)
LIFECYCLE_ACTIONS = ConsumerSpec(
    "lifecycle", "lifecycle-actions", WORKLOADS.name, (subjects.WORKLOAD_ACTION_ALL,),
    "Carries out stop, resume and delete (one at a time, in the order they were asked).",
)
LIFECYCLE_DECISIONS = ConsumerSpec(
    "lifecycle", "lifecycle-decisions", DECISIONS.name, (subjects.BIND_ALL,),
    "Binds pods to the nodes the scheduler chose.",
    # Many at once: the room each decision names is held from the decision until its pods
    # finish, so bindings are not queued behind each other (their Kubernetes calls go
    # before pod creations too: fairway_kube.urgent_calls).
    parallel=32,
)
LIFECYCLE_PREEMPTIONS = ConsumerSpec(
    "lifecycle", "lifecycle-preemptions", DECISIONS.name, (subjects.PREEMPT_ALL,),
    "Evicts the pods of workloads the scheduler preempts.",
    parallel=8, ordering_tokens=5,  # fairway.scheduler.preempt.<project>.<id>: one workload
)
LIFECYCLE_PENDING = ConsumerSpec(
    "lifecycle", "lifecycle-pending", DECISIONS.name, (subjects.PENDING_ALL,),
    "Fails workloads the scheduler finds can never be placed.",
    parallel=8, ordering_tokens=5,
)
LIFECYCLE_PROJECTS = ConsumerSpec(
    "lifecycle", "lifecycle-projects", ORG.name, (subjects.ORG_PROJECT_ALL,),
    "Keeps projects' scheduling rules (time and idle GPU limits) and departments.",
)
LIFECYCLE_DEPARTMENTS = ConsumerSpec(
    "lifecycle", "lifecycle-departments", ORG.name, (subjects.ORG_DEPARTMENT_ALL,),
    "Keeps departments' scheduling rules (time and idle GPU limits).",
)
LIFECYCLE_NODEPOOLS = ConsumerSpec(
    "lifecycle", "lifecycle-nodepools", ORG.name, (subjects.ORG_NODEPOOL_ALL,),
    "Keeps which node pools have the node-level scheduler on.",
)
SCHEDULER_WORKLOADS = ConsumerSpec(
    "scheduler", "scheduler-workloads", WORKLOADS.name, (subjects.WORKLOAD_SUBMITTED_ALL,),
    "Learns each workload's request (pods, GPUs, pools, priority).",
)
SCHEDULER_PODGROUPS = ConsumerSpec(
    "scheduler", "scheduler-podgroups", PODGROUPS.name, (subjects.PODGROUP_ALL,),
    "Learns which pods wait for a node and which released theirs.",
    parallel=8, ordering_tokens=4,  # fairway.podgroup.<project>.<id>: one workload
)
SCHEDULER_INVENTORY = ConsumerSpec(
    "scheduler", "scheduler-inventory", INVENTORY.name, (subjects.INVENTORY_ALL,),
    "Keeps the node inventory.",
)
SCHEDULER_PROJECTS = ConsumerSpec(
    "scheduler", "scheduler-projects", ORG.name, (subjects.ORG_PROJECT_ALL,),
    "Keeps projects and their per-pool quotas (the scheduler's project queues).",
)
SCHEDULER_DEPARTMENTS = ConsumerSpec(
    "scheduler", "scheduler-departments", ORG.name, (subjects.ORG_DEPARTMENT_ALL,),
    "Keeps departments and their per-pool quotas (the scheduler's department queues).",
)
SCHEDULER_NODEPOOLS = ConsumerSpec(
    "scheduler", "scheduler-nodepools", ORG.name, (subjects.ORG_NODEPOOL_ALL,),
    "Keeps node pools: which nodes they take (label) and how they place pods.",
)
SUBMISSION_PHASES = ConsumerSpec(
    "submission", "submission-phases", PHASES.name, (subjects.PHASE_ALL,),
    "Keeps the API's workload view current.",
    parallel=8, ordering_tokens=4,  # fairway.phase.<project>.<id>: one workload
)
SUBMISSION_PODGROUPS = ConsumerSpec(
    "submission", "submission-podgroups", PODGROUPS.name, (subjects.PODGROUP_ALL,),
    "Keeps the API's view of each workload's pods current between phase changes.",
    parallel=8, ordering_tokens=4,  # fairway.podgroup.<project>.<id>: one workload
)
SUBMISSION_PENDING = ConsumerSpec(
    "submission", "submission-pending", DECISIONS.name, (subjects.PENDING_ALL,),
    "Shows why a pending workload waits, as the scheduler says it.",
    parallel=8, ordering_tokens=5,  # fairway.scheduler.pending.<project>.<id>: one workload
)
SUBMISSION_QUEUES = ConsumerSpec(
    "submission", "submission-queues", DECISIONS.name, (subjects.QUEUE_STATUS_ALL,),
    "Shows each project's and department's fair share per node pool.",
)
METRICS_PHASES = ConsumerSpec(
    "metrics", "metrics-phases", PHASES.name, (subjects.PHASE_ALL,),
    "Counts workloads by phase; records submit-to-running and submit-to-completed latency.",
    parallel=8, ordering_tokens=4,
)
METRICS_WORKLOADS = ConsumerSpec(
    "metrics", "metrics-workloads", WORKLOADS.name, (subjects.WORKLOAD_SUBMITTED_ALL,),
    "Learns submission times and workload types.",
)
METRICS_THIRDPARTY = ConsumerSpec(
    "metrics", "metrics-thirdparty", THIRDPARTY.name, (subjects.THIRDPARTY_ALL,),
    "Counts third-party workloads (type thirdParty) by phase, from lifecycle's announcements.",
)
METRICS_QUEUES = ConsumerSpec(
    "metrics", "metrics-queues", DECISIONS.name, (subjects.QUEUE_STATUS_ALL,),
    "Keeps each queue's quota, fair share and allocation for the project and pool series.",
)
METRICS_PENDING = ConsumerSpec(
    "metrics", "metrics-pending", DECISIONS.name, (subjects.PENDING_ALL,),
    "Keeps why each pending workload waits (pending workloads by reason).",
    parallel=8, ordering_tokens=5,
)
METRICS_PREEMPTIONS = ConsumerSpec(
    "metrics", "metrics-preemptions", DECISIONS.name, (subjects.PREEMPT_ALL,),
    "Counts preemptions by project and reason.",
)
METRICS_INVENTORY = ConsumerSpec(
    "metrics", "metrics-inventory", INVENTORY.name, (subjects.INVENTORY_ALL,),
    "Keeps the nodes: GPUs per node and pool, readiness.",
)
METRICS_PROJECTS = ConsumerSpec(
    "metrics", "metrics-projects", ORG.name, (subjects.ORG_PROJECT_ALL,),
    "Keeps project names, departments and quotas.",
)
METRICS_DEPARTMENTS = ConsumerSpec(
    "metrics", "metrics-departments", ORG.name, (subjects.ORG_DEPARTMENT_ALL,),
    "Keeps department names and quotas.",
)
METRICS_NODEPOOLS = ConsumerSpec(
    "metrics", "metrics-nodepools", ORG.name, (subjects.ORG_NODEPOOL_ALL,),
    "Keeps the node pools (a pool without nodes still has series).",
)
METRICS_UTILIZATION = ConsumerSpec(
    "metrics", "metrics-utilization", UTILIZATION.name, (subjects.UTILIZATION_ALL,),
    "Keeps each running workload's last GPU utilization window.",
    parallel=8, ordering_tokens=4,  # fairway.utilization.<project>.<id>: one workload
)
SUBMISSION_SERVING = ConsumerSpec(
    "submission", "submission-serving", SERVING.name, (subjects.SERVING_ALL,),
    "Shows each inference server's endpoint and its desired and ready replicas.",
)
SUBMISSION_THIRDPARTY = ConsumerSpec(
    "submission", "submission-thirdparty", THIRDPARTY.name, (subjects.THIRDPARTY_ALL,),
    "Shows third-party workloads (type thirdParty) with their kind, namespace, owner and "
    "phase.",
)
METRICS_SERVING = ConsumerSpec(
    "metrics", "metrics-serving", SERVING.name, (subjects.SERVING_ALL,),
    "Keeps each inference server's replicas (desired, ready) and load for its series.",
)
METRICS_DEADLETTERS = ConsumerSpec(
    "metrics", "metrics-deadletters", DEADLETTER.name, (subjects.DEADLETTER_ALL,),
    "Counts dead-lettered messages by consumer.",
)
def lifecycle_shard(shard: int) -> ConsumerSpec:
    """The durable consumer of one lifecycle shard's handed-on messages: made and read by the
    replica holding the shard's Lease (its holder changes; the consumer and what it has not
    acknowledged stay). One workload's messages in order, workloads in parallel."""
    return ConsumerSpec(
        "lifecycle", f"lifecycle-shard-{int(shard)}", LIFECYCLE_SHARDS.name,
        (subjects.lifecycle_shard_filter(shard),),
        f"Lifecycle shard {int(shard)}: work messages handed on to the replica holding it.",
        parallel=8, ordering_tokens=6,  # fairway.lifecycle.shard.<n>.<kind>.<id>
    )


LIFECYCLE_DEADLETTERS = ConsumerSpec(
    "lifecycle", "lifecycle-deadletters", DEADLETTER.name, (subjects.DEADLETTER_ALL,),
    "Fails a workload that cannot go on because a message about it was dead-lettered, "
    "saying why.",
)
CONSUMERS: tuple[ConsumerSpec, ...] = (
    LIFECYCLE_WORKLOADS,
    LIFECYCLE_ACTIONS,
    LIFECYCLE_DECISIONS,
    LIFECYCLE_PREEMPTIONS,
    LIFECYCLE_PENDING,
    LIFECYCLE_PROJECTS,
    LIFECYCLE_DEPARTMENTS,
    LIFECYCLE_NODEPOOLS,
    LIFECYCLE_DEADLETTERS,
    SCHEDULER_WORKLOADS,
    SCHEDULER_PODGROUPS,
    SCHEDULER_INVENTORY,
    SCHEDULER_PROJECTS,
    SCHEDULER_DEPARTMENTS,
    SCHEDULER_NODEPOOLS,
    SUBMISSION_PHASES,
    SUBMISSION_PODGROUPS,
    SUBMISSION_PENDING,
    SUBMISSION_QUEUES,
    SUBMISSION_SERVING,
    SUBMISSION_THIRDPARTY,
    METRICS_PHASES,
    METRICS_WORKLOADS,
    METRICS_QUEUES,
    METRICS_PENDING,
    METRICS_PREEMPTIONS,
    METRICS_INVENTORY,
    METRICS_PROJECTS,
    METRICS_DEPARTMENTS,
    METRICS_NODEPOOLS,
    METRICS_UTILIZATION,
    METRICS_SERVING,
    METRICS_DEADLETTERS,
    METRICS_THIRDPARTY,
)


def consumers_of(service: str) -> tuple[ConsumerSpec, ...]:
    return tuple(c for c in CONSUMERS if c.service == service)
