"""deploy/: every manifest against the Kubernetes API schemas (kubernetes-validate, strict: an
unknown field is an error), then what the schemas cannot say: probes, resources, the
scheduler's active/standby, the narrow RBAC, and that every setting given is one a service
reads, under its current name."""

import json

import kubernetes_validate
import pytest
import yaml

from fairway_bus.bootstrap import BootstrapSettings
from fairway_lifecycle.settings import LifecycleSettings
from fairway_metrics.settings import MetricsSettings
from fairway_policy.settings import PolicySettings
from fairway_runtime.settings import ServiceSettings, variables
from fairway_scheduler.settings import SchedulerSettings
from fairway_submission.settings import SubmissionSettings
from tests.deploy.conftest import DEPLOY, SERVICES, load_all

K8S_VERSION = kubernetes_validate.utils.latest_version()
SETTINGS = {"submission": SubmissionSettings, "policy": PolicySettings,
            "scheduler": SchedulerSettings, "lifecycle": LifecycleSettings,
            "metrics": MetricsSettings}


def reads(settings) -> set[str]:
    """The current names of the variables a settings class reads (not the deprecated ones)."""
    return {variable.name for variable in variables(settings).values()}


def kustomization() -> dict:
    return yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())


def manifests() -> list[dict]:
    return [doc for resource in kustomization()["resources"]
            for doc in load_all(DEPLOY / resource)]


def by_kind(kind: str) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in manifests() if m["kind"] == kind}


def ident(manifest: dict) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def test_every_manifest_file_is_in_the_kustomization():
    listed = {DEPLOY / r for r in kustomization()["resources"]}
    assert set((DEPLOY / "kubernetes").glob("*.yaml")) == listed
    for generator in kustomization()["configMapGenerator"]:
        for file in generator["files"]:
            assert (DEPLOY / file).is_file(), file


