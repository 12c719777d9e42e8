"""Prometheus alert rules (promtool check and unit tests), the compose Prometheus config, the
Grafana dashboard and its provisioning; and every series they name exists in the code."""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, ROOT

PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "fairway.json"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not found (Debian: apt-get install prometheus; `make test` does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(promtool: str, *args: str) -> str:
    done = subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_alert_rules_are_valid(promtool):
    assert "SUCCESS" in run(promtool, "check", "rules", "alerts.yml")


def test_alert_rules_fire_as_their_unit_tests_say(promtool):
    assert "SUCCESS" in run(promtool, "test", "rules", "alerts.test.yml")


def test_compose_prometheus_config_is_valid(promtool):
    run(promtool, "check", "config", "prometheus-compose.yml")


def test_every_issue_alert_is_there():
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"]}
    assert {"FairwayProjectBelowFairShare", "FairwayWorkloadsStuckCreating",
            "FairwayWorkloadsStuckInitializing", "FairwayMessagesDeadLettered",
            "FairwaySchedulerNotCycling", "FairwayServiceNotReady"} <= alerts
    tested = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())
    assert {t["alertname"] for case in tested["tests"] for t in case["alert_rule_test"]} >= {
        "FairwayProjectBelowFairShare", "FairwaySchedulerNotCycling", "FairwayServiceNotReady"}


def _defined_series() -> list[re.Pattern]:
    """Every metric name the services and libraries define, as a pattern: names built with
    an f-string (`fairway_{kind}_gpu_...`) match any word where the placeholder stands."""
    patterns = set()
    sources = [*ROOT.glob("services/*/fairway_*/**/*.py"), *ROOT.glob("libs/*/fairway_*/**/*.py")]
    for path in sources:
        for name in re.findall(r"""f?["'](fairway_[a-z_{}]+)["']""", path.read_text()):
            patterns.add(re.sub(r"\\\{[a-z_]+\\\}", "[a-z_]+", re.escape(name)))
    return [re.compile(p + r"(_total|_bucket|_count|_sum)?") for p in patterns]


def _used_series(text: str) -> set[str]:
    return set(re.findall(r"\bfairway_[a-z_]+", text))


def test_every_series_the_rules_and_dashboard_use_is_defined():
    defined = _defined_series()
    rules = (PROMETHEUS / "alerts.yml").read_text()
    exprs = "\n".join(r["expr"] for g in yaml.safe_load(rules)["groups"] for r in g["rules"])
    dashboard = json.loads(DASHBOARD.read_text())
    queries = "\n".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    queries += "\n".join(v.get("definition", "") for v in dashboard["templating"]["list"])
    used = _used_series(exprs) | _used_series(queries)
    assert used
    undefined = {name for name in used if not any(p.fullmatch(name) for p in defined)}
    assert not undefined, f"series no service defines: {sorted(undefined)}"


def test_dashboard_shows_what_operators_look_for():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queries = "\n".join(t["expr"] for p in panels for t in p["targets"])
    for needed in ("fairway_nodepool_gpus_allocated", "fairway_nodepool_gpus{",
                   "fairway_project_gpu_allocated", "fairway_project_gpu_fair_share",
                   "fairway_project_gpu_deserved", "fairway_workloads_pending",
                   "by (phase) (fairway_workloads", "histogram_quantile(0.5",
                   "histogram_quantile(0.99", "fairway_scheduler_cycle_seconds_bucket"):
        assert needed in queries, needed
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]


def test_grafana_provisioning_points_at_the_dashboard_folder_and_prometheus():
    provisioning = DEPLOY / "grafana" / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())[
        "datasources"]
    assert (source["type"], source["uid"]) == ("prometheus", "prometheus")
    [provider] = yaml.safe_load((provisioning / "dashboards/fairway.yml").read_text())[
        "providers"]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
