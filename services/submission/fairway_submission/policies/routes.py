"""Routes: policies per workload type and scope, Run:ai-shaped, under /api/v2/policy/<type>.

Submission decides who may see or change a policy where (the access rules and the org are its
own) and fills in the scope's branch; the policy service owns the policies and answers over
NATS request/reply. A bad policy comes back with every problem named by its field path.
"""

import logging
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Response
from pydantic import ValidationError

from fairway_contracts import WorkloadType, subjects
from fairway_contracts.base import Contract
from fairway_contracts.policies import (
    PolicyDeleteRequest,
    PolicyGetRequest,
    PolicyPutRequest,
    PolicyReply,
    PolicyScope,
)
from fairway_contracts.workloads import TYPE_OF_PLURAL
from fairway_submission import repository as repo
from fairway_submission.core.access import Grants, Perm
from fairway_submission.core.errors import ApiError, field_error
from fairway_submission.dependencies import Caller, Submission
from fairway_submission.models import errors
from fairway_submission.policies.models import (
    PolicyIn,
    PolicyMeta,
    PolicyOut,
    PolicyWritten,
    ScopeKind,
)
from fairway_submission.service import SubmissionService

log = logging.getLogger("fairway.submission.policies")

router = APIRouter(prefix="/api/v2/policy", tags=["policies"])


async def _ask(service: SubmissionService, subject: str, request: Contract) -> PolicyReply:
    """The policy service's reply; 422 with every problem when it refuses."""
    return _ok(PolicyReply.model_validate_json(await service.ask("policy", subject, request)))


@router.get("/{policy_type}", response_model=PolicyOut, response_model_exclude_unset=True,
            responses=errors(400, 401, 403, 404, 422, 503))
async def get_policy(
    policy_type: str, caller: Caller, service: Submission,
    scope: Annotated[ScopeKind | None, Query()] = None,
    department_id: Annotated[str | None, Query(alias="departmentId")] = None,
    project_id: Annotated[str | None, Query(alias="projectId")] = None,
) -> dict[str, Any]:
    """The scope's own policy (null when it has none) and the effective one, with the
    scope each default, rule and imposed value comes from."""
    wtype = _type(policy_type)
    meta = _meta(scope, department_id, project_id)
    target = await _scope(service, caller, meta, edit=False)
    reply = await _ask(service, subjects.POLICY_GET,
                       PolicyGetRequest(workload_type=wtype, scope=target))
    return _out(wtype, target, reply)


@router.put("/{policy_type}", response_model=PolicyWritten, response_model_exclude_unset=True,
            responses=errors(400, 401, 403, 404, 413, 422, 503))
async def put_policy(policy_type: str, body: PolicyIn, caller: Caller, service: Submission,
                     validate_only: Annotated[bool, Query(alias="validateOnly")] = False
                     ) -> dict[str, Any]:
    """Replace the scope's policy; with validateOnly=true, check it without saving."""
    return await _write(service, caller, policy_type, body, "replace", validate_only)


@router.patch("/{policy_type}", response_model=PolicyWritten, response_model_exclude_unset=True,
              responses=errors(400, 401, 403, 404, 413, 422, 503))
async def patch_policy(policy_type: str, body: PolicyIn, caller: Caller, service: Submission,
                       validate_only: Annotated[bool, Query(alias="validateOnly")] = False
                       ) -> dict[str, Any]:
    """Merge into the scope's policy (JSON merge patch: a null removes a key)."""
    return await _write(service, caller, policy_type, body, "patch", validate_only)


@router.delete("/{policy_type}", status_code=204,
               responses=errors(400, 401, 403, 404, 422, 503))
async def delete_policy(
    policy_type: str, caller: Caller, service: Submission,
    scope: Annotated[ScopeKind | None, Query()] = None,
    department_id: Annotated[str | None, Query(alias="departmentId")] = None,
    project_id: Annotated[str | None, Query(alias="projectId")] = None,
) -> Response:
    wtype = _type(policy_type)
    target = await _scope(service, caller, _meta(scope, department_id, project_id), edit=True)
    reply = await _ask(service, subjects.POLICY_DELETE,
                       PolicyDeleteRequest(workload_type=wtype, scope=target))
    if not reply.deleted:
        raise ApiError(404, f"the {_label(target)} has no {wtype.value} policy")
    log.info("%s policy of %s deleted by %s", wtype.value, _label(target), caller.subject)
    return Response(status_code=204)


