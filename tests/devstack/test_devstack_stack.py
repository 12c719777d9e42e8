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
from fairway_devstack.stack import (
    SERVICES,
    RestartPolicy,
    Stack,
    StackConfig,
    StackError,
    read_stack_info,
)


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
            "--snapshot", str(state / "kubesim" / "cluster.json"), "--default-scheduler",
            "--admin",
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
    # On a busy machine a service started just before the failure may not have written its
    # record yet: check every one that did (kubesim, started first, always has).
    started = [n for n in ("kubesim", "submission", "metrics")
               if (state / f"fake-{n}.json").exists()]
    assert "kubesim" in started
    pids = [fake_record(state, n)["pid"] for n in started]
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
    assert StackConfig.from_env({"FAIRWAY_NATS_REPLICAS": "3"}).nats_replicas == 3
    assert StackConfig().kubesim_default_scheduler  # on unless turned off
    assert not StackConfig.from_env(
        {"FAIRWAY_KUBESIM_DEFAULT_SCHEDULER": "false"}).kubesim_default_scheduler
    with pytest.raises(StackError, match="FAIRWAY_KUBESIM_DEFAULT_SCHEDULER"):
        StackConfig.from_env({"FAIRWAY_KUBESIM_DEFAULT_SCHEDULER": "maybe"})
    replicated = StackConfig.from_env({"FAIRWAY_REPLICAS": "submission=2, scheduler=2"})
    assert replicated.replicas == {"submission": 2, "scheduler": 2}
    assert Stack(replicated).processes() == [
        "submission", "submission-2", "policy", "scheduler", "scheduler-2", "lifecycle",
        "metrics"]
    every = StackConfig.from_env({"FAIRWAY_REPLICAS": "lifecycle=3,metrics=2"})
    assert Stack(every).processes() == [
        "submission", "policy", "scheduler", "lifecycle", "lifecycle-2", "lifecycle-3",
        "metrics", "metrics-2"]
    for wrong, reason in (("lifecycle=0", "a count from 1 to 9"), ("api=2", "not a service"),
                          ("policy=x", "a count from 1 to 9")):
        with pytest.raises(StackError, match=reason):
            StackConfig.from_env({"FAIRWAY_REPLICAS": wrong})
    for wrong in ("2", "three", "0"):  # a cluster needs a majority: 1, 3 or 5 servers
        with pytest.raises(StackError, match="FAIRWAY_NATS_REPLICAS must be 1, 3 or 5"):
            StackConfig.from_env({"FAIRWAY_NATS_REPLICAS": wrong})


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


def test_a_stack_still_starting_is_not_shared_either(config):
    refusals: list[str] = []

    def second_start(line: str) -> None:
        if line.startswith("NATS"):  # the first stack has only just started NATS
            second = Stack(config)
            try:
                with pytest.raises(StackError, match="already running") as refused:
                    second.start()
            finally:
                second.stop()  # whatever it started, should it have started
            refusals.append(str(refused.value))

    with Stack(config, progress=second_start) as first:
        assert first.nats_url is not None and accepts(first.nats_url), "its NATS was left alone"
    assert len(refusals) == 1
    assert f"pid {os.getpid()}" in refusals[0] and first.api_url in refusals[0]


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
        assert f"http://127.0.0.1:{env['FAIRWAY_API_PORT']}/   (sign in as admin" in output
        assert "fairway submit training hello --project default --gpu 1" in output
        assert "Stopped." in output
        assert not any(alive(pid) for pid in pids)
        postgres_log = (state / "logs" / "postgres.log").read_text()
        assert postgres_log.count("database system is ready") == run, "data is reused"
    assert (state / "postgres" / "PG_VERSION").exists()


def heal_until(stack: Stack, done, timeout: float = 60.0) -> list:
    """Run the supervisor's rounds (as `fairway up` does) until `done()`; the events seen."""
    events = []
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not healed; events: {events}"
        events += stack.supervise()
        time.sleep(0.05)
    return events


