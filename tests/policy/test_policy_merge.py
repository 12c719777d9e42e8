"""Policies merged along a branch and applied to a spec, table by table: inheritance, the lowest
default wins, one level of rules per field, each rule type, list rules, imposed values, and
policy documents refused field by field."""

import pytest

from fairway_contracts.events import PolicyEvaluateRequest
from fairway_contracts.workloads import WorkloadType
from fairway_policy.core.evaluation import evaluate
from fairway_policy.core.merge import conflicts, merge
from fairway_policy.core.policies import Policy, Scope, parse, patch
from fairway_policy.core.rules import apply, check_defaults

TRAINING, WORKSPACE = WorkloadType.TRAINING, WorkloadType.WORKSPACE
CLUSTER = Scope("cluster")
DEPT = Scope("department", "3", "ml")
PROJECT = Scope("project", "7", "vision")


def policy(document: dict, workload_type: WorkloadType = TRAINING) -> Policy:
    parsed, problems = parse(document, workload_type)
    assert problems == []
    return parsed


def effective(*layers: tuple[Scope, dict]):
    return merge([(scope, policy(doc)) for scope, doc in layers])


# inheritance and the lowest default ----------------------------------------------------------

DEFAULT_CASES = [
    # (layers, field, expected value, expected source)
    ([(CLUSTER, {"defaults": {"backoffLimit": 2}})], "backoffLimit", 2, "cluster"),
    ([(CLUSTER, {"defaults": {"backoffLimit": 2}}), (DEPT, {"defaults": {"backoffLimit": 3}})],
     "backoffLimit", 3, "department"),
    ([(PROJECT, {"defaults": {"backoffLimit": 4}}), (CLUSTER, {"defaults": {"backoffLimit": 2}}),
      (DEPT, {"defaults": {"backoffLimit": 3}})], "backoffLimit", 4, "project"),
    ([(CLUSTER, {"defaults": {"image": "python:3.12"}}), (DEPT, {"defaults": {"backoffLimit": 3}})],
     "image", "python:3.12", "cluster"),
    ([(DEPT, {"defaults": {"compute": {"gpuDevicesRequest": 1}}})],
     "compute.gpuDevicesRequest", 1, "department"),
]


@pytest.mark.parametrize(("layers", "path", "value", "source"), DEFAULT_CASES)
def test_defaults_are_inherited_and_the_lowest_scope_wins(layers, path, value, source):
    merged = effective(*layers)

    assert merged.defaults[path].value == value
    assert merged.defaults[path].scope.kind == source
    spec, violations = apply(merged, {"image": "busybox"} if path != "image" else {})
    node = spec
    for part in path.split("."):
        node = node[part]
    assert node == value and violations == []


def test_a_submitted_value_beats_every_default():
    merged = effective((CLUSTER, {"defaults": {"backoffLimit": 2}}),
                       (PROJECT, {"defaults": {"backoffLimit": 4}}))

    spec, _ = apply(merged, {"backoffLimit": 9})

    assert spec["backoffLimit"] == 9


def test_list_defaults_merge_item_by_item_with_their_sources():
    merged = effective(
        (CLUSTER, {"defaults": {"environmentVariables": [{"name": "A", "value": "1"},
                                                         {"name": "B", "value": "1"}]}}),
        (DEPT, {"defaults": {"environmentVariables": {"instances": [{"name": "B",
                                                                      "value": "2"}]}}}))

    spec, _ = apply(merged, {"environmentVariables": [{"name": "C", "value": "3"}]})

    assert spec["environmentVariables"] == [{"name": "C", "value": "3"},
                                            {"name": "A", "value": "1"},
                                            {"name": "B", "value": "2"}]
    view = merged.view()
    assert view["sources"]["defaults"]["environmentVariables[B]"] == {
        "scope": "department", "departmentId": "3", "departmentName": "ml"}
    assert view["defaults"]["environmentVariables"] == [{"name": "A", "value": "1"},
                                                        {"name": "B", "value": "2"}]


# rule exclusivity ---------------------------------------------------------------------------