async def _write(service: SubmissionService, caller: Grants, policy_type: str,
                 body: PolicyIn, mode: str, validate_only: bool) -> dict[str, Any]:
    wtype = _type(policy_type)
    target = await _scope(service, caller, body.meta, edit=True)
    reply = await _ask(service, subjects.POLICY_PUT, PolicyPutRequest(
        workload_type=wtype, scope=target, policy=body.policy, mode=mode,
        validate_only=validate_only, updated_by=caller.subject))
    if not validate_only:
        log.info("%s policy of %s set by %s", wtype.value, _label(target), caller.subject)
    return {**_out(wtype, target, reply), "validated": validate_only}


def _type(policy_type: str) -> WorkloadType:
    if policy_type not in TYPE_OF_PLURAL:
        raise field_error(404, "type", f"no policy type {policy_type!r}; use one of "
                                       f"{', '.join(TYPE_OF_PLURAL)}")
    return TYPE_OF_PLURAL[policy_type]


def _meta(scope: str | None, department_id: str | None, project_id: str | None) -> PolicyMeta:
    """The scope named by query parameters; without `scope`, the narrowest id given."""
    if scope is None:
        scope = "project" if project_id else "department" if department_id else "cluster"
    try:
        return PolicyMeta(scope=scope, department_id=department_id, project_id=project_id)
    except ValidationError as exc:  # a query parameter no scope can take (a NUL character)
        error = exc.errors()[0]
        field = {"department_id": "departmentId", "project_id": "projectId"}.get(
            str(error["loc"][0]) if error.get("loc") else "", "scope")
        raise field_error(422, field, error["msg"].removeprefix("Value error, ")) from None


async def _scope(service: SubmissionService, caller: Grants, meta: PolicyMeta, *, edit: bool
                 ) -> PolicyScope:
    """The scope with its branch, once the caller may see it (and change it, for `edit`):
    404 for a scope outside the caller's, 403 for one they may only look at."""
    if meta.scope == "cluster":
        if meta.department_id or meta.project_id:
            raise field_error(400, "meta.scope", "the cluster scope takes no departmentId or "
                                                 "projectId")
        if edit:
            caller.require_cluster()
        elif not caller.rules:
            raise ApiError(403, f"{caller.subject} has no access rules")
        return PolicyScope(scope="cluster")
    perm = Perm.ORG_EDIT if edit else Perm.ORG_VIEW
    async with service.pool.acquire() as conn:
        if meta.scope == "department":
            if meta.project_id:
                raise field_error(400, "meta.projectId", "the department scope takes no "
                                                         "projectId")
            row = await _department(conn, meta.department_id)
            caller.require(perm, what=f"department {meta.department_id}",
                           department_id=str(row["id"]))
            projects = await repo.projects_in(conn, row["id"])
            return PolicyScope(scope="department", department_id=str(row["id"]),
                               name=row["name"], project_ids=[str(p["id"]) for p in projects])
        if not meta.project_id:
            raise field_error(422, "meta.projectId", "is required for the project scope")
        row = await repo.get_project(conn, meta.project_id)
        if row is None:
            raise field_error(404, "meta.projectId", f"project {meta.project_id} does not exist")
        if meta.department_id and meta.department_id != str(row["department_id"]):
            raise field_error(422, "meta.departmentId", f"project {row['name']} is in "
                                                        f"department {row['department_id']}")
        caller.require(perm, what=f"project {meta.project_id}", project_id=str(row["id"]))
        return PolicyScope(scope="project", project_id=str(row["id"]),
                           department_id=str(row["department_id"]), name=row["name"])


async def _department(conn: asyncpg.Connection, department_id: str | None) -> asyncpg.Record:
    if not department_id:
        raise field_error(422, "meta.departmentId", "is required for the department scope")
    row = await repo.get_department(conn, department_id)
    if row is None:
        raise field_error(404, "meta.departmentId", f"department {department_id} does not "
                                                    "exist")
    return row


def _ok(reply: PolicyReply) -> PolicyReply:
    if reply.ok:
        return reply
    details = [p.model_dump(exclude_none=True) for p in reply.problems]
    raise ApiError(422, "the policy is refused: " + "; ".join(
        f"{d['field']}: {d['reason']}" for d in details[:5]), details)


def _label(scope: PolicyScope) -> str:
    if scope.scope == "cluster":
        return "cluster"
    return f"{scope.scope} {scope.name}"


def _out(wtype: WorkloadType, scope: PolicyScope, reply: PolicyReply) -> dict[str, Any]:
    meta: dict[str, Any] = {"scope": scope.scope}
    if scope.scope != "cluster":
        meta["departmentId"] = scope.department_id
        meta[f"{scope.scope}Name"] = scope.name
    if scope.scope == "project":
        meta["projectId"] = scope.project_id
    meta["updatedBy"] = reply.updated_by
    meta["updatedAt"] = reply.updated_at.isoformat() if reply.updated_at else None
    return {"type": wtype.value, "meta": meta, "policy": reply.policy,
            "effective": reply.effective}
