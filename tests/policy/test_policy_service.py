"""policy.evaluate over a real NATS server: the service started as it runs in production."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import nats
import pytest

from fairway_contracts import subjects
from fairway_contracts.events import PolicyEvaluateReply, PolicyEvaluateRequest
from fairway_contracts.policies import (
    PolicyDeleteRequest,
    PolicyGetRequest,
    PolicyPutRequest,
    PolicyReply,
    PolicyScope,
)
from fairway_contracts.workloads import WorkloadType
from fairway_policy.app import build
from fairway_policy.service import PolicyService
from fairway_policy.settings import PolicySettings
from fairway_policy.testing import build_for_tests

pytestmark = pytest.mark.infra


@pytest.fixture
async def policy(nats_url: str, database_url: str) -> AsyncIterator[PolicyService]:
    # Subjects of its own, so another policy instance on a shared server never answers.
    runtime, service = build_for_tests(
        PolicySettings(NATS_URL=nats_url, DATABASE_URL=database_url), tag=uuid.uuid4().hex[:8])
    await runtime.start(serve_http=False)
    try:
        yield service
    finally:
        await runtime.stop()


@pytest.fixture
async def client(nats_url: str):
    nc = await nats.connect(nats_url)
    yield nc
    await nc.close()


async def ask(client, policy: PolicyService, payload: bytes) -> PolicyEvaluateReply:
    reply = await client.request(policy.evaluate_subject, payload, timeout=5)
    return PolicyEvaluateReply.model_validate_json(reply.data)


async def test_request_reply_returns_the_effective_spec(policy, client):
    request = PolicyEvaluateRequest(workload_type=WorkloadType.TRAINING, project="team-a",
                                    name="resnet", spec={"image": "pytorch:24.05",
                                                         "compute": {"gpuDevicesRequest": 2}})

    reply = await ask(client, policy, request.to_json())

    assert reply.ok
    assert reply.effective_spec.priority_class == "train"
    assert reply.effective_spec.preemptible is True
    assert reply.effective_spec.compute.gpu_devices_request == 2


async def test_request_reply_returns_violations(policy, client):
    request = PolicyEvaluateRequest(workload_type=WorkloadType.WORKSPACE, project="team-a",
                                    name="nb", spec={"image": "jupyter", "priorityClass": "vip"})

    reply = await ask(client, policy, request.to_json())

    assert not reply.ok
    assert [v.field for v in reply.violations] == ["spec.priorityClass"]


async def test_a_malformed_request_is_answered_not_dropped(policy, client):
    reply = await ask(client, policy, b'{"workloadType": "spaceship"}')

    assert not reply.ok and reply.violations


def test_build_answers_on_the_contract_subjects():
    service = build(PolicySettings())
    answered = {(s.subject.template, s.queue) for s in service.broker.subscribers}
    assert answered == {(subject, "policy") for subject in (
        subjects.POLICY_EVALUATE, subjects.POLICY_GET, subjects.POLICY_PUT,
        subjects.POLICY_DELETE)} | {(subjects.POLICY_CHANGED, "")}


# policy CRUD over request/reply, stored in PostgreSQL -------------------------------------------

async def crud(client, policy: PolicyService, subject: str, request) -> PolicyReply:
    payload = request if isinstance(request, bytes) else request.to_json()
    reply = await client.request(policy.crud_prefix + subject, payload, timeout=5)
    return PolicyReply.model_validate_json(reply.data)


async def test_a_department_policy_shapes_evaluation_in_its_projects_only(policy, client):
    department = PolicyScope(scope="department", department_id="41", name="ml",
                             project_ids=["71"])
    put = PolicyPutRequest(workload_type=WorkloadType.TRAINING, scope=department, policy={
        "defaults": {"backoffLimit": 2},
        "rules": {"compute": {"gpuDevicesRequest": {"max": 2}}}}, updated_by="dana")

    saved = await crud(client, policy, subjects.POLICY_PUT, put)

    assert saved.ok, saved.problems
    assert saved.updated_by == "dana"
    source = saved.effective["sources"]["rules"]["compute.gpuDevicesRequest"]
    assert source == {"scope": "department", "departmentId": "41", "departmentName": "ml"}
    inside = PolicyEvaluateRequest(workload_type=WorkloadType.TRAINING, project="vision",
                                   name="r", project_id="71", department_id="41",
                                   spec={"image": "busybox", "compute": {"gpuDevicesRequest": 4}})
    reply = await ask(client, policy, inside.to_json())
    assert not reply.ok
    [violation] = reply.violations
    assert (violation.field, violation.value, violation.rule, violation.scope) == (
        "spec.compute.gpuDevicesRequest", 4, "max: 2", "department ml")
    fitting = inside.model_copy(update={"spec": {"image": "busybox"}})
    reply = await ask(client, policy, fitting.to_json())
    assert reply.ok and reply.effective_spec.backoff_limit == 2
    elsewhere = inside.model_copy(update={"department_id": "42", "project_id": "72"})
    reply = await ask(client, policy, elsewhere.to_json())
    assert reply.ok and reply.effective_spec.backoff_limit == 6

    # a project of the department cannot put its own rule on the same field
    project = PolicyScope(scope="project", project_id="71", department_id="41", name="vision")
    refused = await crud(client, policy, subjects.POLICY_PUT, PolicyPutRequest(
        workload_type=WorkloadType.TRAINING, scope=project, updated_by="pat",
        policy={"rules": {"compute": {"gpuDevicesRequest": {"max": 8}}}}))
    assert not refused.ok
    assert [(p.field, p.scope) for p in refused.problems] == [
        ("policy.rules.compute.gpuDevicesRequest", "department ml")]
    # ... but may set its own default, which wins below the department's
    got = await crud(client, policy, subjects.POLICY_PUT, PolicyPutRequest(
        workload_type=WorkloadType.TRAINING, scope=project, updated_by="pat",
        policy={"defaults": {"backoffLimit": 1}}, mode="patch"))
    assert got.ok
    assert got.effective["defaults"]["backoffLimit"] == 1
    assert got.effective["sources"]["defaults"]["backoffLimit"]["scope"] == "project"

    got = await crud(client, policy, subjects.POLICY_GET,
                     PolicyGetRequest(workload_type=WorkloadType.TRAINING, scope=project))
    assert got.policy == {"defaults": {"backoffLimit": 1}, "rules": {}, "imposed": {}}
    assert got.effective["rules"] == {"compute": {"gpuDevicesRequest": {"max": 2}}}

    gone = await crud(client, policy, subjects.POLICY_DELETE,
                      PolicyDeleteRequest(workload_type=WorkloadType.TRAINING, scope=department))
    assert gone.ok and gone.deleted
    again = await crud(client, policy, subjects.POLICY_DELETE,
                       PolicyDeleteRequest(workload_type=WorkloadType.TRAINING, scope=department))
    assert again.ok and not again.deleted
    reply = await ask(client, policy, inside.to_json())
    assert reply.ok and reply.effective_spec.backoff_limit == 1


async def test_validate_only_checks_without_saving(policy, client):
    cluster = PolicyScope(scope="cluster")
    request = PolicyPutRequest(workload_type=WorkloadType.WORKSPACE, scope=cluster,
                               policy={"defaults": {"backoffLimit": 3}}, validate_only=True,
                               updated_by="admin")

    checked = await crud(client, policy, subjects.POLICY_PUT, request)
    got = await crud(client, policy, subjects.POLICY_GET,
                     PolicyGetRequest(workload_type=WorkloadType.WORKSPACE, scope=cluster))

    assert checked.ok and checked.effective["defaults"] == {"backoffLimit": 3}
    assert got.policy is None and got.effective["defaults"] == {}


async def test_a_bad_policy_or_scope_is_refused_with_every_field_named(policy, client):
    bad = PolicyPutRequest(workload_type=WorkloadType.INFERENCE, scope=PolicyScope(
        scope="project", project_id="9"), updated_by="x", policy={"rules": {"gpus": {}}})
    reply = await crud(client, policy, subjects.POLICY_PUT, bad)
    assert not reply.ok and [p.field for p in reply.problems] == ["meta.departmentId"]

    bad = bad.model_copy(update={"scope": PolicyScope(scope="cluster")})
    reply = await crud(client, policy, subjects.POLICY_PUT, bad)
    assert [p.field for p in reply.problems] == ["policy.rules.gpus"]

    reply = await crud(client, policy, subjects.POLICY_GET, b"")
    assert not reply.ok and reply.problems


@pytest.fixture
async def remembering(nats_url: str, database_url: str) -> AsyncIterator[PolicyService]:
    """A policy instance that keeps branches for a minute (so only a notice makes it forget)."""
    runtime, service = build_for_tests(
        PolicySettings(NATS_URL=nats_url, DATABASE_URL=database_url,
                       FAIRWAY_POLICY_REMEMBER_SECONDS=60), tag=uuid.uuid4().hex[:8])
    await runtime.start(serve_http=False)
    try:
        yield service
    finally:
        await runtime.stop()


async def test_a_branch_is_remembered_until_a_change_notice(remembering, client):
    """Evaluations reuse a branch's policies; a save anywhere is announced, and every instance
    that hears the notice reads the branch again."""
    from fairway_policy import repository

    policy = remembering
    from fairway_policy.core.policies import Scope

    request = PolicyEvaluateRequest(workload_type=WorkloadType.INFERENCE, project="p",
                                    name="n", project_id="901", department_id="801",
                                    spec={"image": "busybox"})
    assert (await ask(client, policy, request.to_json())).effective_spec.backoff_limit == 6
    # Saved by another instance, straight into the database: not seen yet.
    async with policy.runtime.pool.acquire() as conn:
        await repository.save(conn, "inference", Scope("department", "801", "d"),
                              {"defaults": {"backoffLimit": 4}}, "elsewhere")
    assert (await ask(client, policy, request.to_json())).effective_spec.backoff_limit == 6
    # ... until its notice comes (handled beside the requests, so shortly after, not before
    # the very next one).
    await client.publish(policy.changed_subject, b"")
    await client.flush()
    for _ in range(50):
        limit = (await ask(client, policy, request.to_json())).effective_spec.backoff_limit
        if limit == 4:
            break
        await asyncio.sleep(0.1)
    assert limit == 4

    # A save through this instance counts at once, and is announced to the others.
    notices = await client.subscribe(policy.changed_subject)
    project = PolicyScope(scope="project", project_id="901", department_id="801", name="p")
    saved = await crud(client, policy, subjects.POLICY_PUT, PolicyPutRequest(
        workload_type=WorkloadType.INFERENCE, scope=project, updated_by="pat",
        policy={"defaults": {"backoffLimit": 2}}))
    assert saved.ok, saved.problems
    await notices.next_msg(timeout=5)
    assert (await ask(client, policy, request.to_json())).effective_spec.backoff_limit == 2
