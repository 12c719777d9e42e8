"""The CLI's topology flags: `--required-pod-topology-key` and `--preferred-pod-topology-key`
become the workload's `topology`; a level its node pools do not name exits non-zero naming the
field; `fairway node-pool list` shows each pool's levels."""

import json
import os

import httpx
import pytest

from tests.cli.test_tour import login_admin

pytestmark = pytest.mark.infra

RACK, HOST = "topology.fairway.io/rack", "kubernetes.io/hostname"


def test_topology_flags_reach_the_spec_and_unknown_levels_name_the_field(cli, server):
    login_admin(cli, server)
    token = json.loads(open(os.environ["FAIRWAY_CONFIG"]).read())["token"]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as api:
        r = api.put("/api/v1/node-pools/default", json={"networkTopology": {
            "levels": [{"nodeLabel": RACK}, {"nodeLabel": HOST}]}})
        assert r.status_code == 200, r.text
    assert f"{RACK} > {HOST}" in cli("node-pool", "list")
    d = json.loads(cli("submit", "distributed", "racked", "-p", "default", "-i", "pytorch",
                       "-g", "1", "--workers", "2", "--required-pod-topology-key", RACK,
                       "--preferred-pod-topology-key", HOST, "--json"))
    assert d["spec"]["topology"] == {"requiredPlacement": RACK, "preferredPlacement": HOST}
    out = cli("submit", "distributed", "zoned", "-p", "default", "-i", "pytorch", "--workers",
              "1", "--required-pod-topology-key", "topology.fairway.io/zone", code=1)
    assert "spec.topology.requiredPlacement" in out
