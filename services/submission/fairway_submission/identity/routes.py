"""Routes: tokens, the caller, users, service accounts and access rules."""

import logging
from typing import Any

from fastapi import APIRouter, Request, Response

from fairway_submission import repository as repo
from fairway_submission.core.access import ROLES, SYSTEM_ADMIN, Grants, Perm
from fairway_submission.core.errors import ApiError, field_error
from fairway_submission.dependencies import Caller, Submission
from fairway_submission.identity.auth import (
    client_address,
    hash_password,
    new_client_id,
    new_client_secret,
    verify_absent_user,
    verify_password,
)
from fairway_submission.identity.models import (
    AccessRuleIn,
    AccessRuleList,
    AccessRuleOut,
    MeOut,
    ServiceAccountCreated,
    ServiceAccountIn,
    ServiceAccountList,
    TokenOut,
    TokenRequest,
    UserCreated,
    UserIn,
    UserList,
    UserOut,
)
from fairway_submission.models import errors
from fairway_submission.service import SubmissionService

log = logging.getLogger("fairway.submission.identity")

router = APIRouter(prefix="/api/v1")


def _rule_out(r: Any) -> dict[str, Any]:
    return {"id": r["id"], "subjectType": r["subject_type"], "subjectId": r["subject_id"],
            "roleName": r["role_name"], "scopeType": r["scope_type"],
            "scopeId": r["scope_id"] or None, "createdBy": r["created_by"],
            "createdAt": r["created_at"].isoformat()}


@router.post("/token", tags=["auth"], response_model=TokenOut,
             responses=errors(400, 401, 413, 422, 429, 503))
async def token(body: TokenRequest, request: Request, service: Submission) -> dict[str, Any]:
    address = client_address(request.client.host if request.client else None,
                             request.headers.get("x-forwarded-for"),
                             service.trusted_proxies)
    if body.grant_type == "password":
        access, ttl = await _user_token(service, body, address)
    else:
        access, ttl = await _client_token(service, body, address)
    return {"accessToken": access, "expiresIn": ttl, "tokenType": "Bearer"}


def _required(**values: str | None) -> None:
    missing = [field for field, value in values.items() if not value]
    if missing:
        raise ApiError(400, f"{' and '.join(missing)} required",
                       [{"field": f, "reason": "is required"} for f in missing])


async def _user_token(service: SubmissionService, body: TokenRequest, address: str
                      ) -> tuple[str, int]:
    _required(username=body.username, password=body.password)
    key = f"user:{body.username}"
    service.limiter.check(key, address)
    async with service.pool.acquire() as conn:
        user = await repo.get_user(conn, body.username)
    if user is None:  # as slow as a wrong password: answer times do not tell who exists
        verify_absent_user(body.password)
    if user is None or not verify_password(user["password_hash"], body.password):
        service.limiter.failed(key, address)
        log.info("failed login for a user")
        raise ApiError(401, "wrong username or password")
    service.limiter.succeeded(key, address)
    return service.tokens.issue(user["username"], "user")


async def _client_token(service: SubmissionService, body: TokenRequest, address: str
                        ) -> tuple[str, int]:
    _required(clientId=body.client_id, clientSecret=body.client_secret)
    key = f"sa:{body.client_id}"
    service.limiter.check(key, address)
    async with service.pool.acquire() as conn:
        account = await repo.get_service_account(conn, body.client_id)
    if account is None:
        verify_absent_user(body.client_secret)
    if account is None or not verify_password(account["secret_hash"], body.client_secret):
        service.limiter.failed(key, address)
        log.info("failed login for a service account")
        raise ApiError(401, "wrong clientId or clientSecret")
    service.limiter.succeeded(key, address)
    return service.tokens.issue(account["client_id"], "service-account")


@router.get("/me", tags=["auth"], response_model=MeOut, responses=errors(401, 503))
async def me(caller: Caller) -> dict[str, Any]:
    return {"subject": caller.subject, "subjectType": caller.kind,
            "accessRules": [{"roleName": r.role, "scopeType": r.scope_type,
                             "scopeId": r.scope_id or None} for r in caller.rules]}


@router.post("/users", status_code=201, tags=["access"], response_model=UserCreated,
             responses=errors(400, 401, 403, 409, 413, 422, 503))
