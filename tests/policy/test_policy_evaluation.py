"""The pure policy core, table by table: defaults per type, priority and preemptibility, and
the violations a client sees."""

import pytest

from fairway_contracts.events import PolicyEvaluateRequest
from fairway_contracts.workloads import PRIORITY_CLASSES, WorkloadType
from fairway_policy.core.evaluation import evaluate

WORKSPACE, TRAINING, DISTRIBUTED, INFERENCE = (
    WorkloadType.WORKSPACE, WorkloadType.TRAINING, WorkloadType.DISTRIBUTED, WorkloadType.INFERENCE,
)


def request(workload_type: WorkloadType, **spec) -> PolicyEvaluateRequest:
    return PolicyEvaluateRequest(workload_type=workload_type, project="team-a", name="job",
                                 spec={"image": "pytorch:24.05", **spec})


DEFAULTS = [
    # type,       priority class, preemptible, restart policy, pods, min pods
    (WORKSPACE,   "build",        False,       "Always",       1,    1),
    (TRAINING,    "train",        True,        "Never",        1,    1),
    (DISTRIBUTED, "train",        True,        "Never",        2,    2),
    (INFERENCE,   "inference",    False,       "Always",       1,    1),
]


@pytest.mark.parametrize(("workload_type", "priority_class", "preemptible", "restart_policy",
                          "pods", "min_pods"), DEFAULTS)
def test_defaults_per_workload_type(workload_type, priority_class, preemptible, restart_policy,
                                    pods, min_pods):
    reply = evaluate(request(workload_type))

    assert reply.ok and not reply.violations
    spec = reply.effective_spec
    assert (spec.priority_class, spec.preemptible, spec.restart_policy, spec.pods,
            spec.min_pods) == (priority_class, preemptible, restart_policy, pods, min_pods)
    assert spec.backoff_limit == 6
    assert spec.image == "pytorch:24.05"


PRIORITIES = [
    # type,     priorityClass,             preemptibility,     expected preemptible
    (TRAINING,  "very-low",                None,               True),
    (TRAINING,  "medium-high",             None,               True),   # 90 < 100
    (TRAINING,  "interactive-preemptible", None,               True),
    (WORKSPACE, "interactive-preemptible", None,               True),
    (TRAINING,  "build",                   None,               False),  # 100: not below
    (TRAINING,  "high",                    None,               False),
    (TRAINING,  "very-high",               None,               False),
    (TRAINING,  "train",                   "non-preemptible",  False),  # says otherwise
    (INFERENCE, "inference",               "preemptible",      True),
    (WORKSPACE, None,                      "preemptible",      True),   # default class, flag
]


@pytest.mark.parametrize(("workload_type", "priority_class", "preemptibility", "preemptible"),
                         PRIORITIES)
def test_priority_class_and_preemptibility(workload_type, priority_class, preemptibility,
                                           preemptible):
    spec = {}
    if priority_class is not None:
        spec["priorityClass"] = priority_class
    if preemptibility is not None:
        spec["preemptibility"] = preemptibility

    reply = evaluate(request(workload_type, **spec))

    assert reply.ok, reply.violations
    assert reply.effective_spec.preemptible is preemptible
    if priority_class is not None:
        assert reply.effective_spec.priority_class == priority_class


def test_the_seven_levels_are_ordered_and_known():
    levels = ["very-low", "low", "medium-low", "medium", "medium-high", "high", "very-high"]
    values = [PRIORITY_CLASSES[name] for name in levels]
    assert values == sorted(values) and len(set(values)) == 7
    assert (PRIORITY_CLASSES["train"], PRIORITY_CLASSES["build"],
            PRIORITY_CLASSES["inference"]) == (50, 100, 125)


GIVEN_VALUES = [
    # spec given,                                             effective field, expected
    ({"backoffLimit": 0},                                     "backoff_limit", 0),
    ({"restartPolicy": "OnFailure"},                          "restart_policy", "OnFailure"),
    ({"nodePools": ["a100", "default"]},                      "node_pools", ["a100", "default"]),
    ({"compute": {"gpuDevicesRequest": 4}},                   "compute.gpu_devices_request", 4),
    ({"labels": [{"name": "team", "value": "vision"}]},       "labels[0].value", "vision"),
    ({"environmentVariables": [{"name": "A", "value": "1"}]}, "environment_variables[0].name",
     "A"),
    ({"command": "python", "args": "train.py --epochs 3"},     "args", "train.py --epochs 3"),
]


