"""Policy's message handlers: the `policy.evaluate` request/reply. Parsing at the edge, the
decision in `domain.evaluate`."""

import logging
from typing import Any

from faststream.nats import NatsMessage
from pydantic import ValidationError

from fairway_contracts import subjects
from fairway_contracts.events import PolicyEvaluateReply, PolicyEvaluateRequest, Violation
from fairway_policy import domain
from fairway_runtime import Service

log = logging.getLogger("fairway.policy")

# Every policy instance joins this queue group, so each request gets exactly one answer.
QUEUE_GROUP = "policy"


def register(service: Service, *, subject: str = subjects.POLICY_EVALUATE) -> None:
    """Answer evaluation requests on `subject` (core NATS: a request nobody answers times out
    for the caller, there is nothing to redeliver)."""

    @service.broker.subscriber(subject, queue=QUEUE_GROUP, title="policy-evaluate",
                               description="Effective spec or violations for a workload spec.")
    async def evaluate_request(body: Any, msg: NatsMessage) -> bytes:
        return answer(msg.raw_message.data).to_json()


def answer(data: bytes) -> PolicyEvaluateReply:
    try:
        request = PolicyEvaluateRequest.model_validate_json(data)
    except ValidationError as exc:
        # A malformed request still gets an answer, so the caller does not wait for a timeout.
        return PolicyEvaluateReply(ok=False, violations=[
            Violation(field=".".join(str(p) for p in e["loc"]) or "request", message=e["msg"],
                      rule="request")
            for e in exc.errors(include_url=False)
        ])
    reply = domain.evaluate(request)
    if not reply.ok:
        log.info("spec rejected", extra={"fields": {
            "project": request.project, "name": request.name,
            "violations": [v.field for v in reply.violations]}})
    return reply
