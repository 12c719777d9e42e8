"""`PolicyService`, the object that runs the policy service: it evaluates submitted specs with
the policies of their branch applied, and keeps the policies (get, put, delete). An evaluation
reuses a branch's policies for `remember_seconds`; a save or delete forgets them on every
instance (the POLICY_CHANGED notice, sent after the commit) and CRUD always reads the database;
the decisions are the core's."""

import logging
import time
from collections.abc import Iterable

import asyncpg

from fairway_bus import connection
from fairway_contracts import subjects
from fairway_contracts.events import PolicyEvaluateReply, PolicyEvaluateRequest
from fairway_contracts.policies import (
    PolicyDeleteRequest,
    PolicyGetRequest,
    PolicyProblem,
    PolicyPutRequest,
    PolicyReply,
    PolicyScope,
)
from fairway_contracts.workloads import WorkloadType
from fairway_policy import repository
from fairway_policy.core.evaluation import evaluate
from fairway_policy.core.merge import EffectivePolicy, conflicts, merge
from fairway_policy.core.policies import Policy, Scope, parse, patch, scope_of, scope_problems
from fairway_policy.core.rules import check_defaults
from fairway_policy.repository import StoredPolicy
from fairway_policy.settings import PolicySettings
from fairway_runtime import Service

log = logging.getLogger("fairway.policy")

Layers = list[tuple[Scope, Policy]]
# Branches remembered at most (all forgotten when full: the busy ones come back at once).
MAX_REMEMBERED_BRANCHES = 10_000


class PolicyService:
    """Evaluation and policy CRUD over the runtime's database pool. `evaluate_subject` and
    `crud_prefix` are where the handlers answer (tests give an instance subjects of its own)."""

    def __init__(self, runtime: Service, settings: PolicySettings, *,
                 evaluate_subject: str = subjects.POLICY_EVALUATE, crud_prefix: str = ""):
        self.runtime = runtime
        self.settings = settings
        self.evaluate_subject = evaluate_subject
        self.crud_prefix = crud_prefix
        # where save and delete announce a change (a test's instance: only to its own)
        self.changed_subject = crud_prefix + subjects.POLICY_CHANGED
        # (workload type, department id, project id) -> (until, the branch's policy merged)
        self._branches: dict[tuple[str, str | None, str | None],
                             tuple[float, EffectivePolicy]] = {}
        self._generation = 0  # moves on every forget: a read from before is not kept

    # evaluation -------------------------------------------------------------------------------
    async def evaluate(self, request: PolicyEvaluateRequest) -> PolicyEvaluateReply:
        """The effective spec, or every violation. Before the database is reached (at start)
        only the built-in defaults and checks apply."""
        effective = None
        if self.runtime.pool is not None:
            effective = await self._branch_policy(request)
        reply = evaluate(request, effective)
        if not reply.ok:
            log.info("spec rejected", extra={"fields": {
                "project": request.project, "name": request.name,
                "violations": [v.field for v in reply.violations]}})
        return reply

    async def _branch_policy(self, request: PolicyEvaluateRequest) -> EffectivePolicy:
        """The merged policy of the request's branch, remembered for `remember_seconds`."""
        key = (request.workload_type.value, request.department_id, request.project_id)
        now = time.monotonic()
        known = self._branches.get(key)
        if known is not None and known[0] > now:
            return known[1]
        generation = self._generation
        async with self.runtime.pool.acquire() as conn:
            stored = await repository.branch(
                conn, request.workload_type.value, request.department_id,
                [request.project_id] if request.project_id else [])
        effective = merge(_layers(stored, request.workload_type))
        if generation == self._generation:
            if len(self._branches) >= MAX_REMEMBERED_BRANCHES:
                self._branches.clear()
            self._branches[key] = (now + self.settings.remember_seconds, effective)
        return effective

    def forget(self) -> None:
        """A policy changed (here or on another instance): read branches again."""
        self._generation += 1
        self._branches.clear()

    async def _changed(self) -> None:
        """Forget here and tell every other instance and the API, after the commit. A notice
        lost on the way is made up for by `remember_seconds`."""
        self.forget()
        try:
            await connection(self.runtime.broker).publish(self.changed_subject, b"")
        except Exception as exc:  # the change is saved; the others catch up on expiry
            log.warning("policy change notice not sent: %r", exc)

    # CRUD -------------------------------------------------------------------------------------
    async def get(self, request: PolicyGetRequest) -> PolicyReply:
        """A scope's own policy and the effective one there."""
        if (refused := self._refusal(request.scope)) is not None:
            return refused
        target = scope_of(request.scope)
        async with self.runtime.pool.acquire() as conn:
            stored = await repository.own(conn, request.workload_type.value, target)
            effective = merge(await _path(conn, request.workload_type, request.scope))
        return PolicyReply(
            ok=True, effective=effective.view(),
            policy=stored.document if stored else None,
            updated_by=stored.updated_by if stored else None,
            updated_at=stored.updated_at if stored else None)

    async def put(self, request: PolicyPutRequest) -> PolicyReply:
        """Replace or patch a scope's policy, or only check it (`validate_only`)."""
        if (refused := self._refusal(request.scope)) is not None:
            return refused
        wtype, target = request.workload_type, scope_of(request.scope)
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            await repository.lock_type(conn, wtype.value)
            policy, effective, problems = await _checked(conn, request, target)
            if problems:
                return PolicyReply(ok=False, problems=problems)
            if request.validate_only:
                return PolicyReply(ok=True, policy=policy.document(), effective=effective.view())
            saved = await repository.save(conn, wtype.value, target, policy.document(),
                                          request.updated_by)
        await self._changed()
        log.info("policy saved", extra={"fields": {"scope": target.label, "type": wtype.value,
                                                   "by": request.updated_by}})
        return PolicyReply(ok=True, policy=saved.document, effective=effective.view(),
                           updated_by=saved.updated_by, updated_at=saved.updated_at)

    async def delete(self, request: PolicyDeleteRequest) -> PolicyReply:
        """Remove a scope's policy; the reply shows what applies there afterwards."""
        if (refused := self._refusal(request.scope)) is not None:
            return refused
        target = scope_of(request.scope)
        async with self.runtime.pool.acquire() as conn:
            async with conn.transaction():
                await repository.lock_type(conn, request.workload_type.value)
                deleted = await repository.delete(conn, request.workload_type.value, target)
            if deleted:
                await self._changed()
            effective = merge(await _path(conn, request.workload_type, request.scope))
        return PolicyReply(ok=True, deleted=deleted, effective=effective.view())

    def _refusal(self, scope: PolicyScope) -> PolicyReply | None:
        """Why a CRUD request cannot be served (a scope without its ids, no database yet)."""
        problems = scope_problems(scope)
        if problems:
            return PolicyReply(ok=False, problems=problems)
        if self.runtime.pool is None:
            return PolicyReply(ok=False, problems=[PolicyProblem(field="request",
                                                                 reason="policy is starting")])
        return None