@pytest.mark.parametrize("manifest", manifests(), ids=ident)
def test_manifest_follows_the_kubernetes_schema(manifest):
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_the_schema_check_catches_mistakes():
    deployment = json.loads(json.dumps(by_kind("Deployment")["policy"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_everything_lives_in_the_fairway_namespace():
    for manifest in manifests():
        if manifest["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            continue
        assert manifest["metadata"]["namespace"] == "fairway", ident(manifest)


def test_each_service_is_a_deployment_with_probes_and_resources():
    deployments = by_kind("Deployment")
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["command"] == ["python", "-m", f"fairway_{name}"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        liveness = container["livenessProbe"]
        # Submission's /healthz is the whole platform's health, not a reason to restart it:
        # its own liveness (cut off from NATS for good) is /livez.
        path = "/livez" if name == "submission" else "/healthz"
        assert liveness.get("httpGet", {}).get("path") == path, name
        # Every Fairway process authenticates to NATS (deploy/nats/values.yaml requires it).
        assert {"secretRef": {"name": "fairway-nats"}} in container["envFrom"], name
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert "memory" in container["resources"]["limits"], name
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        port = int(annotations["prometheus.io/port"])
        assert port in {p["containerPort"] for p in container["ports"]}, name


def test_every_setting_given_is_one_the_service_reads():
    config = by_kind("ConfigMap")["fairway-config"]["data"]
    secret = by_kind("Secret")["fairway-secrets"]["stringData"]
    for name, deployment in by_kind("Deployment").items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        given = {e["name"] for e in container.get("env", [])}
        unknown = given - reads(SETTINGS[name])
        assert not unknown, f"{name} is given settings it does not read: {unknown}"
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secret, (name, ref)
    # The ConfigMap goes to every service and to the bootstrap Job.
    assert set(config) - reads(ServiceSettings) - reads(BootstrapSettings) == set()


def test_the_scheduler_runs_active_standby_on_a_lease():
    scheduler = by_kind("Deployment")["scheduler"]
    assert scheduler["spec"]["replicas"] == 2
    [container] = scheduler["spec"]["template"]["spec"]["containers"]
    assert {"name": "FAIRWAY_SCHEDULER_LEADER_ELECTION", "value": "on"} in container["env"]
    assert scheduler["spec"]["template"]["spec"]["serviceAccountName"] == "fairway-scheduler"
    [rule] = by_kind("Role")["fairway-scheduler-leader-election"]["rules"]
    assert rule == {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                    "verbs": ["get", "create", "update"]}
    budget = by_kind("PodDisruptionBudget")["scheduler"]
    assert budget["spec"]["minAvailable"] == 1


def test_lifecycle_may_do_what_it_needs_and_nothing_more():
    lifecycle = by_kind("Deployment")["lifecycle"]
    assert lifecycle["spec"]["template"]["spec"]["serviceAccountName"] == "fairway-lifecycle"
    # Sharded: three replicas, one replaced at a time, spread over nodes, one drained at a time.
    assert lifecycle["spec"]["replicas"] == 3
    assert lifecycle["spec"]["strategy"]["type"] == "RollingUpdate"
    [container] = lifecycle["spec"]["template"]["spec"]["containers"]
    assert {"name": "FAIRWAY_LIFECYCLE_SHARDING", "value": "true"} in container["env"]
    assert lifecycle["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert by_kind("PodDisruptionBudget")["lifecycle"]["spec"]["maxUnavailable"] == 1
    granted = {}
    for role in (by_kind("ClusterRole")["fairway-lifecycle"],
                 by_kind("Role")["fairway-lifecycle-leases"]):
        for rule in role["rules"]:
            for resource in rule["resources"]:
                granted.setdefault(resource, set()).update(rule["verbs"])
    assert granted == {
        "namespaces": {"get", "list", "create"},
        "pods": {"get", "list", "watch", "create", "delete", "patch"},
        "pods/binding": {"create"},
        "pods/eviction": {"create"},
        "pods/status": {"patch"},  # why a third-party pod waits (its PodScheduled condition)
        # a workload's objects besides its pods: a distributed workload's headless Service,
        # MPI's hostfile
        "services": {"get", "create", "update", "delete"},
        "configmaps": {"get", "create", "update", "delete"},
        "nodes": {"get", "list", "watch"},
        "events": {"create", "patch"},
        # the shard Leases, and the member Leases listed to count the replicas (a gone
        # replica's deleted)
        "leases": {"get", "list", "create", "update", "delete"},
        # third-party pods' owners, read to group the pods into workloads, and a top owner
        # deleted with its workload
        "cronjobs": {"get"},
        **{owners: {"get", "delete"} for owners in (
            "jobs", "replicasets", "deployments", "statefulsets", "daemonsets", "pytorchjobs")},
    }
    for kind in ("ClusterRole", "Role"):
        for role in by_kind(kind).values():
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] and "*" not in rule["resources"], role
                assert "secrets" not in rule["resources"], role


def test_metrics_runs_replicas_that_read_the_projection_from_the_tables():
    metrics = by_kind("Deployment")["metrics"]
    assert metrics["spec"]["replicas"] == 2
    [container] = metrics["spec"]["template"]["spec"]["containers"]
    refresh = {e["name"]: e.get("value") for e in container["env"]}
    assert float(refresh["FAIRWAY_METRICS_REFRESH_SECONDS"]) > 0
    assert metrics["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert by_kind("PodDisruptionBudget")["metrics"]["spec"]["minAvailable"] == 1


def test_submission_may_only_find_pods_and_read_their_logs():
    pod = by_kind("Deployment")["submission"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "fairway-submission"
    assert pod.get("automountServiceAccountToken", True) is True
    rules = by_kind("ClusterRole")["fairway-submission-logs"]["rules"]
    assert {r: tuple(rule["verbs"]) for rule in rules for r in rule["resources"]} == {
        "pods": ("list",), "pods/log": ("get",), "events": ("list",)}
    binding = by_kind("ClusterRoleBinding")["fairway-submission-logs"]
    assert binding["subjects"][0]["name"] == "fairway-submission"


def test_services_that_never_call_kubernetes_get_no_token():
    for name in ("policy", "metrics"):
        pod = by_kind("Deployment")[name]["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name


def test_nats_requires_the_credentials_fairway_is_given():
    values = yaml.safe_load((DEPLOY / "nats" / "values.yaml").read_text())
    authorization = values["config"]["merge"]["authorization"]
    secret = by_kind("Secret")["fairway-nats"]
    assert authorization["user"] == secret["stringData"]["FAIRWAY_NATS_USER"]
    assert values["config"]["jetstream"]["enabled"] is True


def test_the_bus_is_bootstrapped_by_a_job():
    job = by_kind("Job")["fairway-bus-bootstrap"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "fairway_bus.bootstrap"]
    config = by_kind("ConfigMap")["fairway-config"]["data"]
    assert config["FAIRWAY_STREAM_REPLICAS"] == "3"  # production NATS: three replicas


def test_reservation_pods_may_only_annotate_themselves_in_fairway():
    """GPU fractions: the reservation pods' account reads and patches pods of its namespace,
    and lifecycle makes them there, from the image it is told."""
    [rule] = by_kind("Role")["fairway-reservation"]["rules"]
    assert rule == {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]}
    binding = by_kind("RoleBinding")["fairway-reservation"]
    assert binding["subjects"][0]["name"] == "fairway-reservation"
    [container] = by_kind("Deployment")["lifecycle"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FAIRWAY_LIFECYCLE_RESERVATION_NAMESPACE"] == "fairway"
    assert env["FAIRWAY_LIFECYCLE_RESERVATION_IMAGE"]


class _NoDuplicateKeys(yaml.SafeLoader):
    """YAML keeps the last of two equal keys without a word; Kubernetes would then apply half
    of what the file says."""


def _mapping(loader: _NoDuplicateKeys, node: yaml.MappingNode, deep: bool = False) -> dict:
    keys = [loader.construct_object(key, deep=deep) for key, _ in node.value
            if key.tag != "tag:yaml.org,2002:merge"]  # `<<: *anchor` merges, it repeats nothing
    twice = {key for key in keys if keys.count(key) > 1}
    if twice:
        raise yaml.constructor.ConstructorError(
            None, None, f"key {sorted(twice)} given twice", node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_NoDuplicateKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def test_no_manifest_gives_a_key_twice():
    paths = [*sorted(DEPLOY.rglob("*.yaml")), *sorted(DEPLOY.rglob("*.yml")),
             DEPLOY.parent / "compose.yaml"]
    for path in paths:
        list(yaml.load_all(path.read_text(), Loader=_NoDuplicateKeys))  # raises on a repeat
    with pytest.raises(yaml.constructor.ConstructorError, match="given twice"):
        yaml.load("a: 1\nb: 2\na: 3\n", Loader=_NoDuplicateKeys)
