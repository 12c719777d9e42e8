"""Access control: every role by every endpoint group by in scope / out of scope, with the exact
status; tokens, service accounts, expiry and failed-login limits."""

import itertools
import time

import jwt
import pytest

pytestmark = pytest.mark.infra

ROLES = ["System administrator", "Department administrator", "Research manager",
         "L1 researcher", "L2 researcher", "ML engineer", "Viewer"]
_n = itertools.count()


@pytest.fixture(scope="module")
async def org(harness):
    """Department `research` with project `team-a` (in scope for the roles below) and
    department `other` with `team-b` (out of scope), each with a training and an
    inference."""
    admin = harness.admin
    out = {}
    for dept, project in (("research", "team-a"), ("other", "team-b")):
        d = (await admin.post("/api/v1/org-unit/departments", json={"name": dept})).json()
        p = (await admin.post("/api/v1/org-unit/projects", json={
            "name": project, "parentId": d["id"]})).json()
        workloads = {}
        for plural in ("trainings", "inferences"):
            r = await admin.post(f"/api/v1/workloads/{plural}", json={
                "name": f"{project}-{plural}", "projectId": p["id"],
                "spec": {"image": "busybox"}})
            assert r.status_code == 202, r.text
            workloads[plural] = r.json()["workloadId"]
        out[project] = {"department": d["id"], "project": p["id"], **workloads}
    return out


async def as_role(harness, org, role: str):
    name = f"u{next(_n)}"
    if role == "System administrator":
        return await harness.user(name, role)
    if role == "Department administrator":
        return await harness.user(name, role, "department", org["team-a"]["department"])
    return await harness.user(name, role, "project", org["team-a"]["project"])


# Role → expected status per endpoint group, "in scope/out of scope" (team-a/team-b), in the
# order: org view, org edit, create training, create inference, view training, view inference,
# suspend training, suspend inference, list users (cluster), create node pool (cluster),
# create an access rule.
EXPECTED = {
    "System administrator":
        "200/200 200/200 202/202 202/202 200/200 200/200 202/202 202/202 200 201 201/201",
    "Department administrator":
        "200/404 200/404 202/404 202/404 200/404 200/404 202/404 202/404 403 403 201/404",
    "Research manager":
        "200/404 403/404 403/404 403/404 200/404 200/404 403/404 403/404 403 403 403/404",
    "L1 researcher":
        "200/404 403/404 202/404 202/404 200/404 200/404 202/404 202/404 403 403 403/404",
    "L2 researcher":
        "200/404 403/404 403/404 403/404 200/404 200/404 202/404 202/404 403 403 403/404",
    "ML engineer":
        "200/404 403/404 403/404 202/404 404/404 200/404 404/404 202/404 403 403 403/404",
    "Viewer":
        "200/404 403/404 403/404 403/404 200/404 200/404 403/404 403/404 403 403 403/404",
}


def _codes(row: str) -> tuple:
    return tuple(tuple(int(c) for c in cell.split("/")) if "/" in cell else int(cell)
                 for cell in row.split())


@pytest.mark.parametrize("role", ROLES)
async def test_access_matrix(harness, org, role):
    c = await as_role(harness, org, role)
    expected = _codes(EXPECTED[role])
    got = []

    async def both(call):
        return tuple([(await call(org[p])).status_code for p in ("team-a", "team-b")])

    got.append(await both(lambda o: c.get(f"/api/v1/org-unit/projects/{o['project']}")))
    got.append(await both(lambda o: c.put(f"/api/v1/org-unit/projects/{o['project']}",
                                          json={"defaultNodePools": ["default"]})))
    for plural in ("trainings", "inferences"):
        got.append(await both(lambda o, plural=plural: c.post(
            f"/api/v1/workloads/{plural}", json={"name": f"n{next(_n)}",
                                                 "projectId": o["project"],
                                                 "spec": {"image": "busybox"}})))
    for plural in ("trainings", "inferences"):
        got.append(await both(lambda o, plural=plural: c.get(f"/api/v1/workloads/{o[plural]}")))
    for plural in ("trainings", "inferences"):
        got.append(await both(lambda o, plural=plural: c.post(
            f"/api/v1/workloads/{plural}/{o[plural]}/suspend")))
    got.append((await c.get("/api/v1/users")).status_code)
    got.append((await c.post("/api/v1/node-pools", json={"name": f"pool{next(_n)}"}))
               .status_code)
    subject = f"u{next(_n)}"
    r = await harness.admin.post("/api/v1/users", json={"username": subject,
                                                        "password": "long-enough"})
    assert r.status_code == 201
    got.append(await both(lambda o: c.post("/api/v1/authorization/access-rules", json={
        "subjectType": "user", "subjectId": subject, "roleName": "Viewer",
        "scopeType": "project", "scopeId": o["project"]})))
    assert tuple(got) == expected


