"""Starting kubesim: inside a running loop, from a kubeconfig, and from the command line."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
import yaml
from kubernetes import client, config
from typer.testing import CliRunner

from fairway_kubesim import KubeSim, write_kubeconfig
from fairway_kubesim.cli import app

from .conftest import make_pod


async def test_kubesim_runs_inside_the_test_loop(tmp_path: Path) -> None:
    profile = {"nodes": [{"name": "n{1..3}", "gpus": 2, "gpuMemoryMiB": 24576}],
               "timings": {"pullSeconds": 0.05, "startSeconds": 0.05, "jitter": 0}}
    async with KubeSim(profile, port=0) as sim:
        assert sim.url.startswith("http://127.0.0.1:") and sim.port
        path = write_kubeconfig(tmp_path / "kubeconfig", sim.url, token=None)
        # load_kube_config must accept a plain-http server and a user without credentials.
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(path), client_configuration=configuration)
        assert configuration.host == sim.url
        api = client.CoreV1Api(client.ApiClient(configuration))
        nodes = await asyncio.to_thread(api.list_node)
        assert [n.metadata.name for n in nodes.items] == ["n1", "n2", "n3"]
        assert nodes.items[0].metadata.labels["nvidia.com/gpu.product"] == \
            "NVIDIA-Simulated-GPU"
        await asyncio.to_thread(api.create_namespaced_pod, "default",
                                make_pod("p", node_name="n2"))
        for _ in range(200):
            pod = await asyncio.to_thread(api.read_namespaced_pod, "p", "default")
            if pod.status.phase == "Running":
                break
            await asyncio.sleep(0.02)
        assert pod.status.phase == "Running"
        stored = sim.store["pods"].get("default", "p")
        assert stored is not None and stored.obj["status"]["phase"] == "Running"
    assert sim._runner is None


def test_kubeconfig_shape(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "sub" / "kc", "http://127.0.0.1:1234")
    doc = yaml.safe_load(path.read_text())
    assert doc["clusters"][0]["cluster"]["server"] == "http://127.0.0.1:1234"
    assert doc["users"][0]["user"] == {"token": "kubesim"}
    assert doc["current-context"] == "kubesim"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_until_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    profile = tmp_path / "profile.yaml"
    profile.write_text("cluster:\n  nodes:\n    - {name: 'g-{1..2}', gpus: 1}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fairway_kubesim", "--profile", str(profile),
         "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 15
        while not kubeconfig.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no kubeconfig"
            time.sleep(0.05)
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        assert [n.metadata.name for n in api.list_node().items] == ["g-1", "g-2"]
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    assert f"kubesim: listening on {server}" in stderr
    assert str(kubeconfig) in stderr and "Traceback" not in stderr


def test_cli_rejects_a_bad_profile(tmp_path: Path) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text("nodes: [{name: a, gpus: -2}]\n")
    result = CliRunner().invoke(app, ["--profile", str(profile), "--kubeconfig",
                                      str(tmp_path / "kc")])
    assert result.exit_code == 2
    assert "gpus: must be non-negative" in result.output
    assert not (tmp_path / "kc").exists()


def test_the_app_mounts_as_a_subcommand() -> None:
    parent = typer.Typer()

    @parent.command()
    def other() -> None:  # a parent app has commands of its own
        pass

    parent.add_typer(app, name="kubesim")
    result = CliRunner().invoke(parent, ["kubesim", "--help"])
    assert result.exit_code == 0
    assert "--kubeconfig" in result.output and "--profile" in result.output
