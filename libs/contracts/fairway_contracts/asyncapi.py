"""The AsyncAPI 3.0 document, generated from the contracts.

`python -m fairway_contracts.asyncapi > docs/asyncapi.json` writes it; a test fails when the
committed copy is stale.
"""

import json
import sys
from dataclasses import dataclass

from pydantic import BaseModel

from fairway_contracts import events, policies, streams, subjects, telemetry


@dataclass(frozen=True)
class Channel:
    key: str
    address: str
    parameters: tuple[str, ...]
    message: type[BaseModel]
    publisher: str
    stream: str | None
    description: str


CHANNELS: tuple[Channel, ...] = (
    Channel("workloadSubmitted", "fairway.workload.submitted.{project}.{workloadId}",
            ("project", "workloadId"), events.WorkloadSubmitted, "submission",
            streams.WORKLOADS.name, "A workload was accepted and persisted."),
    Channel("workloadAction", "fairway.workload.action.{action}.{project}.{workloadId}",
            ("action", "project", "workloadId"), events.WorkloadAction, "submission",
            streams.WORKLOADS.name, "Stop, resume or delete requested."),
    Channel("phaseChanged", "fairway.phase.{project}.{workloadId}.{phase}",
            ("project", "workloadId", "phase"), events.PhaseChanged, "lifecycle",
            streams.PHASES.name,
            "A workload phase transition. Filter with NATS wildcards, for example "
            "`fairway.phase.*.*.Failed`, `fairway.phase.team-a.>`, "
            "`fairway.phase.*.<workloadId>.*`."),
    Channel("podGroupChanged", "fairway.podgroup.{project}.{workloadId}",
            ("project", "workloadId"), events.PodGroupChanged, "lifecycle",
            streams.PODGROUPS.name,
            "A workload's pods, bound or waiting, as Kubernetes shows them."),
    Channel("bindDecision", "fairway.scheduler.bind.{project}.{workloadId}",
            ("project", "workloadId"), events.BindDecision, "scheduler",
            streams.DECISIONS.name, "Pods of a workload placed on nodes."),
    Channel("preemptDecision", "fairway.scheduler.preempt.{project}.{workloadId}",
            ("project", "workloadId"), events.PreemptDecision, "scheduler",
            streams.DECISIONS.name, "A running workload's GPUs taken back, with the reason."),
    Channel("queueStatusChanged", "fairway.scheduler.queue.{kind}.{name}.{nodePool}",
            ("kind", "name", "nodePool"), events.QueueStatusChanged, "scheduler",
            streams.DECISIONS.name,
            "A queue's (project or department in one node pool) quotas, fair share, allocated "
            "and requested amounts, published when they change; the last message per subject "
            "is its state (read with DeliverPolicy LastPerSubject)."),
    Channel("schedulingPending", "fairway.scheduler.pending.{project}.{workloadId}",
            ("project", "workloadId"), events.SchedulingPending, "scheduler",
            streams.DECISIONS.name,
            "Why a workload waits, as a code and a sentence, or (pending false) that it no "
            "longer does; the last message per subject counts."),
    Channel("nodeInventory", "fairway.inventory.node.{node}", ("node",),
            events.NodeInventory, "lifecycle", streams.INVENTORY.name,
            "A node's capacity, pool and readiness; the last message per node is its state."),
    Channel("projectChanged", "fairway.org.project.{projectId}", ("projectId",),
            events.ProjectChanged, "submission", streams.ORG.name,
            "A project was created, changed or deleted; carries its per-pool quotas. The stream "
            "keeps the last message per project."),
    Channel("departmentChanged", "fairway.org.department.{departmentId}", ("departmentId",),
            events.DepartmentChanged, "submission", streams.ORG.name,
            "A department was created, changed or deleted; carries its per-pool quotas."),
    Channel("nodePoolChanged", "fairway.org.nodepool.{name}", ("name",),
            events.NodePoolChanged, "submission", streams.ORG.name,
            "A node pool was created, changed or deleted."),
    Channel("workloadUtilization", "fairway.utilization.{project}.{workloadId}",
            ("project", "workloadId"), events.WorkloadUtilization, "lifecycle",
            streams.UTILIZATION.name,
            "A running workload's GPU utilization over one window (30 s by default), and "
            "whether the window was idle (every pod at zero)."),
    Channel("servingChanged", "fairway.serving.{project}.{workloadId}",
            ("project", "workloadId"), events.ServingChanged, "lifecycle",
            streams.SERVING.name,
            "An inference server's endpoint, desired and ready replicas and load, when they "
            "change; the stream keeps the last message per server."),
    Channel("thirdPartyWorkloadChanged", "fairway.thirdparty.workload.{workloadId}",
            ("workloadId",), events.ThirdPartyWorkloadChanged, "lifecycle",
            streams.THIRDPARTY.name,
            "A third-party workload (pods of one top owner that name Fairway as their "
            "scheduler) as lifecycle grouped it: kind, namespace, owner, project, gang minimum, "
            "priority, pods; when discovered and on every change, `gone` once its last pod "
            "went. The stream keeps the last message per workload."),
    Channel("deadLetter", "fairway.deadletter.{consumer}", ("consumer",),
            events.DeadLetter, "any", streams.DEADLETTER.name,
            "A message that exhausted its deliveries."),
    Channel("policyEvaluate", subjects.POLICY_EVALUATE, (), events.PolicyEvaluateRequest,
            "submission", None, "Request/reply: policy answers with PolicyEvaluateReply."),
    Channel("policyGet", subjects.POLICY_GET, (), policies.PolicyGetRequest, "submission", None,
            "Request/reply: policy answers with PolicyReply: a scope's own policy for one "
            "workload type and the effective one, with the scope behind each rule and default."),
    Channel("policyPut", subjects.POLICY_PUT, (), policies.PolicyPutRequest, "submission", None,
            "Request/reply: store (replace or merge-patch) or only validate a scope's policy; "
            "policy answers with PolicyReply listing every problem."),
    Channel("policyDelete", subjects.POLICY_DELETE, (), policies.PolicyDeleteRequest,
            "submission", None, "Request/reply: remove a scope's policy; answers PolicyReply."),
    Channel("metricsTelemetry", subjects.METRICS_QUERY_TELEMETRY, (), telemetry.TelemetryQuery,
            "submission", None,
            "Request/reply: the metrics service (queue group `metrics`) answers with "
            "TelemetryReply: current workload counts, GPU allocation or pending-time "
            "distribution over the given projects, grouped by up to two fields."),
    Channel("metricsSeries", subjects.METRICS_QUERY_SERIES, (), telemetry.MetricsQuery,
            "submission", None,
            "Request/reply: the metrics service answers with MetricsReply: stored samples of a "
            "project, department or node pool over a window."),
    Channel("schedulingCycle", subjects.SCHEDULER_CYCLE, (), events.SchedulingCycle,
            "scheduler", None,
            "Core NATS: one scheduling cycle that ran, with how long it took and how many "
            "workloads it placed, evicted and left waiting; the console shows the last one."),
    Channel("viewPhasesApplied", subjects.VIEW_PHASES_APPLIED, (), events.PhasesApplied,
            "submission", "submission",
            "Core NATS: phase changes the API's workload view has just committed, each "
            "workload's newest; every API replica passes them to its console browsers."),
    Channel("health", "fairway.health.{service}", ("service",), events.Heartbeat, "every service",
            None, "Core NATS heartbeats; submission's /healthz needs one from every service."),
)


