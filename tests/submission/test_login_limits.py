"""Login limits that cannot be bypassed and lock nobody else out, and an administrator who
cannot remove the last administrator. Before: a different X-Forwarded-For per attempt escaped
the limit (uvicorn believed the header from any local peer), a tripped address locked out every
user behind it, a stranger's failures locked a user out everywhere, and an unknown username
answered ~4x faster than a known one."""

import statistics
import time

import httpx
import pytest

from fairway_submission.identity.auth import client_address
from fairway_submission.settings import SubmissionSettings
from tests.submission.conftest import start_harness

pytestmark = pytest.mark.infra



def login(username: str, password: str = "nope") -> dict:
    return {"grantType": "password", "username": username, "password": password}


async def served(database_url, state_dir, **settings):
    """The API over real HTTP (uvicorn, as it runs), on a free port."""
    h = await start_harness(database_url, state_dir, FAIRWAY_API_PORT=0, **settings)
    await h.service.runtime._serve_http()
    return h


@pytest.fixture(scope="module")
async def direct(database_url, tmp_path_factory):
    """Reached directly: no trusted proxy."""
    h = await served(database_url, tmp_path_factory.mktemp("direct"))
    yield h
    await h.service.runtime.stop()


@pytest.fixture(scope="module")
async def proxied(database_url, tmp_path_factory):
    """Behind a trusted proxy at 127.0.0.1."""
    h = await served(database_url, tmp_path_factory.mktemp("proxied"),
                     FAIRWAY_SUBMISSION_TRUSTED_PROXIES="127.0.0.1/32")
    yield h
    await h.service.runtime.stop()


def test_the_client_address_is_believed_only_through_trusted_proxies():
    trusted = SubmissionSettings(
        FAIRWAY_SUBMISSION_TRUSTED_PROXIES="10.0.0.0/8, 192.168.1.1").trusted_proxy_networks()
    assert client_address("203.0.113.9", "1.2.3.4", trusted) == "203.0.113.9"
    assert client_address("10.1.2.3", "1.2.3.4", trusted) == "1.2.3.4"
    assert client_address("10.1.2.3", "6.6.6.6, 1.2.3.4, 10.9.9.9", trusted) == "1.2.3.4"
    assert client_address("10.1.2.3", "10.2.2.2", trusted) == "10.1.2.3"
    assert client_address("10.1.2.3", None, trusted) == "10.1.2.3"
    assert client_address("127.0.0.1", "1.2.3.4", ()) == "127.0.0.1"
    with pytest.raises(ValueError, match="not an address or CIDR"):
        SubmissionSettings(FAIRWAY_SUBMISSION_TRUSTED_PROXIES="10.0.0.0/8,nonsense")


async def test_a_forged_forwarded_for_does_not_escape_the_limit(direct):
    """With no trusted proxy, X-Forwarded-For is the caller's own words."""
    harness = direct
    await harness.user("forger")
    url = f"http://127.0.0.1:{harness.service.runtime.http_port}/api/v1/token"
    async with httpx.AsyncClient() as http:
        for i in range(harness.service.limiter.max_failures):
            r = await http.post(url, json=login("forger"),
                                headers={"X-Forwarded-For": f"198.51.100.{i}"})
            assert r.status_code == 401
        r = await http.post(url, json=login("forger", "s3cret-pass"),
                            headers={"X-Forwarded-For": "198.51.100.200"})
        assert r.status_code == 429 and "Retry-After" in r.headers
    harness.service.limiter.failures.clear()


async def test_a_tripped_pair_locks_out_neither_the_user_elsewhere_nor_others_here(proxied):
    await proxied.user("victim")
    await proxied.user("neighbour")
    url = f"http://127.0.0.1:{proxied.service.runtime.http_port}/api/v1/token"
    attacker, elsewhere = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
    async with httpx.AsyncClient() as http:
        for _ in range(proxied.service.limiter.max_failures):
            assert (await http.post(url, json=login("victim"), headers=attacker)
                    ).status_code == 401
        assert (await http.post(url, json=login("victim", "s3cret-pass"), headers=attacker)
                ).status_code == 429
        # the victim from another address, and another user from the attacker's, get in
        assert (await http.post(url, json=login("victim", "s3cret-pass"), headers=elsewhere)
                ).status_code == 200
        assert (await http.post(url, json=login("neighbour", "s3cret-pass"), headers=attacker)
                ).status_code == 200


async def test_an_unknown_username_costs_what_a_known_one_does(harness):
    await harness.user("known-user")
    anon = harness.client()

    async def median_seconds(username: str) -> float:
        seen = []
        for _ in range(7):
            harness.service.limiter.failures.clear()
            started = time.perf_counter()
            r = await anon.post("/api/v1/token", json=login(username))
            seen.append(time.perf_counter() - started)
            assert r.status_code == 401
        return statistics.median(seen)

    known, unknown = await median_seconds("known-user"), await median_seconds("nobody-here")
    assert 0.5 < unknown / known < 2.0, (known, unknown)
    harness.service.limiter.failures.clear()


async def test_the_last_system_administrator_cannot_be_removed(harness):
    admin = harness.admin
    rules = (await admin.get("/api/v1/authorization/access-rules")).json()["accessRules"]
    [only] = [r for r in rules if r["roleName"] == "System administrator"
              and r["scopeType"] == "cluster"]
    r = await admin.delete(f"/api/v1/authorization/access-rules/{only['id']}")
    assert r.status_code == 409 and r.json()["details"][0]["field"] == "ruleId", r.text
    await harness.user("second-admin", "System administrator")
    second = next(u for u in (await admin.get("/api/v1/users")).json()["users"]
                  if u["username"] == "second-admin")
    admin_user = next(u for u in (await admin.get("/api/v1/users")).json()["users"]
                      if u["username"] == "admin")
    r = await harness.client(await token_of(harness, "second-admin")).delete(
        f"/api/v1/users/{admin_user['id']}")
    assert r.status_code == 204, r.text  # another administrator remains
    r = await admin.delete(f"/api/v1/users/{second['id']}")
    assert r.status_code in (401, 409), r.text  # admin is gone; second-admin is the last
    rules = (await harness.client(await token_of(harness, "second-admin")).get(
        "/api/v1/authorization/access-rules")).json()["accessRules"]
    [last] = [r for r in rules if r["roleName"] == "System administrator"]
    r = await harness.client(await token_of(harness, "second-admin")).delete(
        f"/api/v1/authorization/access-rules/{last['id']}")
    assert r.status_code == 409 and "last" in r.json()["message"]


async def token_of(harness, username: str) -> str:
    r = await harness.client().post("/api/v1/token", json=login(username, "s3cret-pass"))
    assert r.status_code == 200, r.text
    return r.json()["accessToken"]
