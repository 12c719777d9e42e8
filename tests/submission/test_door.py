"""What the API accepts can run: anything Kubernetes or a later step would refuse is refused at
the door, naming the field and the reason. Before, each of these was accepted (202) and then sat
in Creating or "waiting for the scheduler" for ever, or answered 400/500 naming no field."""

import json

import httpx
import pytest

pytestmark = pytest.mark.infra


def training(project_id: str, **spec) -> dict:
    return {"name": "door", "projectId": project_id, "spec": {"image": "busybox", **spec}}


BAD_SPECS = [
    # (spec fields, the field named, words of the reason)
    ({"annotations": [{"name": "bad key", "value": "x"}]}, "spec.annotations", "bad key"),
    ({"annotations": [{"name": "a" * 64, "value": "x"}]}, "spec.annotations", "63"),
    ({"annotations": [{"name": "big", "value": "x" * 140_000},
                      {"name": "bigger", "value": "x" * 140_000}]}, "spec.annotations",
     "262,144"),
    ({"labels": [{"name": "team", "value": "a!b"}]}, "spec.labels", "a!b"),
    ({"labels": [{"name": "team", "value": "x" * 64}]}, "spec.labels", "63"),
    ({"labels": [{"name": "example.com/Bad Key", "value": "x"}]}, "spec.labels", "Bad Key"),
    ({"args": "python train.py --name 'unterminated"}, "spec.args", "cannot be split"),
    ({"command": 'sh -c "echo'}, "spec.command", "cannot be split"),
    ({"environmentVariables": [{"name": "1ABC", "value": "x"}]},
     "spec.environmentVariables[0].name", "not starting with a digit"),
    ({"environmentVariables": [{"name": "A B", "value": "x"}]},
     "spec.environmentVariables[0].name", "letters"),
    ({"image": "Not An Image"}, "spec.image", "image reference"),
    ({"image": "busybox:" + "x" * 200}, "spec.image", "image reference"),
    ({"autoDeletionTimeAfterCompletionSeconds": 10**30},
     "spec.autoDeletionTimeAfterCompletionSeconds", "less than or equal to"),
    ({"compute": {"cpuCoreRequest": 1e308}}, "spec.compute.cpuCoreRequest",
     "less than or equal to 1024"),
    ({"compute": {"cpuMemoryRequest": "99999999999999Gi"}}, "spec.compute.cpuMemoryRequest",
     "1Pi"),
    ({"parallelism": 10**9}, "spec.parallelism", "less than or equal to 1000"),
    ({"compute": {"gpuDevicesRequest": True}}, "spec.compute.gpuDevicesRequest",
     "not true or false"),
    ({"compute": {"gpuDevicesRequest": "2"}}, "spec.compute.gpuDevicesRequest", "not text"),
    ({"backoffLimit": False}, "spec.backoffLimit", "not true or false"),
    ({"nodePools": ["Not A Pool"]}, "spec.nodePools[0]", "pattern"),
    ({"priorityClass": "high priority"}, "spec.priorityClass", "pattern"),
    ({"environmentVariables": [{"name": "A", "value": "x\x00y"}]},
     "spec.environmentVariables[0].value", "NUL"),
    ({"args": "a\x00b"}, "spec.args", "NUL"),
]


@pytest.mark.parametrize(("spec", "field", "reason"), BAD_SPECS,
                         ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD_SPECS)])
async def test_a_spec_kubernetes_would_refuse_is_refused_naming_the_field(
        harness, default_project, spec, field, reason):
    r = await harness.admin.post("/api/v1/workloads/trainings",
                                 json=training(default_project["id"], **spec))
    assert r.status_code == 422, r.text
    body = r.json()
    detail = next((d for d in body["details"] if d["field"] == field), None)
    assert detail is not None, body
    assert reason in detail["reason"], detail


@pytest.mark.parametrize(("raw", "field"), [
    ('{"name": "door", "projectId": "%s", "spec": {"image": "busybox", '
     '"compute": {"cpuCoreRequest": Infinity}}}', "spec.compute.cpuCoreRequest"),
    ('{"name": "door", "projectId": "%s", "spec": {"image": "busybox", '
     '"compute": {"gpuPortionRequest": NaN}}}', "spec.compute.gpuPortionRequest"),
    ('{"name": "do\\u0000or", "projectId": "%s", "spec": {"image": "busybox"}}', "name"),
])
async def test_json_that_python_parses_but_no_workload_can_take_names_the_field(
        harness, default_project, raw, field):
    r = await harness.admin.post("/api/v1/workloads/trainings",
                                 content=raw % default_project["id"],
                                 headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["details"]], r.text


async def test_a_body_over_the_limit_is_413_declared_or_streamed(harness, default_project):
    limit = harness.service.settings.max_body_bytes
    big = json.dumps(training(default_project["id"],
                              environmentVariables=[{"name": "A", "value": "x" * limit}]))
    r = await harness.admin.post("/api/v1/workloads/trainings", content=big,
                                 headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == 413, r.text

    async def chunks():  # no Content-Length: refused while it streams
        for _ in range(40):
            yield b"x" * 512 * 1024  # 20 MiB in all

    r = await harness.admin.post("/api/v1/workloads/trainings", content=chunks(),
                                 headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than the API takes" in r.json()["message"]


async def test_what_kubernetes_accepts_is_accepted(harness, default_project):
    r = await harness.admin.post("/api/v1/workloads/trainings", json=training(
        default_project["id"],
        image="nvcr.io/nvidia/pytorch:24.01-py3",
        args="python train.py --name 'my run' --lr=3e-4",
        annotations=[{"name": "sim.fairway.io/run-seconds", "value": "5"},
                     {"name": "example.com/owner", "value": "anything goes here: !@#"}],
        labels=[{"name": "team", "value": "nlp_v2.1"}, {"name": "empty", "value": ""}],
        environmentVariables=[{"name": "my.var-1", "value": "x"}],
        compute={"cpuCoreRequest": 2, "cpuMemoryRequest": "16Gi", "gpuDevicesRequest": 1},
        parallelism=4, completions=4, autoDeletionTimeAfterCompletionSeconds=3600))
    assert r.status_code == 202, r.text


def test_every_limit_is_in_the_openapi_document():
    from fairway_submission.openapi import render
    schemas = json.loads(render())["components"]["schemas"]
    compute = schemas["Compute"]["properties"]
    assert any(o.get("maximum") == 1024 for o in compute["cpuCoreRequest"].get("anyOf", []))
    training_spec = schemas["TrainingSpec"]["properties"]
    assert any(o.get("maximum") == 1000 for o in training_spec["parallelism"]["anyOf"])
    assert training_spec["image"]["maxLength"] == 1024
    assert httpx  # the client the harness speaks with