async def _checked(conn: asyncpg.Connection, request: PolicyPutRequest, target: Scope
                   ) -> tuple[Policy, EffectivePolicy, list[PolicyProblem]]:
    """The policy a put would save, the effective policy it would make at its scope, and every
    problem with it: its own, a field another scope of the branch already constrains, a
    default the branch's rules would refuse."""
    wtype = request.workload_type
    document = request.policy
    if request.mode == "patch":
        stored = await repository.own(conn, wtype.value, target)
        document = patch(stored.document if stored else {}, request.policy)
    policy, found = parse(document, wtype)
    problems = [PolicyProblem(**p) for p in found]
    others = await _branch_of(conn, wtype, request.scope)
    problems += [PolicyProblem(**p) for p in conflicts(target, policy, others)]
    path = [(s, p) for s, p in await _path(conn, wtype, request.scope) if s.key != target.key]
    effective = merge([*path, (target, policy)])
    problems += [PolicyProblem(**p) for p in check_defaults(effective)]
    return policy, effective, problems


async def _path(conn: asyncpg.Connection, workload_type: WorkloadType, scope: PolicyScope
                ) -> Layers:
    """The policies above and at the scope: what applies there."""
    stored = await repository.branch(conn, workload_type.value, scope.department_id,
                                     [scope.project_id] if scope.scope == "project" else [])
    return _layers(stored, workload_type)


async def _branch_of(conn: asyncpg.Connection, workload_type: WorkloadType, scope: PolicyScope
                     ) -> Layers:
    """Every scope that shares a branch with `scope`: above it and below it."""
    if scope.scope == "cluster":
        stored = await repository.every(conn, workload_type.value)
    elif scope.scope == "department":
        stored = await repository.branch(conn, workload_type.value, scope.department_id,
                                         scope.project_ids)
    else:
        stored = await repository.branch(conn, workload_type.value, scope.department_id,
                                         [scope.project_id])
    return _layers(stored, workload_type)


def _layers(stored: Iterable[StoredPolicy], workload_type: WorkloadType) -> Layers:
    layers = []
    for row in stored:
        # Stored policies were checked when saved; a field a later version no longer knows is
        # skipped rather than blocking every submission in the branch.
        policy, problems = parse(row.document, workload_type)
        if problems:
            log.warning("stored policy has problems", extra={"fields": {
                "scope": row.scope.label, "problems": [p["field"] for p in problems]}})
        layers.append((row.scope, policy))
    return layers