EXCLUSIVITY = [
    # (new scope, new rules, others in the branch, refused fields, holder)
    (DEPT, {"backoffLimit": {"max": 3}}, [(CLUSTER, {"rules": {"backoffLimit": {"min": 1}}})],
     ["policy.rules.backoffLimit"], "cluster"),
    (PROJECT, {"compute": {"gpuDevicesRequest": {"max": 8}}},
     [(DEPT, {"rules": {"compute": {"gpuDevicesRequest": {"max": 2}}}})],
     ["policy.rules.compute.gpuDevicesRequest"], "department ml"),
    (CLUSTER, {"image": {"canEdit": False}}, [(PROJECT, {"imposed": {"image": "x"}})],
     ["policy.rules.image"], "project vision"),
    (DEPT, {"backoffLimit": {"max": 3}}, [(CLUSTER, {"rules": {"image": {"required": True}},
                                                     "defaults": {"backoffLimit": 1}})], [], None),
    (DEPT, {"backoffLimit": {"max": 3}}, [(DEPT, {"rules": {"backoffLimit": {"max": 9}}})],
     [], None),  # its own old rule is replaced, not a conflict
    (DEPT, {"backoffLimit": {"max": 3}},
     [(Scope("department", "3", "ml-old-name"), {"rules": {"backoffLimit": {"max": 9}}})],
     [], None),  # ... even when it was stored under an older name
]


@pytest.mark.parametrize(("scope", "rules", "others", "refused", "holder"), EXCLUSIVITY)
def test_a_field_carries_rules_at_one_level_of_a_branch(scope, rules, others, refused, holder):
    problems = conflicts(scope, policy({"rules": rules}),
                         [(s, policy(doc)) for s, doc in others])

    assert [p["field"] for p in problems] == refused
    if holder:
        assert problems[0]["scope"] == holder and holder in problems[0]["reason"]


# each rule type -------------------------------------------------------------------------------

RULE_CASES = [
    # (rules, submitted spec, violated (field, rule) pairs)
    ({"compute": {"gpuDevicesRequest": {"max": 2}}}, {"compute": {"gpuDevicesRequest": 4}},
     [("spec.compute.gpuDevicesRequest", "max: 2")]),
    ({"compute": {"gpuDevicesRequest": {"max": 2}}}, {"compute": {"gpuDevicesRequest": 2}}, []),
    ({"backoffLimit": {"min": 2}}, {"backoffLimit": 1}, [("spec.backoffLimit", "min: 2")]),
    ({"backoffLimit": {"min": 2, "step": 2}}, {"backoffLimit": 5},
     [("spec.backoffLimit", "step: 2")]),
    ({"backoffLimit": {"min": 2, "step": 2}}, {"backoffLimit": 6}, []),
    ({"backoffLimit": {"min": 2, "max": 4, "step": 2}}, {"backoffLimit": 7},
     [("spec.backoffLimit", "max: 4"), ("spec.backoffLimit", "step: 2")]),
    ({"compute": {"cpuCoreRequest": {"max": 1.5}}}, {"compute": {"cpuCoreRequest": 2.0}},
     [("spec.compute.cpuCoreRequest", "max: 1.5")]),
    ({"compute": {"cpuMemoryRequest": {"max": "1Gi"}}}, {"compute": {"cpuMemoryRequest": "2G"}},
     [("spec.compute.cpuMemoryRequest", "max: 1Gi")]),
    ({"compute": {"cpuMemoryRequest": {"max": "1Gi"}}}, {"compute": {"cpuMemoryRequest": "512Mi"}},
     []),
    # read as Kubernetes reads quantities: an exponent is a size too
    ({"compute": {"cpuMemoryRequest": {"max": "1Gi"}}}, {"compute": {"cpuMemoryRequest": "2e9"}},
     [("spec.compute.cpuMemoryRequest", "max: 1Gi")]),
    ({"image": {"options": [{"value": "python:3.12"}]}}, {"image": "ubuntu"},
     [("spec.image", "options: ['python:3.12']")]),
    ({"image": {"options": [{"value": "python:3.12"}]}}, {"image": "python:3.12"}, []),
    ({"command": {"required": True}}, {}, [("spec.command", "required: true")]),
    ({"command": {"required": True}}, {"command": "train.py"}, []),
    ({"terminateAfterPreemption": {"canEdit": False}}, {"terminateAfterPreemption": True},
     [("spec.terminateAfterPreemption", "canEdit: false")]),
    ({"terminateAfterPreemption": {"canEdit": False}}, {}, []),
]