@pytest.mark.parametrize(("spec", "field", "expected"), GIVEN_VALUES)
def test_given_values_pass_through(spec, field, expected):
    reply = evaluate(request(TRAINING, **spec))

    assert reply.ok, reply.violations
    value = reply.effective_spec
    for part in field.replace("]", "").replace("[", ".").split("."):
        value = value[int(part)] if part.isdigit() else getattr(value, part)
    assert value == expected


POD_GROUPS = [
    # type,        spec,                                       pods, min pods
    (DISTRIBUTED,  {"numWorkers": 3},                          4,    4),
    (DISTRIBUTED,  {"numWorkers": 3, "minReplicas": 1},        4,    2),
    # an inference server's minimum replicas are one gang; the autoscaler adds elastic ones
    (INFERENCE,    {"autoscaling": {"minReplicas": 3}},        3,    3),
    # one that may scale to zero starts with one replica
    (INFERENCE,    {"autoscaling": {"minReplicas": 0, "maxReplicas": 4,
                                    "metric": "concurrency", "metricThreshold": 2}}, 1, 1),
    (DISTRIBUTED,  {"numWorkers": 2, "minReplicas": 1, "maxReplicas": 4}, 3, 2),
    (DISTRIBUTED,  {"minReplicas": 1, "maxReplicas": 3},       4,    2),  # grows up to max
    (TRAINING,     {"numWorkers": 8},                          1,    1),  # not a distributed field
]


@pytest.mark.parametrize(("workload_type", "spec", "pods", "min_pods"), POD_GROUPS)
def test_pod_group_per_type(workload_type, spec, pods, min_pods):
    reply = evaluate(request(workload_type, **spec))

    assert reply.ok, reply.violations
    assert (reply.effective_spec.pods, reply.effective_spec.min_pods) == (pods, min_pods)


VIOLATIONS = [
    # type,     spec (merged over a valid one),               violating field
    (TRAINING,    {"priorityClass": "urgent"},                  "spec.priorityClass"),
    (TRAINING,    {"preemptibility": "sometimes"},              "spec.preemptibility"),
    (TRAINING,    {"restartPolicy": "Maybe"},                   "spec.restartPolicy"),
    (TRAINING,    {"image": ""},                                "spec.image"),
    (TRAINING,    {"image": None},                              "spec.image"),
    (TRAINING,    {"backoffLimit": -1},                         "spec.backoffLimit"),
    (TRAINING,    {"compute": {"gpuDevicesRequest": -2}},       "spec.compute.gpuDevicesRequest"),
    (TRAINING,    {"compute": {"gpuDevicesRequest": 1.5}},      "spec.compute.gpuDevicesRequest"),
    (TRAINING,    {"compute": {"gpuPortionRequest": 1.5}},      "spec.compute.gpuPortionRequest"),
    (TRAINING,    {"compute": {"gpuPortionRequest": 0.5, "gpuPortionLimit": 0.25}},
     "spec.compute.gpuPortionLimit"),
    (TRAINING,    {"compute": {"gpuMemoryLimit": "10Gi"}},      "spec.compute.gpuMemoryLimit"),
    (TRAINING,    {"compute": {"gpuMemoryRequest": "10Gi", "gpuDevicesRequest": 2}},
     "spec.compute.gpuDevicesRequest"),
    (TRAINING,    {"compute": {"gpuPortionRequest": 0.5, "gpuDevicesRequest": 0}},
     "spec.compute.gpuDevicesRequest"),
    (TRAINING,    {"labels": [{"name": "team"}]},               "spec.labels[0].value"),
    (TRAINING,    {"nodePools": "a100"},                        "spec.nodePools"),
    (DISTRIBUTED, {"numWorkers": 0},                            "spec.numWorkers"),
    (DISTRIBUTED, {"numWorkers": 2, "minReplicas": 3},          "spec.minReplicas"),
    (DISTRIBUTED, {"distributedFramework": "Ray"},              "spec.distributedFramework"),
    (DISTRIBUTED, {"numWorkers": 4, "maxReplicas": 3},          "spec.numWorkers"),
    (DISTRIBUTED, {"numWorkers": 2, "maxReplicas": 0},          "spec.maxReplicas"),
    (DISTRIBUTED, {"masterSpecSameAsWorker": False},            "spec.masterSpec"),
    (INFERENCE,   {"autoscaling": {"minReplicas": 0}},          "spec.autoscaling.minReplicas"),
    (INFERENCE,   {"autoscaling": {"minReplicas": 0, "metric": "latency",
                                   "metricThreshold": 0.2}},    "spec.autoscaling.minReplicas"),
    (INFERENCE,   {"servingPort": {"container": 70000}},        "spec.servingPort.container"),
    (INFERENCE,   {"servingPort": {"container": 80, "protocol": "udp"}},
     "spec.servingPort.protocol"),
]


