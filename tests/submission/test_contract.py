"""The OpenAPI document is the API's contract: Schemathesis generates requests for every
operation from the document, valid ones and ones that break it, sends them to the real app
(served over HTTP, real PostgreSQL, the real policy service over NATS) as the bootstrap
administrator, and holds each answer to the document: no server error, only documented
statuses and content types, bodies that match the documented schemas, and data outside the
schema refused.

`FAIRWAY_CONTRACT_EXAMPLES` sets the examples per operation and generation mode (`make fuzz`
runs many more than the suite's default)."""

import asyncio
import itertools
import os

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from fairway_submission.openapi import document
from tests.submission.conftest import real_policy, served

pytestmark = pytest.mark.infra

EXAMPLES = int(os.environ.get("FAIRWAY_CONTRACT_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]
# A body over the size limit is refused with 413, which Schemathesis does not count as a
# rejection by default.
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]


Known = dict[str, str]  # path parameter or body field -> the id of a thing that exists


FRESH_NAMES = itertools.count()


def on_known(case: schemathesis.Case, known: Known) -> schemathesis.Case:
    """The case aimed at things that exist: their ids in the path and in the body's
    `projectId` / `parentId`, and a fresh valid `name`, so that requests get past "not found"
    and the name rules to the real work."""
    for name in case.path_parameters or {}:
        if name in known:
            case.path_parameters[name] = known[name]
    if isinstance(case.body, dict):
        for field in ("projectId", "parentId"):
            if field in case.body:
                case.body[field] = known[field]
        if isinstance(case.body.get("name"), str):
            case.body["name"] = f"contract-{next(FRESH_NAMES)}"
    return case


ROUNDS = {  # round -> how its cases are drawn
    "positive": (GenerationMode.POSITIVE, False),
    "negative": (GenerationMode.NEGATIVE, False),
    "positive, on existing things": (GenerationMode.POSITIVE, True),
}


def run_round(operation: schemathesis.APIOperation, cases, base_url: str, examples: int,
              answered: dict[str, set[int]]) -> None:
    @hypothesis.given(case=cases)
    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(HealthCheck),
                         phases=[hypothesis.Phase.generate, hypothesis.Phase.shrink])
    def conforms(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)
        answered.setdefault(operation.label, set()).add(response.status_code)

    conforms()


def reported(exc: BaseException) -> str:
    """A failure in words, with what it holds: a group's message alone (Hypothesis's
    "produces unreliable results", for one) would hide which check failed on which answer."""
    if not isinstance(exc, BaseExceptionGroup):
        return str(exc) or repr(exc)
    inner = "\n".join(f"  - {reported(one)}" for one in exc.exceptions)
    return f"{exc.message}\n{inner}"