async def create_user(body: UserIn, caller: Caller, service: Submission) -> dict[str, Any]:
    caller.require_cluster()
    async with service.pool.acquire() as conn:
        created = await repo.create_user(conn, body.username, hash_password(body.password),
                                         "")
        if created and body.groups:
            await repo.set_groups(conn, body.username, body.groups)
        user = await repo.get_user(conn, body.username)
    if not created:
        raise field_error(409, "username", f"user {body.username!r} already exists")
    return {"id": str(user["id"]), "username": user["username"], "groups": user["groups"]}


@router.get("/users", tags=["access"], response_model=UserList,
            responses=errors(401, 403, 503))
async def list_users(caller: Caller, service: Submission) -> dict[str, Any]:
    caller.require_cluster()
    async with service.pool.acquire() as conn:
        rows = await repo.list_users(conn)
    return {"users": [{"id": str(r["id"]), "username": r["username"],
                       "groups": r["groups"], "createdAt": r["created_at"].isoformat()}
                      for r in rows]}


@router.get("/users/{user_id}", tags=["access"], response_model=UserOut,
            responses=errors(401, 403, 404, 422, 503))
async def get_user(user_id: str, caller: Caller, service: Submission) -> dict[str, Any]:
    caller.require_cluster()
    async with service.pool.acquire() as conn:
        row = await repo.get_user_by_id(conn, user_id)
    if row is None:
        raise field_error(404, "userId", f"no user {user_id}")
    return {"id": str(row["id"]), "username": row["username"], "groups": row["groups"],
            "createdAt": row["created_at"].isoformat()}


@router.delete("/users/{user_id}", status_code=204, tags=["access"],
               responses=errors(401, 403, 404, 409, 422, 503))
async def delete_user(user_id: str, caller: Caller, service: Submission) -> Response:
    caller.require_cluster()
    async with service.pool.acquire() as conn, conn.transaction():
        row = await repo.get_user_by_id(conn, user_id)
        if row is None:
            raise field_error(404, "userId", f"no user {user_id}")
        if row["username"] == caller.subject:
            raise field_error(409, "userId", "you cannot delete yourself")
        admins = await repo.cluster_rules_of_role(conn, SYSTEM_ADMIN)
        if admins and all(r["subject_type"] == "user" and r["subject_id"] == row["username"]
                          for r in admins):
            raise field_error(409, "userId", f"{row['username']} holds the last "
                              f"{SYSTEM_ADMIN} rule: grant the role to someone else first")
        await repo.delete_user(conn, row["id"], row["username"])
    return Response(status_code=204)


@router.post("/service-accounts", status_code=201, tags=["access"],
             response_model=ServiceAccountCreated,
             responses=errors(400, 401, 403, 409, 413, 422, 503))
async def create_service_account(body: ServiceAccountIn, caller: Caller, service: Submission
                                 ) -> dict[str, Any]:
    caller.require_cluster()
    secret = new_client_secret()
    async with service.pool.acquire() as conn:
        row = await repo.create_service_account(conn, body.name, new_client_id(),
                                                hash_password(secret), caller.subject)
    if row is None:
        raise field_error(409, "name", f"service account {body.name!r} already exists")
    # The secret is shown this once; only its hash is kept.
    return {"id": str(row["id"]), "name": row["name"], "clientId": row["client_id"],
            "clientSecret": secret}


@router.get("/service-accounts", tags=["access"], response_model=ServiceAccountList,
            responses=errors(401, 403, 503))
async def list_service_accounts(caller: Caller, service: Submission) -> dict[str, Any]:
    caller.require_cluster()
    async with service.pool.acquire() as conn:
        rows = await repo.list_service_accounts(conn)
    return {"serviceAccounts": [
        {"id": str(r["id"]), "name": r["name"], "clientId": r["client_id"],
         "createdBy": r["created_by"], "createdAt": r["created_at"].isoformat()}
        for r in rows]}


@router.delete("/service-accounts/{sa_id}", status_code=204, tags=["access"],
               responses=errors(401, 403, 404, 422, 503))
async def delete_service_account(sa_id: str, caller: Caller, service: Submission) -> Response:
    caller.require_cluster()
    async with service.pool.acquire() as conn, conn.transaction():
        if not await repo.delete_service_account(conn, sa_id):
            raise field_error(404, "serviceAccountId", f"no service account {sa_id}")
    return Response(status_code=204)


