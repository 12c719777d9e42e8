"""Every NATS subject Fairway uses, in one place.

Subject tokens are project names (lowercase letters, digits and '-') and workload ids (UUIDs),
so they never contain '.', '*' or '>'.

Phase events, for outside consumers::

    fairway.phase.<project>.<workloadId>.<phase>

    fairway.phase.>                    every transition
    fairway.phase.*.*.Running          every workload that starts running
    fairway.phase.team-a.>             everything in project team-a
    fairway.phase.*.<workloadId>.*     one workload's history
    fairway.phase.team-a.*.Failed      failures in team-a

The scheduler's status, in the DECISIONS stream (read the last message per subject)::

    fairway.scheduler.queue.<kind>.<name>.<nodePool>   a queue's quotas, fair share, usage
    fairway.scheduler.queue.project.team-a.>           every pool of project team-a
    fairway.scheduler.pending.<project>.<workloadId>   why a workload waits (or no longer)
    fairway.scheduler.pending.team-a.>                 every pending reason in team-a
"""

import re

from fairway_contracts.workloads import Phase

PREFIX = "fairway"

# request/reply (core NATS, no stream)
POLICY_EVALUATE = f"{PREFIX}.policy.evaluate"
# telemetry queries, answered by the metrics service (queue group "metrics")
METRICS_QUERY_TELEMETRY = f"{PREFIX}.metrics.query.telemetry"
METRICS_QUERY_SERIES = f"{PREFIX}.metrics.query.series"
# policy CRUD for the public API (submission asks, policy owns the policies)
POLICY_GET = f"{PREFIX}.policy.get"
POLICY_PUT = f"{PREFIX}.policy.put"
POLICY_DELETE = f"{PREFIX}.policy.delete"
# a policy was saved or deleted (core NATS, no payload): whoever remembers policies or their
# answers (every policy instance, the API) forgets them
POLICY_CHANGED = f"{PREFIX}.policy.changed"
HEALTH_PREFIX = f"{PREFIX}.health"
# each scheduling cycle that ran (core NATS, no stream; outside fairway.scheduler.>,
# which the DECISIONS stream keeps)
SCHEDULER_CYCLE = f"{PREFIX}.cycle.scheduler"
# phase changes the API's workload view has just applied (core NATS, no stream): every API
# replica tells its own console browsers, whichever replica's consumer applied them
VIEW_PHASES_APPLIED = f"{PREFIX}.view.phases"

# streams' subject spaces
WORKLOAD_ALL = f"{PREFIX}.workload.>"
WORKLOAD_SUBMITTED_ALL = f"{PREFIX}.workload.submitted.>"
WORKLOAD_ACTION_ALL = f"{PREFIX}.workload.action.>"
PHASE_ALL = f"{PREFIX}.phase.>"
PODGROUP_ALL = f"{PREFIX}.podgroup.>"
DECISION_ALL = f"{PREFIX}.scheduler.>"
BIND_ALL = f"{PREFIX}.scheduler.bind.>"
PREEMPT_ALL = f"{PREFIX}.scheduler.preempt.>"
QUEUE_STATUS_ALL = f"{PREFIX}.scheduler.queue.>"
PENDING_ALL = f"{PREFIX}.scheduler.pending.>"
INVENTORY_ALL = f"{PREFIX}.inventory.>"
ORG_ALL = f"{PREFIX}.org.>"
ORG_PROJECT_ALL = f"{PREFIX}.org.project.>"
ORG_DEPARTMENT_ALL = f"{PREFIX}.org.department.>"
ORG_NODEPOOL_ALL = f"{PREFIX}.org.nodepool.>"
DEADLETTER_ALL = f"{PREFIX}.deadletter.>"
UTILIZATION_ALL = f"{PREFIX}.utilization.>"
SERVING_ALL = f"{PREFIX}.serving.>"
LIFECYCLE_SHARD_ALL = f"{PREFIX}.lifecycle.shard.>"
THIRDPARTY_ALL = f"{PREFIX}.thirdparty.>"


# What a subject token cannot hold (a token separator, a wildcard, whitespace): looked for
# at C speed, as a cycle asks for the subjects of tens of thousands of waiting workloads.
_NOT_IN_TOKEN = re.compile(r"[.*> \t\r\n]")


