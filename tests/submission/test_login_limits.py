"""Login limits that cannot be bypassed and lock nobody else out, and an administrator who
cannot remove the last administrator. Before: a different X-Forwarded-For per attempt escaped
the limit (uvicorn believed the header from any local peer), a tripped address locked out every
user behind it, a stranger's failures locked a user out everywhere, and an unknown username
answered ~4x faster than a known one."""

import asyncio
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


def test_a_client_is_one_address_whatever_its_spelling_or_port_and_one_ipv6_network():
    """Each spelling of an address, each source port a proxy may append, each address of an
    IPv6 /64 (one host commonly holds the whole block) would otherwise be a fresh client with
    a fresh allowance."""
    trusted = SubmissionSettings(
        FAIRWAY_SUBMISSION_TRUSTED_PROXIES="10.0.0.0/8").trusted_proxy_networks()
    assert client_address("10.1.2.3", "1.2.3.4:5678", trusted) == "1.2.3.4"
    assert client_address("10.1.2.3", "[2001:db8::1]:443", trusted) == "2001:db8::/64"
    assert client_address("2001:db8::1", None, ()) == client_address(
        "2001:0db8:0000:0000:ffff:0000:0000:0042", None, ()) == "2001:db8::/64"
    assert client_address("::ffff:198.51.100.7", None, ()) == "198.51.100.7"
    assert client_address("10.1.2.3", "not an address", trusted) == "not an address"


async def test_a_forged_forwarded_for_does_not_escape_the_limit(direct):
    """With no trusted proxy, X-Forwarded-For is the caller's own words."""
    harness = direct
    await harness.user("forger")
    url = f"http://127.0.0.1:{harness.service.runtime.http_port}/api/v1/token"
    async with httpx.AsyncClient() as http:
        for i in range(harness.service.settings.login_max_failures):
            r = await http.post(url, json=login("forger"),
                                headers={"X-Forwarded-For": f"198.51.100.{i}"})
            assert r.status_code == 401
        r = await http.post(url, json=login("forger", "s3cret-pass"),
                            headers={"X-Forwarded-For": "198.51.100.200"})
        assert r.status_code == 429 and "Retry-After" in r.headers
    await forget_failures(harness)


async def test_a_tripped_pair_locks_out_neither_the_user_elsewhere_nor_others_here(proxied):
    await proxied.user("victim")
    await proxied.user("neighbour")
    url = f"http://127.0.0.1:{proxied.service.runtime.http_port}/api/v1/token"
    attacker, elsewhere = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
    async with httpx.AsyncClient() as http:
        for _ in range(proxied.service.settings.login_max_failures):
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
    """Medians of wrong-password logins, known and unknown names taken in turn (so a busy
    machine slows both alike): within a factor of two of each other, where an unknown name
    used to answer about four times faster."""
    await harness.user("known-user")
    anon = harness.client()
    seen: dict[str, list[float]] = {"known-user": [], "nobody-here": []}
    for _ in range(9):
        for username, times in seen.items():
            await forget_failures(harness)
            started = time.perf_counter()
            r = await anon.post("/api/v1/token", json=login(username))
            times.append(time.perf_counter() - started)
            assert r.status_code == 401
    known, unknown = (statistics.median(times) for times in seen.values())
    assert 0.5 < unknown / known < 2.0, (known, unknown)
    await forget_failures(harness)


async def test_the_last_system_administrator_cannot_be_removed(harness):
    admin = harness.admin
    rules = (await admin.get("/api/v1/authorization/access-rules")).json()["accessRules"]
    [only] = [r for r in rules if r["roleName"] == "System administrator"
              and r["scopeType"] == "cluster"]
    r = await admin.delete(f"/api/v1/authorization/access-rules/{only['id']}")
    assert r.status_code == 409 and r.json()["details"][0]["field"] == "ruleId", r.text
    assert f"rule {only['id']} " in r.json()["message"]  # names the rule it keeps
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


async def test_two_replicas_count_the_same_failures(database_url, tmp_path):
    """Several API processes behind one address share the limit (it lives in PostgreSQL), so
    running more replicas does not multiply an attacker's attempts."""
    one = await start_harness(database_url, tmp_path / "one")
    other = await start_harness(database_url, tmp_path / "other")
    try:
        await one.user("replicated")
        first, second = one.client(), other.client()
        for i in range(one.service.settings.login_max_failures):
            r = await (first if i % 2 else second).post("/api/v1/token",
                                                         json=login("replicated"))
            assert r.status_code == 401
        for api in (first, second):
            r = await api.post("/api/v1/token", json=login("replicated", "s3cret-pass"))
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text
    finally:
        await forget_failures(one)
        for h in (one, other):
            await h.service.runtime.stop()


async def test_spraying_many_names_from_one_client_is_slowed_yet_never_refuses_a_user(
        database_url, tmp_path):
    """Past a looser cap of failures across names, one client's attempts are taken one at a
    time, `pace` apart: spraying a password over many names crawls, while a correct password
    of someone behind the same address still gets in (after its turn)."""
    pace = 0.4
    h = await start_harness(database_url, tmp_path, FAIRWAY_SUBMISSION_LOGIN_CLIENT_MAX_FAILURES=3,
                            FAIRWAY_SUBMISSION_LOGIN_CLIENT_PACE_SECONDS=pace)
    try:
        await h.user("sprayed-upon")
        anon = h.client()
        for i in range(3):  # three names, one failure each: no pair limit is reached
            assert (await anon.post("/api/v1/token", json=login(f"name-{i}"))).status_code == 401
        started = time.perf_counter()
        for i in range(3, 6):
            assert (await anon.post("/api/v1/token", json=login(f"name-{i}"))).status_code == 401
        assert time.perf_counter() - started >= 2 * pace  # paced: one turn per `pace`
        r = await anon.post("/api/v1/token", json=login("sprayed-upon", "s3cret-pass"))
        assert r.status_code == 200, r.text
    finally:
        await forget_failures(h)
        await h.service.runtime.stop()


async def forget_failures(harness) -> None:
    async with harness.service.pool.acquire() as conn:
        await conn.execute("DELETE FROM login_failures")
        await conn.execute("DELETE FROM login_turns")


async def test_a_burst_of_attempts_at_once_gets_no_more_tries_than_one_at_a_time(harness):
    """Attempts sent together, each checked before any had failed, all used to be tried: a
    burst of twenty bought twenty guesses where the limit allows five."""
    await harness.user("burst-target")
    anon = harness.client()
    answers = await asyncio.gather(*(anon.post("/api/v1/token", json=login("burst-target"))
                                     for _ in range(20)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(401) <= harness.service.settings.login_max_failures, statuses
    assert set(statuses) <= {401, 429}, statuses
    await forget_failures(harness)