def contract_failures(base_url: str, token: str, known: Known, examples: int,
                      answered: dict[str, set[int]]) -> list[str]:
    """Every operation in every round; each operation's failures, all of them. `answered`
    collects the statuses each operation answered."""
    config = schemathesis.Config.from_dict({
        "auth": {"openapi": {"bearer": {"bearer": token}}},
        "checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}})
    schema = schemathesis.openapi.from_dict(document(), config=config)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for round_name, (mode, aimed) in ROUNDS.items():
            cases = operation.as_strategy(generation_mode=mode)
            if aimed:
                cases = cases.map(lambda case: on_known(case, known))
            try:
                run_round(operation, cases, base_url, examples, answered)
            except hypothesis.errors.Unsatisfiable:
                # Nothing in the request can break the schema (no body, no query, path
                # parameters any string fits): no negative case exists.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # every operation runs
                failures.append(f"{operation.label} ({round_name}): {reported(exc)}")
    return failures


async def existing_things(harness) -> Known:
    """Ids of things that exist, for the aimed round: the default project, department and
    node pool, a service account and a user made for the run, a submitted training. Never
    an access rule: the run must not take away its own administrator's."""
    admin = harness.admin
    project = next(p for p in (await admin.get("/api/v1/org-unit/projects")).json()["projects"]
                   if p["name"] == "default")
    pool = next(p for p in (await admin.get("/api/v1/node-pools")).json()["nodePools"]
                if p["name"] == "default")
    user = await admin.post("/api/v1/users", json={"username": "contract-user",
                                                   "password": "s3cret-pass"})
    account = await admin.post("/api/v1/service-accounts", json={"name": "contract-sa"})
    training = await admin.post("/api/v1/workloads/trainings", json={
        "name": "contract-training", "projectId": project["id"],
        "spec": {"image": "busybox", "compute": {"gpuDevicesRequest": 1}}})
    for answer in (user, account, training):
        assert answer.status_code in (201, 202), answer.text
    return {"projectId": project["id"], "parentId": project["parentId"],
            "project_id": project["id"], "department_id": project["parentId"],
            "pool_id": pool["id"], "pool": pool["name"], "user_id": user.json()["id"],
            "sa_id": account.json()["id"], "workload_id": training.json()["workloadId"],
            "workload_type": "trainings", "policy_type": "trainings"}


async def test_every_operation_keeps_to_the_openapi_document(harness, nats_url, database_url):
    async with real_policy(harness, nats_url, database_url), served(harness.app) as url:
        known = await existing_things(harness)
        answered: dict[str, set[int]] = {}
        failures = await asyncio.to_thread(contract_failures, url, harness.admin_token, known,
                                           EXAMPLES, answered)
    assert not failures, f"{len(failures)} operations break the contract:\n\n" + "\n\n".join(
        failures)
    # The run got past the door: every operation answered something other than 401, and
    # every read (but the metrics series, whose windows are rarely drawn valid, and pod logs,
    # which need a pod running in a cluster: tests/e2e/test_logs.py) a 200.
    assert all(statuses - {401} for statuses in answered.values()), answered
    unread = sorted(label for label, statuses in answered.items()
                    if label.startswith("GET ") and not label.endswith(("/metrics", "/logs"))
                    and 200 not in statuses)
    assert not unread, f"never answered 200: {unread}\n{answered}"


async def test_a_query_parameter_that_takes_one_value_is_refused_when_sent_twice(harness):
    # Found by the contract run: `nodepoolName=a&nodepoolName=b` was read as "b".
    admin = harness.admin
    r = await admin.get("/api/v1/workloads?limit=5&limit=7")
    assert r.status_code == 422, r.text
    assert r.json()["details"] == [{"field": "limit", "reason": "is given more than once"}]
    r = await admin.get("/api/v1/workloads/telemetry?telemetryType=GPU_ALLOCATION"
                        "&nodepoolName=a&nodepoolName=b")
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "nodepoolName", r.text
    # A parameter that takes a list may repeat.
    r = await admin.get("/api/v1/workloads/telemetry?telemetryType=GPU_ALLOCATION"
                        "&groupBy=project&groupBy=type")
    assert r.status_code == 200, r.text


async def test_an_empty_name_or_id_in_the_telemetry_query_is_refused(harness):
    # Found by the contract run: `nodepoolName=&groupBy=` answered 200, as if not given.
    admin = harness.admin
    for empty in ("nodepoolName", "projectId", "departmentId", "groupBy"):
        r = await admin.get(f"/api/v1/workloads/telemetry?telemetryType=GPU_ALLOCATION&{empty}=")
        assert r.status_code == 422, (empty, r.text)
        assert r.json()["details"][0]["field"].startswith(empty), r.text


async def test_a_true_or_false_field_takes_only_true_or_false(harness, default_project):
    # Found by the contract run: `"nodeLevelSchedulerEnabled": 0` was read as false.
    admin = harness.admin
    r = await admin.post("/api/v1/node-pools", json={
        "name": "strict-bools", "gpuResourceOptimization": {"nodeLevelSchedulerEnabled": 0}})
    assert r.status_code == 422, r.text
    assert r.json()["details"][0]["field"] == (
        "gpuResourceOptimization.nodeLevelSchedulerEnabled"), r.text
    r = await admin.post("/api/v1/workloads/trainings", json={
        "name": "strict-bools", "projectId": default_project["id"],
        "useGivenNameAsPrefix": "true", "spec": {"image": "busybox"}})
    assert r.status_code == 422, r.text
    assert r.json()["details"][0]["field"] == "useGivenNameAsPrefix", r.text