def _token(value: str, what: str) -> str:
    if not value or _NOT_IN_TOKEN.search(value):
        raise ValueError(f"{what} {value!r} cannot be a NATS subject token")
    return value


def workload_submitted(project: str, workload_id: str) -> str:
    return f"{PREFIX}.workload.submitted.{_token(project, 'project')}.{_token(workload_id, 'id')}"


def workload_action(action: str, project: str, workload_id: str) -> str:
    return (
        f"{PREFIX}.workload.action.{_token(action, 'action')}."
        f"{_token(project, 'project')}.{_token(workload_id, 'id')}"
    )


def phase(project: str, workload_id: str, phase: Phase | str) -> str:
    return (
        f"{PREFIX}.phase.{_token(project, 'project')}."
        f"{_token(workload_id, 'workload id')}.{_token(str(phase), 'phase')}"
    )


def phase_filter(project: str = "*", workload_id: str = "*", phase: str = "*") -> str:
    """A subscription filter: any argument left as '*' matches everything."""
    return f"{PREFIX}.phase.{project}.{workload_id}.{phase}"


def lifecycle_shard(shard: int, kind: str, workload_id: str) -> str:
    """A lifecycle work message handed on to the replica that holds its shard: `kind` names
    the consumer that received it (workloads, actions, decisions ...)."""
    return (f"{PREFIX}.lifecycle.shard.{int(shard)}.{_token(kind, 'kind')}."
            f"{_token(workload_id, 'id')}")


def lifecycle_shard_filter(shard: int) -> str:
    return f"{PREFIX}.lifecycle.shard.{int(shard)}.>"


def podgroup(project: str, workload_id: str) -> str:
    return f"{PREFIX}.podgroup.{_token(project, 'project')}.{_token(workload_id, 'workload id')}"


def bind(project: str, workload_id: str) -> str:
    return f"{PREFIX}.scheduler.bind.{_token(project, 'project')}.{_token(workload_id, 'id')}"


def preempt(project: str, workload_id: str) -> str:
    return f"{PREFIX}.scheduler.preempt.{_token(project, 'project')}.{_token(workload_id, 'id')}"


def queue_status(kind: str, name: str, node_pool: str) -> str:
    """A queue's status: one queue per (project or department, node pool); the last message
    per subject is its state. `fairway.scheduler.queue.project.team-a.>` is every pool of
    team-a."""
    return (f"{PREFIX}.scheduler.queue.{_token(kind, 'queue kind')}."
            f"{_token(name, 'queue name')}.{_token(node_pool, 'node pool')}")


def scheduling_pending(project: str, workload_id: str) -> str:
    """Why a workload waits (or that it no longer does); the last message per subject counts."""
    return (f"{PREFIX}.scheduler.pending.{_token(project, 'project')}."
            f"{_token(workload_id, 'workload id')}")


def node_inventory(node: str) -> str:
    return f"{PREFIX}.inventory.node.{_token(node, 'node')}"


def org_project(project_id: str) -> str:
    return f"{PREFIX}.org.project.{_token(project_id, 'project id')}"


def org_department(department_id: str) -> str:
    return f"{PREFIX}.org.department.{_token(department_id, 'department id')}"


def org_node_pool(name: str) -> str:
    return f"{PREFIX}.org.nodepool.{_token(name, 'node pool')}"


def utilization(project: str, workload_id: str) -> str:
    """One running workload's GPU utilization over one window (lifecycle, one per window)."""
    return (f"{PREFIX}.utilization.{_token(project, 'project')}."
            f"{_token(workload_id, 'workload id')}")


def thirdparty_workload(workload_id: str) -> str:
    """A third-party workload as lifecycle grouped it (last value per workload)."""
    return f"{PREFIX}.thirdparty.workload.{_token(workload_id, 'workload id')}"


def serving(project: str, workload_id: str) -> str:
    """An inference server's serving status: endpoint, replicas, load (lifecycle)."""
    return f"{PREFIX}.serving.{_token(project, 'project')}.{_token(workload_id, 'workload id')}"


def deadletter(consumer: str) -> str:
    return f"{PREFIX}.deadletter.{_token(consumer, 'consumer')}"


def health(service: str) -> str:
    return f"{HEALTH_PREFIX}.{_token(service, 'service')}"
