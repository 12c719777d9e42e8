"""Policy's message handlers: `policy.evaluate` and the policy CRUD requests (get, put, delete),
all core-NATS request/reply. Parsing at the edge, the decisions in `domain` and
`policy_merge`, the rows in `repository`."""

import logging
from collections.abc import Iterable
from typing import Any

import asyncpg
from faststream.nats import NatsMessage
from pydantic import BaseModel, ValidationError

from fairway_contracts import subjects
from fairway_contracts.events import PolicyEvaluateReply, PolicyEvaluateRequest, Violation
from fairway_contracts.policies import (
    PolicyDeleteRequest,
    PolicyGetRequest,
    PolicyProblem,
    PolicyPutRequest,
    PolicyReply,
    PolicyScope,
)
from fairway_contracts.workloads import WorkloadType
from fairway_policy import domain, policy_merge
from fairway_policy import repository as repo
from fairway_policy.policy_merge import Policy, Scope
from fairway_runtime import Service

log = logging.getLogger("fairway.policy")

# Every policy instance joins this queue group, so each request gets exactly one answer.
QUEUE_GROUP = "policy"


def register(service: Service, *, subject: str = subjects.POLICY_EVALUATE,
             crud_prefix: str = "") -> None:
    """Answer evaluation requests on `subject` and policy CRUD on the contract subjects
    (prefixed with `crud_prefix`, so a test's instance answers only its own). Core NATS: a
    request nobody answers times out for the caller, there is nothing to redeliver."""

    @service.broker.subscriber(subject, queue=QUEUE_GROUP, title="policy-evaluate",
                               description="Effective spec or violations for a workload spec.")
    async def evaluate_request(body: Any, msg: NatsMessage) -> bytes:
        return (await answer(service.pool, msg.raw_message.data)).to_json()

    @service.broker.subscriber(crud_prefix + subjects.POLICY_GET, queue=QUEUE_GROUP,
                               title="policy-get",
                               description="A scope's policy and the effective one.")
    async def get_request(body: Any, msg: NatsMessage) -> bytes:
        return (await _crud(service.pool, msg.raw_message.data, PolicyGetRequest, get)).to_json()

    @service.broker.subscriber(crud_prefix + subjects.POLICY_PUT, queue=QUEUE_GROUP,
                               title="policy-put",
                               description="Replace or patch a scope's policy (or check it).")
    async def put_request(body: Any, msg: NatsMessage) -> bytes:
        return (await _crud(service.pool, msg.raw_message.data, PolicyPutRequest, put)).to_json()

    @service.broker.subscriber(crud_prefix + subjects.POLICY_DELETE, queue=QUEUE_GROUP,
                               title="policy-delete", description="Remove a scope's policy.")
    async def delete_request(body: Any, msg: NatsMessage) -> bytes:
        return (await _crud(service.pool, msg.raw_message.data, PolicyDeleteRequest,
                            delete)).to_json()


# evaluation ---------------------------------------------------------------------------------

async def answer(pool: asyncpg.Pool | None, data: bytes) -> PolicyEvaluateReply:
    try:
        request = PolicyEvaluateRequest.model_validate_json(data)
    except ValidationError as exc:
        # A malformed request still gets an answer, so the caller does not wait for a timeout.
        return PolicyEvaluateReply(ok=False, violations=[
            Violation(field=".".join(str(p) for p in e["loc"]) or "request", message=e["msg"],
                      rule="request")
            for e in exc.errors(include_url=False)
        ])
    effective = None
    if pool is not None:
        async with pool.acquire() as conn:
            rows = await repo.branch(conn, request.workload_type.value, request.department_id,
                                     [request.project_id] if request.project_id else [])
        effective = policy_merge.merge(_layers(rows, request.workload_type))
    reply = domain.evaluate(request, effective)
    if not reply.ok:
        log.info("spec rejected", extra={"fields": {
            "project": request.project, "name": request.name,
            "violations": [v.field for v in reply.violations]}})
    return reply


def _layers(rows: Iterable[asyncpg.Record], workload_type: WorkloadType
            ) -> list[tuple[Scope, Policy]]:
    layers = []
    for row in rows:
        scope = Scope(row["scope_type"], row["scope_id"], row["scope_name"])
        # Stored policies were checked when saved; a field a later version no longer knows is
        # skipped rather than blocking every submission in the branch.
        policy, problems = policy_merge.parse(_document(row), workload_type)
        if problems:
            log.warning("stored policy has problems", extra={"fields": {
                "scope": scope.label, "problems": [p["field"] for p in problems]}})
        layers.append((scope, policy))
    return layers


def _document(row: asyncpg.Record) -> dict[str, Any]:
    return {section: row[section] or {} for section in policy_merge.SECTIONS}


# CRUD -------------------------------------------------------------------------------------

