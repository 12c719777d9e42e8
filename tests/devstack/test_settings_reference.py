"""The configuration reference in docs/operations.md is the one the settings classes give, every
setting is described, and the naming scheme holds (FAIRWAY_<SERVICE>_* for one service's own,
old names still read as deprecated aliases)."""

import re
from pathlib import Path

import pytest

from fairway_devstack import settings_reference
from fairway_devstack.settings_reference import END, SECTIONS, START, own_fields, render
from fairway_lifecycle.settings import LifecycleSettings
from fairway_runtime.settings import ServiceSettings, variable_of, variables
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
