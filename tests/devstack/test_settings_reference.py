"""The configuration reference in docs/operations.md is the one the settings classes give, every
setting is described, and the naming scheme holds (FAIRWAY_<SERVICE>_* for one service's own,
old names still read as deprecated aliases)."""

import re
from pathlib import Path

import pytest

from fairway_bus.bootstrap import BootstrapSettings, stream_config
from fairway_contracts.streams import STREAMS
from fairway_devstack import settings_reference
from fairway_devstack.settings_reference import END, SECTIONS, START, own_fields, render
from fairway_lifecycle.settings import LifecycleSettings
from fairway_runtime.settings import ServiceSettings, variable_of, variables
from fairway_scheduler.settings import SchedulerSettings
from fairway_submission.settings import SubmissionSettings

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "operations.md"
# The names the README documents for users: they never change.
USER_FACING = {"NATS_URL", "DATABASE_URL", "KUBECONFIG", "FAIRWAY_API_PORT", "FAIRWAY_STATE_DIR",
               "OTEL_EXPORTER_OTLP_ENDPOINT", "FAIRWAY_LOG_LEVEL"}
SERVICES = ("submission", "policy", "scheduler", "lifecycle", "metrics")


def test_the_committed_reference_is_the_generated_one():
    document = DOCUMENT.read_text()
    start, end = document.index(START), document.index(END) + len(END)
    assert document[start:end] == render(), (
        "docs/operations.md's configuration reference is out of date: run `make settings-doc`")
    assert settings_reference.main([str(DOCUMENT), "--check"]) == 0


def test_every_setting_has_a_description():
    assert settings_reference.undescribed() == []


def test_a_setting_without_a_description_fails_the_reference(monkeypatch):
    class Undescribed(ServiceSettings):
        knob: int = 1

    monkeypatch.setattr(settings_reference, "SECTIONS",
                        (*SECTIONS, ("undescribed", Undescribed, "")))
    assert settings_reference.undescribed() == ["Undescribed.knob"]
    with pytest.raises(ValueError, match=r"Undescribed\.knob"):
        render()


def test_check_fails_on_a_stale_reference(tmp_path):
    stale = tmp_path / "operations.md"
    stale.write_text(f"# Operations\n\n{START}\nold table\n{END}\n\nmore\n")
    assert settings_reference.main([str(stale), "--check"]) == 1
    assert settings_reference.main([str(stale)]) == 0
    assert settings_reference.main([str(stale), "--check"]) == 0
    text = stale.read_text()
    assert text.startswith("# Operations\n\n") and text.endswith("\n\nmore\n")
    assert "FAIRWAY_LIFECYCLE_EVICTION_GRACE_SECONDS" in text


def test_one_naming_scheme():
    pattern = re.compile(r"FAIRWAY_[A-Z0-9_]+|OTEL_[A-Z_]+|KUBERNETES_SERVICE_HOST")
    for variable in variables(ServiceSettings).values():
        assert pattern.fullmatch(variable.name) or variable.name in USER_FACING, variable
    for heading, settings, _ in SECTIONS:
        if heading not in SERVICES:
            continue
        for name, field in own_fields(settings).items():
            variable = variable_of(name, field)
            own = f"FAIRWAY_{heading.upper()}_"
            assert (variable.name.startswith(own) or variable.name in USER_FACING
                    or variable.name == "KUBERNETES_SERVICE_HOST"), variable


def test_the_user_facing_names_of_the_readme_are_read():
    names = {v.name for _, s, _ in SECTIONS for v in variables(s).values()}
    assert names >= USER_FACING
    readme = (ROOT / "README.md").read_text()
    for name in USER_FACING:
        assert f"`{name}`" in readme


def test_old_names_are_still_read_and_warn(monkeypatch):
    monkeypatch.setenv("FAIRWAY_EVICTION_GRACE_SECONDS", "3")
    with pytest.warns(FutureWarning, match="FAIRWAY_LIFECYCLE_EVICTION_GRACE_SECONDS"):
        assert LifecycleSettings().eviction_grace_seconds == 3
    monkeypatch.setenv("FAIRWAY_LIFECYCLE_EVICTION_GRACE_SECONDS", "7")
    with pytest.warns(FutureWarning):
        assert LifecycleSettings().eviction_grace_seconds == 7  # the new name wins
    with pytest.warns(FutureWarning, match="FAIRWAY_SUBMISSION_TOKEN_SECRET"):
        assert SubmissionSettings(FAIRWAY_TOKEN_SECRET="s").token_secret == "s"


def test_every_renamed_setting_lists_its_old_name_in_the_reference():
    reference = render()
    for _, settings, _ in SECTIONS:
        for variable in variables(settings).values():
            for old in variable.deprecated:
                assert f"`{old}`" in reference


# Reads of the environment outside a settings class, each with its reason.
ENVIRONMENT_READERS = {
    # the warning for deprecated names looks at the environment the settings were read from
    "libs/runtime/fairway_runtime/settings.py",
}


def test_services_and_libraries_read_the_environment_only_through_settings():
    readers = set()
    for root in ("services", "libs"):
        for path in (ROOT / root).rglob("*.py"):
            text = path.read_text()
            if re.search(r"os\.environ|getenv\(", text):
                readers.add(str(path.relative_to(ROOT)))
    assert readers <= ENVIRONMENT_READERS, readers - ENVIRONMENT_READERS


@pytest.mark.parametrize(("env", "exporting"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318", "OTEL_SDK_DISABLED": "1"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318", "OTEL_TRACES_EXPORTER": "none"},
     False),
])
def test_tracing_options_follow_the_standard_variables(monkeypatch, env, exporting):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER",
                 "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert ServiceSettings().tracing().exporting is exporting


def test_the_service_name_and_sampler_come_from_the_standard_variables(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "fairway-api")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    options = ServiceSettings().tracing()
    assert options.service_name == "fairway-api" and options.sampler_from_environment


def test_the_bus_bootstrap_takes_its_replicas_from_its_settings(monkeypatch):
    monkeypatch.setenv("FAIRWAY_STREAM_REPLICAS", "3")
    replicas = BootstrapSettings().stream_replicas
    assert replicas == 3
    assert stream_config(STREAMS[0], replicas).num_replicas == 3


def test_the_scheduler_elects_a_leader_in_a_cluster_by_its_settings(monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("FAIRWAY_SCHEDULER_LEADER_ELECTION", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert not SchedulerSettings().elect_leader()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert SchedulerSettings().elect_leader()