def _require_rule_scope(caller: Grants, scope_type: str, scope_id: str) -> None:
    if scope_type == "cluster":
        if Perm.ACCESS_EDIT not in caller.at_cluster():
            raise ApiError(403, f"{caller.subject} may not manage cluster-wide access")
    elif scope_type == "department":
        caller.require(Perm.ACCESS_EDIT, what=f"department {scope_id}",
                       department_id=scope_id)
    else:
        caller.require(Perm.ACCESS_EDIT, what=f"project {scope_id}", project_id=scope_id)


@router.post("/authorization/access-rules", status_code=201, tags=["access"],
             response_model=AccessRuleOut,
             responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
async def create_rule(body: AccessRuleIn, caller: Caller, service: Submission) -> dict[str, Any]:
    problems = []
    if body.role_name not in ROLES:
        problems.append({"field": "roleName",
                         "reason": f"unknown role; valid: {', '.join(ROLES)}"})
    scope_id = "" if body.scope_type == "cluster" else (body.scope_id or "")
    if body.scope_type != "cluster" and not scope_id:
        problems.append({"field": "scopeId", "reason": f"is required for a {body.scope_type}"})
    if problems:
        raise ApiError(422, "invalid access rule", problems)
    async with service.pool.acquire() as conn, conn.transaction():
        if body.scope_type == "department" and await repo.get_department(conn, scope_id) \
                is None:
            raise field_error(404, "scopeId", f"department {scope_id} does not exist")
        if body.scope_type == "project" and await repo.get_project(conn, scope_id) is None:
            raise field_error(404, "scopeId", f"project {scope_id} does not exist")
        _require_rule_scope(caller, body.scope_type, scope_id)
        if body.role_name == SYSTEM_ADMIN:
            caller.require_cluster()
        if body.subject_type != "group" and not await repo.subject_exists(
                conn, body.subject_type, body.subject_id):
            raise field_error(422, "subjectId", f"no {body.subject_type} "
                                                f"{body.subject_id!r}")
        row = await repo.create_rule(
            conn, subject_type=body.subject_type, subject_id=body.subject_id,
            role_name=body.role_name, scope_type=body.scope_type, scope_id=scope_id,
            created_by=caller.subject)
    if row is None:
        raise ApiError(409, "this access rule already exists")
    return _rule_out(row)


@router.get("/authorization/access-rules", tags=["access"], response_model=AccessRuleList,
            responses=errors(401, 403, 503))
async def list_rules(caller: Caller, service: Submission) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        rows = await repo.list_rules(conn)
    if Perm.ACCESS_EDIT not in caller.anywhere():
        raise ApiError(403, f"{caller.subject} may not see access rules")
    visible = [r for r in rows if _covers(caller, r["scope_type"], r["scope_id"])]
    return {"accessRules": [_rule_out(r) for r in visible], "totalCount": len(visible)}


@router.delete("/authorization/access-rules/{rule_id}", status_code=204, tags=["access"],
               responses=errors(401, 403, 404, 409, 422, 503))
async def delete_rule(rule_id: str, caller: Caller, service: Submission) -> Response:
    async with service.pool.acquire() as conn, conn.transaction():
        row = await repo.get_rule(conn, rule_id)
        if row is None or not caller.roles_at(*_scope_args(row["scope_type"],
                                                           row["scope_id"])):
            raise field_error(404, "ruleId", f"no access rule {rule_id}")
        _require_rule_scope(caller, row["scope_type"], row["scope_id"])
        if row["role_name"] == SYSTEM_ADMIN:
            caller.require_cluster()
            admins = await repo.cluster_rules_of_role(conn, SYSTEM_ADMIN)
            if row["scope_type"] == "cluster" and [r["id"] for r in admins] == [row["id"]]:
                raise field_error(409, "ruleId", f"the last {SYSTEM_ADMIN} rule cannot be "
                                  "deleted: grant the role to someone else first")
        await repo.delete_rule(conn, row["id"])
    return Response(status_code=204)


def _scope_args(scope_type: str, scope_id: str) -> tuple[str | None, str | None]:
    if scope_type == "department":
        return scope_id, None
    if scope_type == "project":
        return None, scope_id
    return None, None


def _covers(caller: Grants, scope_type: str, scope_id: str) -> bool:
    if scope_type == "cluster":
        return Perm.ACCESS_EDIT in caller.at_cluster()
    return Perm.ACCESS_EDIT in caller.perms_at(*_scope_args(scope_type, scope_id))
