"""compose.yaml against the Compose Specification's JSON schema, and against the repository:
every file it mounts exists, every module it runs is importable, services start in order."""

import importlib.util
import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from fairway_bus.bootstrap import BootstrapSettings
from fairway_runtime.settings import variables
from tests.deploy.conftest import ROOT, SERVICES
from tests.deploy.test_kubernetes import SETTINGS

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "compose-spec.json").read_text())
# The vendored schema spells its $schema in a way jsonschema does not recognise: say it.
Validator = jsonschema.Draft201909Validator


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())  # merge keys (<<) resolved


def schema_errors(document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in Validator(SCHEMA).iter_errors(document)]


def test_the_vendored_schema_is_a_valid_schema():
    Validator.check_schema(SCHEMA)


def test_compose_file_follows_the_compose_specification(compose):
    assert schema_errors(compose) == []


def test_the_schema_check_catches_mistakes(compose):
    broken = json.loads(json.dumps(compose))
    broken["services"]["policy"]["comand"] = broken["services"]["policy"].pop("command")
    broken["services"]["scheduler"]["depends_on"]["kubesim"]["condition"] = "service_ready"
    errors = schema_errors(broken)
    assert any("comand" in e for e in errors), errors
    assert any("service_ready" in e for e in errors), errors


def test_every_part_of_the_platform_runs(compose):
    assert set(compose["services"]) == {
        "nats-1", "nats-2", "nats-3", "postgres", "jaeger", "prometheus", "grafana", "kubesim",
        "bootstrap", *SERVICES}
    for name in ("nats-1", "nats-2", "nats-3"):
        assert "--jetstream" in compose["services"][name]["command"]


def test_nats_runs_as_one_cluster_and_streams_keep_three_copies(compose):
    servers = {name: compose["services"][name]["command"]
               for name in ("nats-1", "nats-2", "nats-3")}
    for name, command in servers.items():
        assert command[command.index("--server_name") + 1] == name
        assert command[command.index("--cluster_name") + 1] == "fairway"
        routes = command[command.index("--routes") + 1].split(",")
        assert routes == [f"nats://{other}:6222" for other in servers]
    urls = compose["services"]["submission"]["environment"]["NATS_URL"].split(",")
    assert urls == [f"nats://{name}:4222" for name in servers]
    assert compose["services"]["bootstrap"]["environment"]["FAIRWAY_STREAM_REPLICAS"] == "3"


def test_fairway_containers_run_real_modules_from_the_one_image(compose):
    for name, service in compose["services"].items():
        if service.get("image") != "fairway:latest":
            continue
        assert service["build"] == "."
        command = service["command"]
        assert command[:2] == ["python", "-m"], name
        assert importlib.util.find_spec(command[2]) is not None, f"{name}: {command[2]}"


def test_services_start_after_the_bootstrap_and_their_dependencies(compose):
    services = compose["services"]
    assert services["bootstrap"]["command"] == ["python", "-m", "fairway_bus.bootstrap"]
    assert services["bootstrap"]["depends_on"] == {
        name: {"condition": "service_healthy"} for name in ("nats-1", "nats-2", "nats-3")}
    for name in SERVICES:
        depends = services[name]["depends_on"]
        assert depends["bootstrap"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert "healthcheck" in services[name], name
        assert services[name]["environment"]["NATS_URL"] == (
            "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222")
    for name in ("lifecycle", "scheduler"):
        assert services[name]["depends_on"]["kubesim"] == {"condition": "service_healthy"}
    # The scheduler runs active/standby, as in a cluster.
    assert services["scheduler"]["deploy"]["replicas"] == 2
    assert services["scheduler"]["environment"]["FAIRWAY_SCHEDULER_LEADER_ELECTION"] == "on"


def test_every_setting_given_is_one_a_container_reads(compose):
    """Current names only (a renamed variable's old name would still work, but warn). The
    common environment goes to every Fairway container, so each of its variables must be read
    by one of them; what a container is given beyond it, by that container."""
    readers = {**SETTINGS, "bootstrap": BootstrapSettings}
    reads = {name: {variable.name for variable in variables(settings).values()}
             for name, settings in readers.items()}
    anyone = set().union(*reads.values())
    common = set(compose["x-fairway"]["environment"])
    assert common <= anyone, f"settings no container reads: {common - anyone}"
    for name in readers:
        given = set(compose["services"][name].get("environment") or {}) - common
        assert given <= reads[name], f"{name} is given settings it does not read: {given}"


def test_every_mounted_file_is_in_the_repository(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_the_kubeconfig_the_containers_use_names_kubesim_by_its_service_name():
    config = yaml.safe_load((ROOT / "deploy/compose/kubeconfig-kubesim.yaml").read_text())
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"] == "http://kubesim:6443"


def test_the_dockerfile_builds_a_small_image_that_runs_without_privileges():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, re.MULTILINE)
    assert len(stages) >= 2, "a build stage and a run stage"
    run_stage = text[text.rindex("\nFROM "):]
    assert "uv" not in re.sub(r"#.*", "", run_stage).split("COPY --from=build")[0].lower()
    user = re.findall(r"^USER\s+(\S+)", run_stage, re.MULTILINE)
    assert user and not user[-1].startswith(("0", "root")), user
    assert "uv sync --frozen --no-dev" in text
    # Every package the image installs is a member of the workspace.
    packages = re.findall(r"--package (\S+)", text)
    members = {tomllib.loads((p / "pyproject.toml").read_text())["project"]["name"]
               for p in ROOT.glob("*/*") if (p / "pyproject.toml").exists()}
    assert packages and set(packages) <= members, set(packages) - members


def test_the_build_context_leaves_local_state_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "**" in ignored  # everything out, then only what the build needs back in
    assert {"!pyproject.toml", "!uv.lock", "!libs/", "!services/", "!tools/"} <= set(ignored)
    assert "**/.venv" in ignored


def test_nats_requires_credentials_and_every_fairway_container_has_them(compose):
    nats = compose["services"]["nats-1"]["command"]
    user, password = nats[nats.index("--user") + 1], nats[nats.index("--pass") + 1]
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        if "NATS_URL" in env:
            assert (env.get("FAIRWAY_NATS_USER"), env.get("FAIRWAY_NATS_PASSWORD")) == (
                user, password), name