@pytest.mark.parametrize("role", ROLES[1:])
async def test_lists_show_only_what_is_in_scope(harness, org, role):
    c = await as_role(harness, org, role)
    workloads = (await c.get("/api/v1/workloads", params={"limit": 500})).json()
    projects = {w["projectName"] for w in workloads["workloads"]}
    assert projects <= {"team-a"}
    types = {w["type"] for w in workloads["workloads"]}
    assert types == ({"inference"} if role == "ML engineer" else {"training", "inference"})
    assert workloads["totalCount"] == len(workloads["workloads"])
    names = {p["name"] for p in (await c.get("/api/v1/org-unit/projects")).json()["projects"]}
    assert names == {"team-a"}
    depts = {d["name"] for d in
             (await c.get("/api/v1/org-unit/departments")).json()["departments"]}
    assert depts == ({"research"} if role == "Department administrator" else set())
    # another project's workload cannot be found by name either
    r = await c.get("/api/v1/workloads", params={"filterBy": "projectName==team-b"})
    assert r.json()["totalCount"] == 0


async def test_scope_inherits_downwards(harness, org):
    c = await harness.user(f"u{next(_n)}", "Viewer", "department", org["team-a"]["department"])
    assert (await c.get(f"/api/v1/workloads/{org['team-a']['trainings']}")).status_code == 200
    assert (await c.get(f"/api/v1/workloads/{org['team-b']['trainings']}")).status_code == 404


async def test_no_rules_sees_nothing(harness, org):
    c = await harness.user(f"u{next(_n)}")
    assert (await c.get("/api/v1/workloads")).json()["totalCount"] == 0
    assert (await c.get(f"/api/v1/workloads/{org['team-a']['trainings']}")).status_code == 404
    assert (await c.get("/api/v1/org-unit/projects")).json()["projects"] == []


async def test_tokens(harness):
    anon = harness.client()
    assert (await anon.get("/api/v1/workloads")).status_code == 401
    bad = harness.client("not-a-token")
    r = await bad.get("/api/v1/workloads")
    assert r.status_code == 401 and r.json()["code"] == 401
    secret = harness.service.tokens.secret
    expired = jwt.encode({"iss": "fairway", "sub": "admin", "kind": "user",
                          "exp": int(time.time()) - 5}, secret, algorithm="HS256")
    r = await harness.client(expired).get("/api/v1/workloads")
    assert r.status_code == 401 and "expired" in r.json()["message"]
    forged = jwt.encode({"iss": "fairway", "sub": "admin", "exp": int(time.time()) + 60},
                        "another-secret-of-at-least-thirty-two-bytes", algorithm="HS256")
    assert (await harness.client(forged).get("/api/v1/workloads")).status_code == 401


async def test_deleted_user_token_stops_working(harness):
    name = f"u{next(_n)}"
    c = await harness.user(name, "Viewer")
    assert (await c.get("/api/v1/me")).json()["subject"] == name
    users = (await harness.admin.get("/api/v1/users")).json()["users"]
    uid = next(u["id"] for u in users if u["username"] == name)
    assert (await harness.admin.delete(f"/api/v1/users/{uid}")).status_code == 204
    assert (await c.get("/api/v1/me")).status_code == 401
    assert (await harness.admin.get(f"/api/v1/users/{uid}")).status_code == 404


async def test_service_account_client_credentials(harness, org):
    admin = harness.admin
    r = await admin.post("/api/v1/service-accounts", json={"name": "ci-bot"})
    assert r.status_code == 201
    sa = r.json()
    assert sa["clientSecret"] and sa["clientId"].startswith("fw-")
    listed = (await admin.get("/api/v1/service-accounts")).json()["serviceAccounts"]
    assert all("clientSecret" not in s and "secretHash" not in s for s in listed)
    async with harness.service.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT secret_hash FROM service_accounts"
                                     " WHERE client_id = $1", sa["clientId"])
    assert sa["clientSecret"] not in stored and stored.startswith("$argon2")
    r = await admin.post("/api/v1/authorization/access-rules", json={
        "subjectType": "service-account", "subjectId": sa["clientId"],
        "roleName": "L1 researcher", "scopeType": "project", "scopeId": org["team-a"]["project"]})
    assert r.status_code == 201, r.text
    r = await harness.client().post("/api/v1/token", json={
        "grantType": "client_credentials", "clientId": sa["clientId"],
        "clientSecret": sa["clientSecret"]})
    assert r.status_code == 200
    bot = harness.client(r.json()["accessToken"])
    r = await bot.post("/api/v1/workloads/trainings", json={
        "name": "from-ci", "projectId": org["team-a"]["project"], "spec": {"image": "busybox"}})
    assert r.status_code == 202 and r.json()["createdBy"] == sa["clientId"]
    r = await harness.client().post("/api/v1/token", json={
        "grantType": "client_credentials", "clientId": sa["clientId"], "clientSecret": "wrong"})
    assert r.status_code == 401
    assert (await admin.delete(f"/api/v1/service-accounts/{sa['id']}")).status_code == 204
    assert (await bot.get("/api/v1/workloads")).status_code == 401