@pytest.mark.parametrize(("rules", "spec", "violated"), RULE_CASES)
def test_each_rule_type(rules, spec, violated):
    merged = effective((DEPT, {"rules": rules}))

    _, violations = apply(merged, spec)

    assert [(v.field, v.rule) for v in violations] == violated
    for v in violations:
        assert v.scope == "department ml" and "department ml" in v.message


def test_can_edit_false_keeps_the_default_and_refuses_another_value():
    merged = effective((CLUSTER, {"defaults": {"backoffLimit": 2},
                                  "rules": {"backoffLimit": {"canEdit": False}}}))

    assert apply(merged, {})[0]["backoffLimit"] == 2
    assert apply(merged, {"backoffLimit": 2})[1] == []
    [violation] = apply(merged, {"backoffLimit": 5})[1]
    assert (violation.value, violation.rule, violation.scope) == (5, "canEdit: false", "cluster")


def test_every_violated_rule_is_listed_with_value_rule_and_scope():
    merged = effective(
        (CLUSTER, {"rules": {"image": {"options": [{"value": "python:3.12"}]}}}),
        (DEPT, {"rules": {"compute": {"gpuDevicesRequest": {"max": 2}}}}))

    _, violations = apply(merged, {"image": "ubuntu", "compute": {"gpuDevicesRequest": 4}})

    assert [(v.field, v.value, v.rule, v.scope) for v in violations] == [
        ("spec.image", "ubuntu", "options: ['python:3.12']", "cluster"),
        ("spec.compute.gpuDevicesRequest", 4, "max: 2", "department ml")]


# list rules ---------------------------------------------------------------------------------

LIST_CASES = [
    # (rules, submitted env, violated fields)
    ({"canAdd": False}, [{"name": "HTTP_PROXY", "value": "p"}], []),
    ({"canAdd": False}, [{"name": "HTTP_PROXY", "value": "other"}], []),
    ({"canAdd": False}, [{"name": "NEW", "value": "1"}], ["spec.environmentVariables[0]"]),
    ({"locked": ["HTTP_PROXY"]}, [{"name": "NEW", "value": "1"}], []),
    ({"locked": ["HTTP_PROXY"]}, [{"name": "NEW", "value": "1"},
                                  {"name": "HTTP_PROXY", "value": "other"}],
     ["spec.environmentVariables[1]"]),
    ({"locked": ["HTTP_PROXY"]}, [{"name": "HTTP_PROXY", "value": "p"}], []),
    ({"locked": ["SECRET"]}, [{"name": "SECRET", "value": "x"}],
     ["spec.environmentVariables[0]"]),
    ({"canEdit": False}, [{"name": "HTTP_PROXY", "value": "other"}],
     ["spec.environmentVariables[0]"]),
]


@pytest.mark.parametrize(("rules", "env", "violated"), LIST_CASES)
def test_list_rules_can_add_and_locked(rules, env, violated):
    merged = effective((DEPT, {
        "defaults": {"environmentVariables": [{"name": "HTTP_PROXY", "value": "p"}]},
        "rules": {"environmentVariables": rules}}))

    spec, violations = apply(merged, {"environmentVariables": env})

    assert [v.field for v in violations] == violated
    # a locked or default item can never be removed: the default fills it back in
    assert "HTTP_PROXY" in {i["name"] for i in spec["environmentVariables"]}


# imposed values -----------------------------------------------------------------------------

def test_imposed_values_override_what_was_submitted():
    merged = effective((DEPT, {"imposed": {
        "terminateAfterPreemption": True, "compute": {"cpuCoreLimit": 4},
        "labels": [{"name": "team", "value": "ml"}]}}))

    spec, violations = apply(merged, {"terminateAfterPreemption": False,
                                      "labels": [{"name": "team", "value": "mine"},
                                                 {"name": "x", "value": "y"}]})

    assert violations == []
    assert spec["terminateAfterPreemption"] is True
    assert spec["compute"]["cpuCoreLimit"] == 4
    assert spec["labels"] == [{"name": "team", "value": "ml"}, {"name": "x", "value": "y"}]