def build() -> dict:
    schemas: dict = {}
    messages: dict = {}
    channels: dict = {}
    operations: dict = {}
    models = [c.message for c in CHANNELS] + [events.PolicyEvaluateReply,
                                               policies.PolicyReply]
    for model in models:
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    for c in CHANNELS:
        name = c.message.__name__
        messages[name] = {
            "name": name,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "headers": {
                "type": "object",
                "properties": {
                    "Nats-Msg-Id": {"type": "string", "description": "deduplication id"},
                    "traceparent": {"type": "string", "description": "W3C trace context"},
                },
            },
        }
        channels[c.key] = {
            "address": c.address,
            "description": c.description + (f" Stream: {c.stream}." if c.stream else ""),
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            **({"parameters": {p: {} for p in c.parameters}} if c.parameters else {}),
        }
        operations[f"{c.key}.publish"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{c.key}"},
            "summary": f"published by {c.publisher}",
        }
    for cons in streams.CONSUMERS:
        operations[f"{cons.durable}.receive"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{_channel_for(cons)}"},
            "summary": f"{cons.service}: {cons.description}",
            "bindings": {"nats": {"queue": cons.durable}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Fairway events",
            "version": "0.1.0",
            "description": "Subjects, streams and payloads of the Fairway services "
            "(NATS JetStream). Generated from libs/contracts; do not edit by hand.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _channel_for(cons: streams.ConsumerSpec) -> str:
    prefix = cons.filter_subjects[0].rstrip(">")
    for c in CHANNELS:
        if c.address.startswith(prefix) or prefix.startswith(c.address.split("{")[0]):
            return c.key
    raise LookupError(f"no channel for consumer {cons.durable}")


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
