"""What the API remembers between requests (a caller's access, the project a submission reads,
policy's answers): a change through the API counts from the next request, one made elsewhere
within `remember_seconds`; a read that raced a change is not kept."""

import asyncio
import itertools

import pytest

from fairway_contracts import subjects
from fairway_submission.cache import MISSING, Remembered
from tests.submission.conftest import start_harness

_n = itertools.count()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_is_kept_for_its_time_only():
    clock = Clock()
    kept: Remembered[str, int] = Remembered(ttl=2.0, size=10, clock=clock)
    kept.keep("a", 1, kept.generation)
    clock.now = 1.9
    assert kept.get("a") == 1
    clock.now = 2.0
    assert kept.get("a") is MISSING


def test_at_most_size_answers_the_oldest_going_first():
    kept: Remembered[int, int] = Remembered(ttl=60.0, size=3, clock=Clock())
    for i in range(4):
        kept.keep(i, i, kept.generation)
    assert kept.get(0) is MISSING
    assert [kept.get(i) for i in (1, 2, 3)] == [1, 2, 3]


def test_an_answer_read_before_a_change_is_not_kept_after_it():
    kept: Remembered[str, int] = Remembered(ttl=60.0, size=10, clock=Clock())
    kept.keep("a", 1, kept.generation)
    before = kept.generation  # a read starts
    kept.forget()  # a change commits meanwhile
    assert kept.get("a") is MISSING
    kept.keep("a", 1, before)  # the read ends: what it saw may predate the change
    assert kept.get("a") is MISSING
    kept.keep("a", 2, kept.generation)
    assert kept.get("a") == 2


async def test_requests_that_miss_together_share_one_read():
    kept: Remembered[str, int] = Remembered(ttl=60.0, size=10)
    reads: list[asyncio.Event] = []

    async def read() -> int:
        reads.append(done := asyncio.Event())
        which = len(reads)
        await done.wait()
        return which

    waiting = [asyncio.create_task(kept.read("a", read)) for _ in range(5)]
    await _settle()
    assert len(reads) == 1
    # A change meanwhile: a request after it reads again rather than wait on the old read.
    kept.forget()
    after = asyncio.create_task(kept.read("a", read))
    await _settle()
    assert len(reads) == 2
    for done in reads:
        done.set()
    assert await asyncio.gather(*waiting) == [1] * 5
    assert await after == 2
    assert kept.get("a") == 2  # the first read predates the change: not kept


async def test_a_failed_read_reaches_every_waiter_and_keeps_nothing():
    kept: Remembered[str, int] = Remembered(ttl=60.0, size=10)
    release = asyncio.Event()

    async def read() -> int:
        await release.wait()
        raise LookupError("gone")

    waiting = [asyncio.create_task(kept.read("a", read)) for _ in range(3)]
    await _settle()
    release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)
    assert kept.get("a") is MISSING
    assert await kept.read("a", _one) == 1


async def _one() -> int:
    return 1


async def _settle() -> None:
    """Let every task started so far run up to where it waits."""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture(scope="module")
async def quick(database_url, tmp_path_factory):
    """An API that remembers for half a second, its policy requests counted."""
    h = await start_harness(database_url, tmp_path_factory.mktemp("state"),
                            FAIRWAY_SUBMISSION_REMEMBER_SECONDS=0.5)
    asked: list[str] = []
    answer = h.service.peers.policy

    async def counted(subject: str, data: bytes) -> bytes:
        if subject == subjects.POLICY_EVALUATE:
            asked.append(subject)
        return await answer(subject, data)

    h.service.peers.policy = counted
    h.asked = asked
    yield h
    for c in h.clients:
        await c.aclose()
    await h.service.pool.close()


async def _default_project(h) -> str:
    r = await h.admin.get("/api/v1/org-unit/projects")
    return next(p["id"] for p in r.json()["projects"] if p["name"] == "default")


async def test_a_change_made_elsewhere_counts_within_remember_seconds(quick):
    name = f"u{next(_n)}"
    c = await quick.user(name, "Viewer")
    assert (await c.get("/api/v1/me")).status_code == 200
    async with quick.service.pool.acquire() as conn:  # not through the API
        await conn.execute("DELETE FROM access_rules WHERE subject_id = $1", name)
        await conn.execute("DELETE FROM users WHERE username = $1", name)
    await asyncio.sleep(0.6)
    r = await c.get("/api/v1/me")
    assert r.status_code == 401 and "no longer exists" in r.json()["message"]


async def test_a_rule_removed_through_the_api_counts_at_once(quick):
    pid = await _default_project(quick)
    name = f"u{next(_n)}"
    c = await quick.user(name, "L1 researcher")
    body = {"name": f"w{next(_n)}", "projectId": pid, "spec": {"image": "busybox"}}
    assert (await c.post("/api/v1/workloads/trainings", json=body)).status_code == 202
    rules = (await quick.admin.get("/api/v1/authorization/access-rules")).json()["accessRules"]
    rule = next(r["id"] for r in rules if r["subjectId"] == name)
    r = await quick.admin.delete(f"/api/v1/authorization/access-rules/{rule}")
    assert r.status_code == 204
    body["name"] = f"w{next(_n)}"
    assert (await c.post("/api/v1/workloads/trainings", json=body)).status_code == 404


async def test_policy_is_asked_once_per_spec_until_a_policy_changes(quick):
    pid = await _default_project(quick)
    spec = {"image": "busybox", "annotations": [{"name": "remembered", "value": "yes"}]}

    async def submit() -> None:
        r = await quick.admin.post("/api/v1/workloads/trainings", json={
            "name": f"w{next(_n)}", "projectId": pid, "spec": spec})
        assert r.status_code == 202, r.text

    quick.asked.clear()
    await submit()
    await submit()
    assert quick.asked == [subjects.POLICY_EVALUATE]
    # A policy write (here unanswered: the stand-in serves evaluations only) forgets policy's
    # answers, whatever its outcome.
    r = await quick.admin.put("/api/v2/policy/trainings", json={
        "meta": {"scope": "cluster"}, "policy": {"defaults": {"image": "busybox"}}})
    assert r.status_code == 503
    await submit()
    assert quick.asked == [subjects.POLICY_EVALUATE] * 2


async def test_a_refused_spec_is_asked_about_every_time(quick):
    pid = await _default_project(quick)
    quick.asked.clear()
    for _ in range(2):
        r = await quick.admin.post("/api/v1/workloads/trainings", json={
            "name": f"w{next(_n)}", "projectId": pid,
            "spec": {"image": "busybox", "priorityClass": "no-such-class"}})
        assert r.status_code == 422, r.text
    assert quick.asked == [subjects.POLICY_EVALUATE] * 2


async def test_a_project_deleted_elsewhere_meanwhile_is_not_found(quick):
    r = await quick.admin.post("/api/v1/org-unit/projects", json={"name": f"gone{next(_n)}"})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    # Refused by policy, but the project has been read (and is remembered).
    r = await quick.admin.post("/api/v1/workloads/trainings", json={
        "name": "w", "projectId": pid, "spec": {"image": "busybox", "priorityClass": "nope"}})
    assert r.status_code == 422
    async with quick.service.pool.acquire() as conn:  # not through the API
        await conn.execute("DELETE FROM projects WHERE id = $1", int(pid))
    r = await quick.admin.post("/api/v1/workloads/trainings", json={
        "name": "w", "projectId": pid, "spec": {"image": "busybox"}})
    assert r.status_code == 404 and r.json()["details"][0]["field"] == "projectId"