# the whole evaluation -------------------------------------------------------------------------

def test_evaluate_applies_the_policy_before_the_built_in_checks():
    merged = effective((CLUSTER, {"defaults": {"backoffLimit": 1}}),
                       (DEPT, {"rules": {"compute": {"gpuDevicesRequest": {"max": 2}}},
                               "imposed": {"terminateAfterPreemption": True}}))
    ok = PolicyEvaluateRequest(workload_type=TRAINING, project="vision", name="job",
                               spec={"image": "busybox", "compute": {"gpuDevicesRequest": 2}})
    refused = ok.model_copy(update={"spec": {"image": "busybox", "priorityClass": "vip",
                                             "compute": {"gpuDevicesRequest": 3}}})

    reply = evaluate(ok, merged)
    assert reply.ok
    assert reply.effective_spec.backoff_limit == 1
    assert reply.effective_spec.terminate_after_preemption is True
    reply = evaluate(refused, merged)
    assert not reply.ok
    assert [v.field for v in reply.violations] == ["spec.compute.gpuDevicesRequest",
                                                   "spec.priorityClass"]


# policy documents refused field by field ------------------------------------------------------

BAD_DOCUMENTS = [
    ({"rules": {"compute": {"gpuDevicesRequest": {"max": "two"}}}},
     "policy.rules.compute.gpuDevicesRequest.max"),
    ({"rules": {"image": {"min": 1}}}, "policy.rules.image.min"),
    ({"rules": {"backoffLimit": {"canAdd": False}}}, "policy.rules.backoffLimit.canAdd"),
    ({"rules": {"environmentVariables": {"locked": "A"}}},
     "policy.rules.environmentVariables.locked"),
    ({"rules": {"backoffLimit": {"min": 5, "max": 2}}}, "policy.rules.backoffLimit.min"),
    ({"rules": {"backoffLimit": {"step": 0}}}, "policy.rules.backoffLimit.step"),
    ({"rules": {"image": {"options": []}}}, "policy.rules.image.options"),
    ({"defaults": {"gpus": 1}}, "policy.defaults.gpus"),
    ({"defaults": {"backoffLimit": "2"}}, "policy.defaults.backoffLimit"),
    # not a training's field (named in its new place)
    ({"defaults": {"servingPort": 8000}}, "policy.defaults.servingPort.container"),
    ({"defaults": {"environmentVariables": [{"value": "x"}]}},
     "policy.defaults.environmentVariables"),
    ({"imposed": {"compute": {"cpuMemoryLimit": "lots"}}}, "policy.imposed.compute.cpuMemoryLimit"),
    ({"rulez": {}}, "policy.rulez"),
]


@pytest.mark.parametrize(("document", "field"), BAD_DOCUMENTS)
def test_a_bad_policy_names_the_field_and_reason(document, field):
    _, problems = parse(document, TRAINING)

    assert [p["field"] for p in problems] == [field]
    assert problems[0]["reason"]


def test_a_default_its_own_rules_refuse_is_named():
    merged = merge([(CLUSTER, policy({"rules": {"backoffLimit": {"max": 3},
                                                "command": {"required": True}}})),
                    (DEPT, policy({"defaults": {"backoffLimit": 5}}))])

    assert [p["field"] for p in check_defaults(merged)] == ["policy.defaults.backoffLimit"]


def test_patch_merges_and_null_removes():
    doc = {"defaults": {"backoffLimit": 2, "image": "a"}, "rules": {"image": {"canEdit": False}}}

    assert patch(doc, {"defaults": {"image": None, "command": "x"}, "rules": None}) == {
        "defaults": {"backoffLimit": 2, "command": "x"}}


