"""Policy's message handlers: `policy.evaluate` and the policy CRUD requests (get, put, delete),
all core-NATS request/reply in one queue group. Parsing at the edge (a malformed request still
gets an answer, so the caller does not wait for a timeout); the work in `PolicyService`."""

from collections.abc import Awaitable, Callable
from typing import Any

from faststream.nats import NatsMessage
from pydantic import BaseModel, ValidationError

from fairway_bus import connection
from fairway_bus.limits import reply_limit
from fairway_contracts import subjects
from fairway_contracts.events import PolicyEvaluateReply, PolicyEvaluateRequest, Violation
from fairway_contracts.policies import (
    PolicyDeleteRequest,
    PolicyGetRequest,
    PolicyProblem,
    PolicyPutRequest,
    PolicyReply,
)
from fairway_policy.service import PolicyService

# Every policy instance joins this queue group, so each request gets exactly one answer.
QUEUE_GROUP = "policy"


def register(service: PolicyService) -> None:
    """Answer evaluation requests on the service's evaluate subject and policy CRUD on the
    contract subjects (behind its CRUD prefix, so a test's instance answers only its own).
    Core NATS: a request nobody answers times out for the caller, there is nothing to
    redeliver."""
    broker, prefix = service.runtime.broker, service.crud_prefix

    @broker.subscriber(service.evaluate_subject, queue=QUEUE_GROUP, title="policy-evaluate",
                       description="Effective spec or violations for a workload spec.")
    async def evaluate_request(body: Any, msg: NatsMessage) -> bytes:
        try:
            request = PolicyEvaluateRequest.model_validate_json(msg.raw_message.data)
        except ValidationError as exc:
            return _malformed_evaluation(exc).to_json()
        reply = (await service.evaluate(request)).to_json()
        limit = reply_limit(connection(service.runtime.broker))
        if len(reply) > limit:  # a reply the bus refuses would leave the caller waiting
            return PolicyEvaluateReply(ok=False, violations=[Violation(
                field="spec", rule="size", message=f"the effective spec is {len(reply):,} "
                f"bytes; the message bus carries at most {limit:,}")]).to_json()
        return reply

    # Every instance (no queue group): whichever saved or deleted a policy, all forget.
    @broker.subscriber(service.changed_subject, title="policy-changed",
                       description="A policy was saved or deleted: forget remembered branches.")
    async def changed(body: Any, msg: NatsMessage) -> None:
        service.forget()

    @broker.subscriber(prefix + subjects.POLICY_GET, queue=QUEUE_GROUP, title="policy-get",
                       description="A scope's policy and the effective one.")
    async def get_request(body: Any, msg: NatsMessage) -> bytes:
        return await _crud(PolicyGetRequest, msg, service.get)

    @broker.subscriber(prefix + subjects.POLICY_PUT, queue=QUEUE_GROUP, title="policy-put",
                       description="Replace or patch a scope's policy (or check it).")
    async def put_request(body: Any, msg: NatsMessage) -> bytes:
        return await _crud(PolicyPutRequest, msg, service.put)

    @broker.subscriber(prefix + subjects.POLICY_DELETE, queue=QUEUE_GROUP,
                       title="policy-delete", description="Remove a scope's policy.")
    async def delete_request(body: Any, msg: NatsMessage) -> bytes:
        return await _crud(PolicyDeleteRequest, msg, service.delete)


def _field(error: Any) -> str:
    return ".".join(str(p) for p in error["loc"]) or "request"


def _malformed_evaluation(exc: ValidationError) -> PolicyEvaluateReply:
    return PolicyEvaluateReply(ok=False, violations=[
        Violation(field=_field(e), message=e["msg"], rule="request")
        for e in exc.errors(include_url=False)])


async def _crud[M: BaseModel](model: type[M], msg: NatsMessage,
                               serve: Callable[[M], Awaitable[PolicyReply]]) -> bytes:
    """The CRUD request served, or a reply naming every problem with it."""
    try:
        request = model.model_validate_json(msg.raw_message.data)
    except ValidationError as exc:
        return PolicyReply(ok=False, problems=[
            PolicyProblem(field=_field(e), reason=e["msg"])
            for e in exc.errors(include_url=False)]).to_json()
    return (await serve(request)).to_json()
