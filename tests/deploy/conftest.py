"""Deployment artefacts (Dockerfile, compose.yaml, deploy/) are validated, not run: there is no
container engine or cluster here."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = ("submission", "policy", "scheduler", "lifecycle", "metrics")


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
