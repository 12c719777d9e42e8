"""Someone always remains System administrator: the last cluster-wide rule granting the role
cannot go, whichever way it would (deleting the rule, the user or the service account holding
it), and a rule only counts while someone holds it (its user or service account exists, its
group has a member). Before: deleting the service account that held the last rule removed it,
and a rule for a group nobody is in passed for an administrator; either way nobody was left to
administer the cluster."""

import pytest

pytestmark = pytest.mark.infra

ADMIN_ROLE = "System administrator"


ROBOT: dict = {}


async def test_the_service_account_holding_the_last_administrator_rule_stays(harness):
    admin = harness.admin
    r = await admin.post("/api/v1/service-accounts", json={"name": "robot-admin"})
    assert r.status_code == 201, r.text
    robot = r.json()
    r = await admin.post("/api/v1/authorization/access-rules", json={
        "subjectType": "service-account", "subjectId": robot["clientId"],
        "roleName": ADMIN_ROLE, "scopeType": "cluster"})
    assert r.status_code == 201, r.text
    r = await harness.client().post("/api/v1/token", json={
        "grantType": "client_credentials", "clientId": robot["clientId"],
        "clientSecret": robot["clientSecret"]})
    assert r.status_code == 200, r.text
    as_robot = harness.client(r.json()["accessToken"])
    ROBOT.update(robot, client=as_robot)

    rules = (await admin.get("/api/v1/authorization/access-rules")).json()["accessRules"]
    [of_admin] = [r for r in rules if r["roleName"] == ADMIN_ROLE and r["subjectId"] == "admin"]
    r = await as_robot.delete(f"/api/v1/authorization/access-rules/{of_admin['id']}")
    assert r.status_code == 204, r.text  # the robot's own rule remains

    r = await as_robot.delete(f"/api/v1/service-accounts/{robot['id']}")
    assert r.status_code == 409, r.text
    assert r.json()["details"][0]["field"] == "serviceAccountId"
    assert "robot-admin" in r.json()["message"] and ADMIN_ROLE in r.json()["message"]
    assert (await as_robot.get("/api/v1/authorization/access-rules")).status_code == 200


async def test_a_rule_for_a_group_nobody_is_in_administers_nobody(harness):
    as_robot = ROBOT["client"]
    r = await as_robot.post("/api/v1/authorization/access-rules", json={
        "subjectType": "group", "subjectId": "ghosts", "roleName": ADMIN_ROLE,
        "scopeType": "cluster"})
    assert r.status_code == 201, r.text
    r = await as_robot.delete(f"/api/v1/service-accounts/{ROBOT['id']}")
    assert r.status_code == 409, r.text


async def test_a_group_with_a_member_does_administer_and_its_rule_is_then_the_last(harness):
    as_robot = ROBOT["client"]
    r = await as_robot.post("/api/v1/users", json={"username": "operator", "password":
                                                   "s3cret-pass", "groups": ["operators"]})
    assert r.status_code == 201, r.text
    r = await as_robot.post("/api/v1/authorization/access-rules", json={
        "subjectType": "group", "subjectId": "operators", "roleName": ADMIN_ROLE,
        "scopeType": "cluster"})
    assert r.status_code == 201, r.text
    of_operators = r.json()
    r = await harness.client().post("/api/v1/token", json={
        "grantType": "password", "username": "operator", "password": "s3cret-pass"})
    as_operator = harness.client(r.json()["accessToken"])
    r = await as_operator.delete(f"/api/v1/service-accounts/{ROBOT['id']}")
    assert r.status_code == 204, r.text  # the operators' rule remains, and has a member
    r = await as_operator.delete(f"/api/v1/authorization/access-rules/{of_operators['id']}")
    assert r.status_code == 409 and f"rule {of_operators['id']} " in r.json()["message"], r.text