def test_the_document_round_trips():
    document = {"defaults": {"compute": {"gpuDevicesRequest": 1},
                             "environmentVariables": [{"name": "A", "value": "1"}]},
                "rules": {"compute": {"gpuDevicesRequest": {"max": 2}}},
                "imposed": {"labels": [{"name": "team", "value": "ml"}]}}

    assert policy(document, WORKSPACE).document() == document


def test_policy_defaults_and_rules_on_gpu_portions():
    """A default portion makes a fraction of a workload that asked for no GPU; a maximum on
    the portion refuses a larger one, naming the field and the bound; a default portion that
    meets a submitted memory request is refused, not silently dropped."""
    merged = effective((DEPT, {"defaults": {"compute": {"gpuPortionRequest": 0.5}},
                               "rules": {"compute": {"gpuPortionRequest": {"max": 0.5}}}}))
    reply = evaluate(PolicyEvaluateRequest(
        workload_type=TRAINING, project="vision", name="t", spec={"image": "busybox"}), merged)
    assert reply.ok, reply.violations
    compute = reply.effective_spec.compute
    assert (compute.gpu_request_type, compute.gpu_portion_request,
            compute.gpu_devices_request) == ("portion", 0.5, 1)
    assert reply.effective_spec.gpus_requested() == 0.5

    reply = evaluate(PolicyEvaluateRequest(
        workload_type=TRAINING, project="vision", name="t",
        spec={"image": "busybox", "compute": {"gpuPortionRequest": 0.75}}), merged)
    assert not reply.ok
    assert [v.field for v in reply.violations] == ["spec.compute.gpuPortionRequest"]
    assert "0.5" in reply.violations[0].message

    reply = evaluate(PolicyEvaluateRequest(
        workload_type=TRAINING, project="vision", name="t",
        spec={"image": "busybox", "compute": {"gpuMemoryRequest": "10Gi"}}), merged)
    assert not reply.ok
    assert "spec.compute.gpuMemoryRequest" in [v.field for v in reply.violations]


def test_a_policy_default_for_a_distributed_field_shapes_the_gang():
    merged = merge([(PROJECT, policy({"defaults": {"minReplicas": 1, "numWorkers": 3}},
                                     WorkloadType.DISTRIBUTED))])
    submitted = PolicyEvaluateRequest(workload_type=WorkloadType.DISTRIBUTED, project="vision",
                                      name="job", spec={"image": "busybox"})

    reply = evaluate(submitted, merged)

    assert reply.ok, reply.violations
    spec = reply.effective_spec
    assert (spec.num_workers, spec.min_replicas, spec.pods, spec.min_pods) == (3, 1, 4, 2)


def test_a_policy_default_below_the_submitted_workers_is_refused_naming_the_field():
    merged = merge([(PROJECT, policy({"defaults": {"maxReplicas": 2}},
                                     WorkloadType.DISTRIBUTED))])
    submitted = PolicyEvaluateRequest(workload_type=WorkloadType.DISTRIBUTED, project="vision",
                                      name="job", spec={"image": "busybox", "numWorkers": 3})

    reply = evaluate(submitted, merged)

    assert not reply.ok
    assert [v.field for v in reply.violations] == ["spec.numWorkers"]
    assert "maxReplicas (2)" in reply.violations[0].message


def test_a_policy_sets_and_rules_the_topology_placement():
    rack, zone = "topology.fairway.io/rack", "topology.fairway.io/zone"
    merged = effective((CLUSTER, {"defaults": {"topology": {"preferredPlacement": rack}}}),
                       (DEPT, {"rules": {"topology": {"requiredPlacement": {
                           "options": [{"value": rack}]}}}}))
    asked = PolicyEvaluateRequest(workload_type=TRAINING, project="vision", name="job",
                                  spec={"image": "busybox"})
    reply = evaluate(asked, merged)
    assert reply.ok
    assert reply.effective_spec.topology.preferred_placement == rack
    assert reply.effective_spec.topology.required_placement is None
    reply = evaluate(asked.model_copy(update={"spec": {
        "image": "busybox", "topology": {"requiredPlacement": zone}}}), merged)
    assert not reply.ok
    assert [v.field for v in reply.violations] == ["spec.topology.requiredPlacement"]
