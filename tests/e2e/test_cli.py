"""The `fairway` CLI against the running stack: the README's tour, in a test."""

import time

import pytest
from typer.testing import CliRunner

from fairway_cli.main import app

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(stack, monkeypatch):
    monkeypatch.setenv("FAIRWAY_STATE_DIR", str(stack.state_dir))
    monkeypatch.delenv("FAIRWAY_API_URL", raising=False)
    monkeypatch.delenv("FAIRWAY_TOKEN", raising=False)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output

    return run


def test_submit_list_and_describe_a_training(cli):
    out = cli("submit", "training", "cli-tour", "--project", "default", "--gpu", "1",
              "--image", "busybox", "--annotation", "sim.fairway.io/run-seconds=1")
    assert "cli-tour" in out
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listing = cli("list")
        line = next(ln for ln in listing.splitlines() if "cli-tour" in ln)
        if "Completed" in line:
            break
        time.sleep(0.5)
    assert "Completed" in line
    described = cli("describe", "cli-tour")
    for phase in ("Creating", "Pending", "Initializing", "Running", "Completed"):
        assert phase in described
    assert "Kubernetes events" in described  # what the cluster recorded about its pod
    for reason in ("Scheduled", "Pulled", "Started"):
        assert reason in described


def test_cli_errors_name_the_problem(stack, monkeypatch):
    monkeypatch.setenv("FAIRWAY_STATE_DIR", str(stack.state_dir))
    result = CliRunner().invoke(app, ["submit", "training", "x", "--project", "nope",
                                      "--image", "busybox"])
    assert result.exit_code == 1
    assert "no project 'nope'" in result.output
    result = CliRunner().invoke(app, ["submit", "training", "x", "--project", "default",
                                      "--image", "busybox", "--annotation", "novalue"])
    assert result.exit_code == 1
    assert "NAME=VALUE" in result.output
