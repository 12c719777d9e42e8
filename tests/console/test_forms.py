"""The submit form's inputs as the API's request, the API's problems back to their inputs,
and what the effective policy says of each input."""

import pytest

from fairway_submission.console.forms import field_for, policy_hints, request_body


def test_empty_inputs_are_left_out_for_policy_to_fill():
    body = request_body("trainings", {"name": "t", "projectId": "3", "image": "",
                                      "gpuDevicesRequest": "", "command": "python"})
    assert body == {"name": "t", "projectId": "3", "spec": {"command": "python"}}


def test_inputs_go_where_the_api_takes_them():
    body = request_body("trainings", {
        "name": "t", "projectId": "1", "image": "busybox", "gpuDevicesRequest": "2",
        "gpuPortionRequest": "0.5", "nodePools": "a100\n\nt4\n",
        "annotations": "sim.fairway.io/run-seconds=4\n", "backoffLimit": "3"})
    assert body["spec"] == {
        "image": "busybox", "compute": {"gpuDevicesRequest": 2, "gpuPortionRequest": 0.5,
                                        "gpuRequestType": "portion"},
        "nodePools": ["a100", "t4"], "backoffLimit": 3,
        "annotations": [{"name": "sim.fairway.io/run-seconds", "value": "4"}]}


def test_a_field_of_another_type_is_not_sent():
    body = request_body("workspaces", {"name": "w", "projectId": "1", "backoffLimit": "3"})
    assert "backoffLimit" not in body["spec"]


def test_a_number_that_is_not_one_goes_as_typed_for_the_api_to_name():
    body = request_body("trainings", {"name": "t", "projectId": "1", "gpuDevicesRequest": "two"})
    assert body["spec"]["compute"]["gpuDevicesRequest"] == "two"


@pytest.mark.parametrize(("path", "field"), [
    ("spec.compute.gpuDevicesRequest", "gpuDevicesRequest"),
    ("spec.annotations[0].name", "annotations"),
    ("spec.servingPort.container", ""),  # not an input of a training
    ("name", "name"),
    ("projectId", "projectId"),
    ("spec.somethingElse", ""),
])
def test_a_problem_belongs_to_its_input(path, field):
    assert field_for(path, "trainings") == field


def test_the_effective_policy_per_input():
    hints = policy_hints({
        "defaults": {"backoffLimit": 2, "image": "busybox"},
        "rules": {"image": {"options": ["busybox"]},
                  "compute": {"gpuDevicesRequest": {"max": 2}},
                  "command": {"canEdit": False}},
        "imposed": {"nodePools": ["a100"]}}, "trainings")
    assert hints["backoffLimit"] == {"default": 2, "locked": False}
    assert hints["image"] == {"default": "busybox", "rules": {"options": ["busybox"]},
                              "locked": False}
    assert hints["gpuDevicesRequest"] == {"rules": {"max": 2}, "locked": False}
    assert hints["command"]["locked"] is True
    assert hints["nodePools"] == {"imposed": ["a100"], "locked": True}


def test_no_policy_says_nothing():
    assert policy_hints(None, "trainings") == {}