def test_the_stack_heals_a_crashed_service_kubesim_nats_and_postgres(config):
    config.restart_policy = RestartPolicy(first_delay=0.1, max_delay=0.4)
    state = config.state_dir.absolute()
    with Stack(config) as stack:
        ports = {name: p["port"] for name, p in stack.info()["processes"].items()}
        for name in ("policy", "kubesim", "nats", "postgres"):
            pids = {n: p["pid"] for n, p in stack.info()["processes"].items()}
            os.kill(pids[name], signal.SIGKILL)

            events = heal_until(
                stack, lambda n=name, old=pids[name]: stack.info()["processes"][n]["pid"] != old
            )

            assert f"{name if name != 'nats' else 'nats-server'} was killed by signal SIGKILL" in (
                events[0].text
            ), events
            assert events[-1].text.startswith(f"{name} restarted"), events
            after = stack.info()["processes"]
            assert {n: p["port"] for n, p in after.items()} == ports, "same ports after restart"
            others = {n: p["pid"] for n, p in after.items() if n != name}
            assert others == {n: pid for n, pid in pids.items() if n != name}, (
                "nothing else is restarted: kubesim keeps its cluster when a service dies"
            )
            assert read_stack_info(state)["processes"][name]["pid"] == after[name]["pid"]
        heal_until(stack, lambda: accepts(stack.nats_url) and accepts(stack.database_url))
        stack.wait_ready(30)
        assert fake_record(state, "kubesim")["argv"].count("--snapshot") == 1
        log = (state / "logs" / "supervisor.log").read_text()
        for name in ("policy", "kubesim", "nats", "postgres"):
            assert f"{name} restarted" in log


def test_a_process_that_keeps_crashing_is_reported_loudly_and_still_retried(config):
    config.restart_policy = RestartPolicy(
        first_delay=0.05, max_delay=0.2, crash_loop_crashes=3, crash_loop_window=60
    )
    with Stack(config) as stack:
        stack.config.env["FAKE_FAIL"] = "metrics"  # from now on metrics exits at once
        os.kill(stack.pid("metrics"), signal.SIGKILL)
        events: list = []
        deadline = time.monotonic() + 30
        while sum(e.text.startswith("metrics restarted") for e in events) < 4:
            assert time.monotonic() < deadline, events
            events += stack.supervise()
            time.sleep(0.02)
        crashes = [e for e in events if "exited with code 3" in e.text or "SIGKILL" in e.text]
        assert [e.loud for e in crashes[:3]] == [False, False, True]
        assert "metrics KEEPS CRASHING: 3 times" in crashes[2].text
        assert "boom metrics" in crashes[2].text, "its last lines are shown"
        assert "restarting in 0.2s" in crashes[-1].text, "capped, still retried"
        assert "CRASH LOOP" in (config.state_dir / "logs" / "supervisor.log").read_text()


def test_a_service_stopped_on_purpose_stays_down(config):
    config.restart_policy = RestartPolicy(first_delay=0.01)
    with Stack(config) as stack:
        stack.kill_service("policy")
        for _ in range(5):
            assert stack.supervise() == []
            time.sleep(0.05)
        assert stack.pid("policy") is None


def test_up_heals_a_killed_service_and_a_second_up_on_its_state_dir_is_refused(
    tmp_path, fakes_env
):
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env |= fakes_env | {
        "FAIRWAY_STATE_DIR": str(state),
        "FAIRWAY_API_PORT": str(free_port()),
        "FAIRWAY_KUBESIM_PROFILE": "tiny",
    }
    env.pop("KUBECONFIG", None)

    def fairway_up() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "fairway_devstack.up"], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip

    first = fairway_up()
    lines: list[str] = []
    threading.Thread(target=lines.extend, args=(first.stdout,), daemon=True).start()

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 60
        while not any(text in line for line in lines):
            assert first.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, f"no {text!r} in: {''.join(lines)}"
            time.sleep(0.1)

    try:
        wait_for("Fairway is running")
        info = read_stack_info(state)

        second = fairway_up()
        output, _ = second.communicate(timeout=60)
        assert second.returncode == 1, output
        assert "already running" in output
        assert f"pid {first.pid}" in output and info["api_url"] in output
        assert read_stack_info(state) == info, "the first stack is untouched"

        os.kill(info["processes"]["policy"]["pid"], signal.SIGKILL)
        wait_for("policy restarted")
        assert any("policy was killed by signal SIGKILL" in line for line in lines)
        assert first.poll() is None, "fairway up keeps running"
        restarted = read_stack_info(state)["processes"]["policy"]["pid"]
        assert restarted != info["processes"]["policy"]["pid"]
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    assert first.returncode == 0, "".join(lines)