@pytest.mark.parametrize(("workload_type", "spec", "field"), VIOLATIONS)
def test_violations_name_the_field(workload_type, spec, field):
    reply = evaluate(request(workload_type, **spec))

    assert not reply.ok and reply.effective_spec is None
    assert [v.field for v in reply.violations] == [field]
    assert reply.violations[0].message


def test_unknown_priority_class_lists_the_valid_names():
    reply = evaluate(request(TRAINING, priorityClass="urgent"))

    message = reply.violations[0].message
    assert "'urgent'" in message
    for name in PRIORITY_CLASSES:
        assert name in message


def test_every_problem_is_reported_at_once():
    reply = evaluate(PolicyEvaluateRequest(
        workload_type=TRAINING, project="team-a", name="job",
        spec={"priorityClass": "urgent", "preemptibility": "never",
              "compute": {"gpuDevicesRequest": -1}},
    ))

    assert sorted(v.field for v in reply.violations) == [
        "spec.compute.gpuDevicesRequest", "spec.image", "spec.preemptibility",
        "spec.priorityClass",
    ]


def test_evaluation_is_deterministic():
    req = request(DISTRIBUTED, numWorkers=2, priorityClass="high", nodePools=["a100"])
    assert evaluate(req) == evaluate(req)


FRACTIONS = [
    # compute submitted,                                   the effective spec's compute
    ({"gpuPortionRequest": 0.5},
     {"gpu_request_type": "portion", "gpu_portion_request": 0.5, "gpu_devices_request": 1}),
    ({"gpuPortionRequest": 0.25, "gpuPortionLimit": 0.75, "gpuDevicesRequest": 2},
     {"gpu_request_type": "portion", "gpu_portion_request": 0.25, "gpu_portion_limit": 0.75,
      "gpu_devices_request": 2}),
    ({"gpuRequestType": "memory", "gpuMemoryRequest": "10Gi", "gpuMemoryLimit": "20Gi"},
     {"gpu_request_type": "memory", "gpu_memory_request": "10Gi", "gpu_memory_limit": "20Gi",
      "gpu_devices_request": 1}),
    ({"gpuDevicesRequest": 2},
     {"gpu_request_type": None, "gpu_portion_request": None, "gpu_devices_request": 2}),
]


@pytest.mark.parametrize(("compute", "expected"), FRACTIONS)
def test_gpu_fractions_reach_the_effective_spec_in_normal_form(compute, expected):
    reply = evaluate(request(TRAINING, compute=compute))

    assert reply.ok, reply.violations
    got = reply.effective_spec.compute
    assert {key: getattr(got, key) for key in expected} == expected


def test_a_bare_serving_port_is_the_container_port_with_run_ai_defaults():
    reply = evaluate(request(INFERENCE, servingPort=8000))

    assert reply.ok, reply.violations
    port = reply.effective_spec.serving_port
    assert (port.container, port.protocol, port.authorization_type,
            port.cluster_local_access_only) == (8000, "http", "public", True)


def test_autoscaling_reaches_the_effective_spec_whole():
    autoscaling = {"minReplicas": 0, "maxReplicas": 5, "metric": "throughput",
                   "metricThreshold": 10, "initializationTimeoutSeconds": 60,
                   "scaleToZeroRetentionSeconds": 300}
    reply = evaluate(request(INFERENCE, autoscaling=autoscaling))

    assert reply.ok, reply.violations
    assert reply.effective_spec.autoscaling.model_dump(by_alias=True) == autoscaling


def test_elastic_bounds_and_the_master_spec_reach_the_effective_spec():
    reply = evaluate(request(DISTRIBUTED, numWorkers=3, minReplicas=1, maxReplicas=4,
                             masterSpecSameAsWorker=False,
                             masterSpec={"image": "launcher:1", "command": "mpirun train",
                                         "compute": {"cpuCoreRequest": 1}}))

    assert reply.ok, reply.violations
    spec = reply.effective_spec
    assert (spec.num_workers, spec.min_replicas, spec.max_replicas) == (3, 1, 4)
    assert (spec.pods, spec.min_pods) == (4, 2)
    assert spec.master_spec.image == "launcher:1"
    assert spec.master_spec.command == "mpirun train"
    assert spec.master_spec.compute.cpu_core_request == 1


def test_a_master_spec_is_dropped_while_the_master_copies_the_workers():
    reply = evaluate(request(DISTRIBUTED, numWorkers=1, masterSpec={"image": "other:1"}))

    assert reply.ok, reply.violations
    assert reply.effective_spec.master_spec is None
