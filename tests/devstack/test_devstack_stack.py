"""Stack wiring, with fakes standing in for kubesim, the bus bootstrap and the services
(tests/devstack/fakes): start order, environment, readiness, stack.json, restart, kill, stop,
failure reports and leftovers of a killed run. The real end-to-end tests live elsewhere."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from fairway_devstack.servers import free_port
from fairway_devstack.stack import SERVICES, Stack, StackConfig, StackError, read_stack_info


def fake_record(state: Path, name: str) -> dict:
    return json.loads((state / f"fake-{name}.json").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def accepts(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def config(tmp_path, fakes_env):
    return StackConfig(
        state_dir=tmp_path / ".fairway",
        api_port=0,
        fast_storage=True,
        kubesim_profile="tiny",
        kubesim_args=("--admin",),
        env=fakes_env,
        startup_timeout=60,
    )


def test_stack_starts_wires_restarts_and_stops(config, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("FAIRWAY_HTTP_PORT", "1")  # the caller's value must not leak through
    state = config.state_dir.absolute()
    lines: list[str] = []

    with Stack(config, progress=lines.append) as stack:
        assert httpx.get(f"{stack.api_url}/healthz", trust_env=False).status_code == 200
        assert [line.split()[0] for line in lines] == [
            "NATS", "PostgreSQL", "Kubernetes", "Bus", "API",
        ]  # fmt: skip

        info = json.loads((state / "stack.json").read_text())
        assert read_stack_info(state) == info
        assert oct((state / "stack.json").stat().st_mode & 0o777) == "0o600"
        assert info["state"] == "running"
        assert info["api_url"] == stack.api_url
        assert info["admin_token_file"] == str(state / "admin-token")
        assert set(info["processes"]) == {"nats", "postgres", "kubesim", *SERVICES}
        assert info["processes"]["submission"]["port"] == stack.api_port

        kubesim = fake_record(state, "kubesim")
        assert kubesim["argv"][1:] == [
            "--profile", "tiny", "--kubeconfig", str(state / "kubeconfig"),
            "--port", str(info["processes"]["kubesim"]["port"]),
            "--snapshot", str(state / "kubesim" / "cluster.json"), "--admin",
        ]  # fmt: skip
        assert fake_record(state, "bootstrap")["env"]["NATS_URL"] == stack.nats_url

        for name in SERVICES:
            env = fake_record(state, name)["env"]
            assert env["NATS_URL"] == stack.nats_url
            assert env["DATABASE_URL"] == stack.database_url
            assert env["KUBECONFIG"] == str(state / "kubeconfig")
            assert env["FAIRWAY_STATE_DIR"] == str(state)
            assert env["FAIRWAY_HTTP_PORT"] == str(info["processes"][name]["port"])
            assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
            assert ("FAIRWAY_API_PORT" in env) == (name == "submission")
            assert (state / "logs" / f"{name}.log").read_text().count("serving on") == 1
        assert fake_record(state, "submission")["env"]["FAIRWAY_API_PORT"] == str(stack.api_port)

        old = stack.pid("scheduler")
        stack.restart_service("scheduler")
        assert stack.pid("scheduler") not in (None, old)
        assert not alive(old)
        assert "scheduler got SIGTERM" in stack.log_path("scheduler").read_text()
        assert read_stack_info(state)["processes"]["scheduler"]["pid"] == stack.pid("scheduler")

        assert stack.kill_service("policy") == -signal.SIGKILL
        assert stack.pid("policy") is None
        with pytest.raises(StackError, match="policy was killed by signal SIGKILL"):
            stack.check_processes()
        assert stack.kill_service("metrics", signal.SIGTERM) == 0  # the fake exits 0 on SIGTERM
        stack.restart_service("policy")  # metrics is still down: waits for policy alone
        stack.restart_service("metrics")
        stack.check_processes()

        stack.restart_service("submission")
        assert httpx.get(f"{stack.api_url}/healthz", trust_env=False).status_code == 200

        pids = [p["pid"] for p in read_stack_info(state)["processes"].values()]
        urls = [stack.nats_url, stack.database_url]

    assert not any(alive(pid) for pid in pids)
    assert not any(accepts(url) for url in urls)
    assert not (state / "stack.json").exists()
    assert read_stack_info(state) is None


def test_a_service_that_exits_is_named_with_its_log(config):
    config.env["FAKE_FAIL"] = "lifecycle"
    state = config.state_dir.absolute()
    stack = Stack(config)
    with pytest.raises(StackError, match="lifecycle exited with code 3") as failure:
        stack.start()
    assert "boom lifecycle" in str(failure.value)
    assert str(state / "logs" / "lifecycle.log") in str(failure.value)
    pids = [fake_record(state, n)["pid"] for n in ("kubesim", "submission", "metrics")]
    assert not any(alive(pid) for pid in pids), "everything started is stopped again"
    assert not (state / "stack.json").exists()


def test_a_failing_bootstrap_stops_the_start(config):
    config.env["FAKE_FAIL"] = "bootstrap"
    with pytest.raises(StackError, match=r"bus bootstrap exited with code 3(.|\n)*boom bootstrap"):
        Stack(config).start()
    assert not (config.state_dir / "logs" / "submission.log").exists()


def test_a_busy_api_port_is_reported_before_anything_starts(config):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config.api_port = busy.getsockname()[1]
        with pytest.raises(StackError, match="FAIRWAY_API_PORT"):
            Stack(config).start()
    assert not (config.state_dir / "nats").exists()


def test_external_endpoints_replace_the_embedded_servers(config, tmp_path):
    from fairway_devstack.servers import EmbeddedNats

    kubeconfig = tmp_path / "external-kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    with EmbeddedNats(tmp_path / "external-nats") as nats_server:
        config.nats_url = nats_server.url
        config.database_url = "postgresql://someone@db.example:5432/fairway"
        config.kubeconfig = str(kubeconfig)
        with Stack(config) as stack:
            env = fake_record(stack.state_dir, "scheduler")["env"]
            assert env["NATS_URL"] == nats_server.url
            assert env["DATABASE_URL"] == "postgresql://someone@db.example:5432/fairway"
            assert env["KUBECONFIG"] == str(kubeconfig)
            assert set(stack.info()["processes"]) == set(SERVICES)
            assert not (stack.state_dir / "postgres").exists()


def test_config_from_env():
    config = StackConfig.from_env(
        {
            "FAIRWAY_API_PORT": "9090",
            "NATS_URL": "nats://n:4222",
            "DATABASE_URL": "postgresql://d/x",
            "KUBECONFIG": "/k",
            "FAIRWAY_STATE_DIR": "/tmp/s",
        },
        fast_storage=True,
    )
    assert (config.api_port, config.nats_url, config.database_url) == (
        9090, "nats://n:4222", "postgresql://d/x",
    )  # fmt: skip
    assert (config.kubeconfig, config.state_dir, config.fast_storage) == (
        "/k",
        Path("/tmp/s"),
        True,
    )
    assert StackConfig.from_env({}) == StackConfig()
    with pytest.raises(StackError, match="FAIRWAY_API_PORT"):
        StackConfig.from_env({"FAIRWAY_API_PORT": "http"})


def test_a_running_stack_is_not_shared_and_leftovers_of_a_killed_one_are_cleared(config, dead_pid):
    state = config.state_dir.absolute()
    first = Stack(config).start()
    try:
        with pytest.raises(StackError, match="already running"):
            Stack(config).start()

        # Now pretend the process that ran `first` was killed: its children keep running.
        info = json.loads((state / "stack.json").read_text())
        info["pid"] = dead_pid
        (state / "stack.json").write_text(json.dumps(info))
        orphans = [p["pid"] for p in info["processes"].values()]
        assert read_stack_info(state) is None

        with Stack(config) as second:
            assert not any(alive(pid) for pid in orphans)
            assert httpx.get(f"{second.api_url}/healthz", trust_env=False).status_code == 200
    finally:
        first.stop()


def test_up_runs_in_the_background_and_stops_on_sigterm(tmp_path, fakes_env):
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env |= fakes_env | {
        "FAIRWAY_STATE_DIR": str(state),
        "FAIRWAY_API_PORT": str(free_port()),
        "FAIRWAY_KUBESIM_PROFILE": "tiny",
    }
    env.pop("KUBECONFIG", None)
    # PYTHONPATH (the fakes) reaches the children because they inherit up's environment.
    for run in (1, 2):
        up = subprocess.Popen(
            [sys.executable, "-m", "fairway_devstack.up"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        # Up says it is running once the stack is up and its node pools are registered: wait
        # for that line (the stack file says "running" a moment earlier).
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(up.stdout,), daemon=True)
        reader.start()
        while not any("Fairway is running" in line for line in lines):
            assert up.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, f"fairway up did not come up: {''.join(lines)}"
            time.sleep(0.2)
        info = read_stack_info(state)
        assert info is not None and info["state"] == "running", info
        pids = [p["pid"] for p in info["processes"].values()]
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
        reader.join(timeout=10)
        output = "".join(lines)
        assert up.returncode == 0, output
        assert "Fairway is running" in output
        assert f"http://127.0.0.1:{env['FAIRWAY_API_PORT']}" in output
        assert "admin-token" in output
        assert "fairway submit training hello --project default --gpu 1" in output
        assert "Stopped." in output
        assert not any(alive(pid) for pid in pids)
        postgres_log = (state / "logs" / "postgres.log").read_text()
        assert postgres_log.count("database system is ready") == run, "data is reused"
    assert (state / "postgres" / "PG_VERSION").exists()


def supervise_until(stack: Stack, done, timeout: float = 30.0) -> list[str]:
    said: list[str] = []
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not healed; the supervisor said {said}"
        said += stack.supervise()
        time.sleep(0.1)
    return said


def test_the_supervisor_restarts_what_died_where_it_was(config):
    """kill -9 of a service, kubesim, NATS and PostgreSQL: each comes back on its own port,
    the stack goes on; a process that keeps dying waits longer each time."""
    state = config.state_dir.absolute()
    with Stack(config) as stack:
        before = stack.info()["processes"]
        for name in ("scheduler", "kubesim"):
            old = stack.pid(name)
            os.kill(old, signal.SIGKILL)
            said = supervise_until(stack, lambda n=name, o=old: stack.pid(n) not in (None, o))
            assert any(f"{name} exited (killed by SIGKILL)" in line for line in said), said
            assert any(f"{name} restarted" in line for line in said), said
        os.kill(before["nats"]["pid"], signal.SIGKILL)
        os.kill(before["postgres"]["pid"], signal.SIGKILL)
        supervise_until(stack, lambda: stack.info()["processes"]["nats"]["pid"]
                        not in (None, before["nats"]["pid"])
                        and stack.info()["processes"]["postgres"]["pid"]
                        not in (None, before["postgres"]["pid"]), timeout=60)
        after = stack.info()["processes"]
        for name in ("nats", "postgres", "kubesim", "scheduler"):
            assert after[name]["port"] == before[name]["port"], name
        assert accepts(stack.nats_url) and accepts(stack.database_url.replace(
            "postgresql://postgres@", "http://"))
        log = (state / "logs" / "supervisor.log").read_text()
        assert "nats restarted" in log and "postgres restarted" in log
        # crashing again and again: the pause doubles (0.5, 1, 2 ... s)
        pauses = []
        for _ in range(3):
            old = stack.pid("metrics")
            os.kill(old, signal.SIGKILL)
            said = supervise_until(stack, lambda o=old: stack.pid("metrics") not in (None, o))
            pauses += [float(line.split("restarting in ")[1].split(" s")[0])
                       for line in said if "restarting in" in line]
        assert pauses == sorted(pauses) and pauses[-1] >= 2 * pauses[0], pauses