async def test_failed_logins_are_rate_limited(harness):
    await harness.user("victim")
    anon = harness.client()
    for _ in range(harness.service.settings.login_max_failures):
        r = await anon.post("/api/v1/token", json={"grantType": "password",
                                                   "username": "victim", "password": "nope"})
        assert r.status_code == 401
    r = await anon.post("/api/v1/token", json={"grantType": "password", "username": "victim",
                                               "password": "s3cret-pass"})
    assert r.status_code == 429 and "Retry-After" in r.headers
    # another name from the same address still may try
    r = await anon.post("/api/v1/token", json={"grantType": "password", "username": "admin",
                                               "password": "nope"})
    assert r.status_code == 401
    async with harness.service.pool.acquire() as conn:
        await conn.execute("DELETE FROM login_failures")


async def test_access_rule_validation_and_delete(harness, org):
    admin = harness.admin
    r = await admin.post("/api/v1/authorization/access-rules", json={
        "subjectType": "user", "subjectId": "admin", "roleName": "Wizard",
        "scopeType": "project"})
    assert r.status_code == 422
    assert {d["field"] for d in r.json()["details"]} == {"roleName", "scopeId"}
    r = await admin.post("/api/v1/authorization/access-rules", json={
        "subjectType": "user", "subjectId": "nobody", "roleName": "Viewer",
        "scopeType": "cluster"})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "subjectId"
    rules = (await admin.get("/api/v1/authorization/access-rules")).json()["accessRules"]
    viewer = next(x for x in rules if x["roleName"] == "Viewer")
    r = await admin.delete(f"/api/v1/authorization/access-rules/{viewer['id']}")
    assert r.status_code == 204


async def test_nothing_secret_is_logged(harness, caplog):
    caplog.set_level("DEBUG")
    await harness.client().post("/api/v1/token", json={
        "grantType": "password", "username": "admin", "password": "hunter2-wrong"})
    r = await harness.admin.post("/api/v1/service-accounts", json={"name": "quiet"})
    secret = r.json()["clientSecret"]
    text = caplog.text
    assert "hunter2-wrong" not in text and secret not in text
    assert harness.admin_token not in text


async def test_create_the_first_real_administrator(harness, database_url):
    from fairway_submission.create_admin import create_admin

    assert await create_admin(database_url, "alice", "alice-password") is True
    assert await create_admin(database_url, "alice", "alice-password-2") is False
    r = await harness.client().post("/api/v1/token", json={
        "grantType": "password", "username": "alice", "password": "alice-password-2"})
    assert r.status_code == 200
    me = (await harness.client(r.json()["accessToken"]).get("/api/v1/me")).json()
    assert me["accessRules"] == [{"roleName": "System administrator", "scopeType": "cluster",
                                  "scopeId": None}]


async def test_group_rules_cover_their_members(harness, org):
    r = await harness.admin.post("/api/v1/users", json={
        "username": "grouped", "password": "grouped-pw", "groups": ["ml-team"]})
    assert r.status_code == 201 and r.json()["groups"] == ["ml-team"]
    r = await harness.admin.post("/api/v1/authorization/access-rules", json={
        "subjectType": "group", "subjectId": "ml-team", "roleName": "Viewer",
        "scopeType": "project", "scopeId": org["team-a"]["project"]})
    assert r.status_code == 201
    r = await harness.client().post("/api/v1/token", json={
        "grantType": "password", "username": "grouped", "password": "grouped-pw"})
    member = harness.client(r.json()["accessToken"])
    assert (await member.get(f"/api/v1/workloads/{org['team-a']['trainings']}")).status_code \
        == 200
    assert (await member.get(f"/api/v1/workloads/{org['team-b']['trainings']}")).status_code \
        == 404
