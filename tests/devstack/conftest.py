"""Fixtures for the devstack tests."""

import os
import subprocess
from pathlib import Path

import pytest

FAKES = Path(__file__).parent / "fakes"


@pytest.fixture
def fakes_env() -> dict[str, str]:
    """Environment that makes the stack's children the fakes in tests/devstack/fakes."""
    pythonpath = os.pathsep.join(p for p in (str(FAKES), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": pythonpath}


@pytest.fixture
def bystander():
    """A process that has nothing to do with us (its pid ends up in stale pid files)."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid() -> int:
    """A pid that no longer runs."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
