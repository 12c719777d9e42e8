"""policy.evaluate over a real NATS server: the service started as it runs in production."""

import uuid

import nats
import pytest

from fairway_contracts import subjects
from fairway_contracts.events import PolicyEvaluateReply, PolicyEvaluateRequest
from fairway_contracts.workloads import WorkloadType
from fairway_policy.app import build
from fairway_policy.settings import PolicySettings

pytestmark = pytest.mark.infra


@pytest.fixture
async def policy(nats_url: str, database_url: str):
    # A subject of its own, so another policy instance on a shared server never answers.
    subject = f"{subjects.POLICY_EVALUATE}.test-{uuid.uuid4().hex[:8]}"
    service = build(PolicySettings(NATS_URL=nats_url, DATABASE_URL=database_url),
                    evaluate_subject=subject)
    await service.start(serve_http=False)
    try:
        yield subject
    finally:
        await service.stop()


@pytest.fixture
async def client(nats_url: str):
    nc = await nats.connect(nats_url)
    yield nc
    await nc.close()


async def ask(client, subject: str, payload: bytes) -> PolicyEvaluateReply:
    reply = await client.request(subject, payload, timeout=5)
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


def test_build_answers_on_the_contract_subject():
    service = build(PolicySettings())
    [subscriber] = service.broker.subscribers
    assert (subscriber.subject.template, subscriber.queue) == (subjects.POLICY_EVALUATE, "policy")