async def _crud(pool: asyncpg.Pool | None, data: bytes, model: type[BaseModel],
                handler: Any) -> PolicyReply:
    try:
        request = model.model_validate_json(data)
    except ValidationError as exc:
        return PolicyReply(ok=False, problems=[
            PolicyProblem(field=".".join(str(p) for p in e["loc"]) or "request",
                          reason=e["msg"]) for e in exc.errors(include_url=False)])
    problems = _scope_problems(request.scope)
    if problems:
        return PolicyReply(ok=False, problems=problems)
    if pool is None:
        return PolicyReply(ok=False, problems=[PolicyProblem(field="request",
                                                             reason="policy is starting")])
    async with pool.acquire() as conn:
        return await handler(conn, request)


def _scope_problems(scope: PolicyScope) -> list[PolicyProblem]:
    needs = {"cluster": (), "department": ("department_id",),
             "project": ("department_id", "project_id")}[scope.scope]
    return [PolicyProblem(field=f"meta.{name.replace('_id', 'Id')}",
                          reason=f"is required for the {scope.scope} scope")
            for name in needs if not getattr(scope, name)]


def _scope(scope: PolicyScope) -> Scope:
    if scope.scope == "cluster":
        return Scope("cluster")
    if scope.scope == "department":
        return Scope("department", scope.department_id, scope.name)
    return Scope("project", scope.project_id, scope.name)


async def _path(conn: asyncpg.Connection, workload_type: WorkloadType, scope: PolicyScope
                ) -> list[tuple[Scope, Policy]]:
    """The policies above and at the scope: what applies there."""
    rows = await repo.branch(conn, workload_type.value, scope.department_id,
                             [scope.project_id] if scope.scope == "project" else [])
    return _layers(rows, workload_type)


async def get(conn: asyncpg.Connection, request: PolicyGetRequest) -> PolicyReply:
    target = _scope(request.scope)
    row = await repo.own(conn, request.workload_type.value, target.kind, target.id)
    effective = policy_merge.merge(await _path(conn, request.workload_type, request.scope))
    return PolicyReply(
        ok=True, effective=effective.view(),
        policy=_document(row) if row else None,
        updated_by=row["updated_by"] if row else None,
        updated_at=row["updated_at"] if row else None)


async def put(conn: asyncpg.Connection, request: PolicyPutRequest) -> PolicyReply:
    wtype, target = request.workload_type, _scope(request.scope)
    async with conn.transaction():
        await repo.lock_type(conn, wtype.value)
        row = await repo.own(conn, wtype.value, target.kind, target.id)
        document = request.policy
        if request.mode == "patch":
            document = policy_merge.patch(_document(row) if row else {}, request.policy)
        policy, found = policy_merge.parse(document, wtype)
        problems = [PolicyProblem(**p) for p in found]
        others = await _branch_of(conn, wtype, request.scope)
        problems += [PolicyProblem(**p) for p in policy_merge.conflicts(target, policy, others)]
        path = [(s, p) for s, p in await _path(conn, wtype, request.scope)
                if s.key != target.key]
        effective = policy_merge.merge([*path, (target, policy)])
        problems += [PolicyProblem(**p) for p in policy_merge.check_defaults(effective)]
        if problems:
            return PolicyReply(ok=False, problems=problems)
        if request.validate_only:
            return PolicyReply(ok=True, policy=policy.document(), effective=effective.view())
        saved = await repo.save(conn, wtype.value, target.kind, target.id, target.name,
                                policy.document(), request.updated_by)
    log.info("policy saved", extra={"fields": {"scope": target.label, "type": wtype.value,
                                               "by": request.updated_by}})
    return PolicyReply(ok=True, policy=_document(saved), effective=effective.view(),
                       updated_by=saved["updated_by"], updated_at=saved["updated_at"])


async def _branch_of(conn: asyncpg.Connection, workload_type: WorkloadType, scope: PolicyScope
                     ) -> list[tuple[Scope, Policy]]:
    """Every scope that shares a branch with `scope`: above it and below it."""
    if scope.scope == "cluster":
        rows = await repo.every(conn, workload_type.value)
    elif scope.scope == "department":
        rows = await repo.branch(conn, workload_type.value, scope.department_id,
                                 scope.project_ids)
    else:
        rows = await repo.branch(conn, workload_type.value, scope.department_id,
                                 [scope.project_id])
    return _layers(rows, workload_type)


async def delete(conn: asyncpg.Connection, request: PolicyDeleteRequest) -> PolicyReply:
    target = _scope(request.scope)
    async with conn.transaction():
        await repo.lock_type(conn, request.workload_type.value)
        deleted = await repo.delete(conn, request.workload_type.value, target.kind, target.id)
    effective = policy_merge.merge(await _path(conn, request.workload_type, request.scope))
    return PolicyReply(ok=True, deleted=deleted, effective=effective.view())
