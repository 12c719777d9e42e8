"""`fairway up` creates the kubesim profile's node pools in the API, with their network
topology and GPU resource optimization; the `default` pool, which always exists, takes the
profile's topology by an update."""

from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from rich.console import Console

from fairway_devstack.up import _register_node_pools
from tests.cli.conftest import Server, admin_password

pytestmark = pytest.mark.infra

PROFILE = """
cluster:
  nodePools:
    - name: default
      networkTopology: {levels: [{nodeLabel: kubernetes.io/hostname}]}
    - name: racks
      labelKey: fairway.io/node-pool
      labelValue: racks
      networkTopology:
        levels: [{nodeLabel: topology.fairway.io/block}, {nodeLabel: topology.fairway.io/rack}]
      gpuResourceOptimization: {swapEnabled: true, cpuSwapMemorySize: 100Gi,
                                reservedGpuMemoryForSwapOperations: 2Gi}
  nodes:
    - name: n-{1..4}
      labels: {fairway.io/node-pool: racks}
      topology: [{nodeLabel: topology.fairway.io/block, nodesPerDomain: 4},
                 {nodeLabel: topology.fairway.io/rack, nodesPerDomain: 2}]
      gpus: 8
"""


@pytest.fixture
def server(database_url, tmp_path_factory):
    s = Server(database_url, tmp_path_factory.mktemp("state")).start()
    yield s
    s.stop()


def test_the_profiles_pools_are_created_with_their_topology(server, tmp_path: Path):
    reply = httpx.post(f"{server.url}/api/v1/token", json={
        "grantType": "password", "username": "admin", "password": admin_password(server)})
    token = reply.json()["accessToken"]
    (tmp_path / "token").write_text(token)
    (tmp_path / "profile.yaml").write_text(PROFILE)
    stack = SimpleNamespace(
        config=SimpleNamespace(kubeconfig=None, kubesim_profile=str(tmp_path / "profile.yaml")),
        admin_token_file=tmp_path / "token", api_url=server.url)
    _register_node_pools(Console(), stack)  # type: ignore[arg-type]
    pools = httpx.get(f"{server.url}/api/v1/node-pools",
                      headers={"Authorization": f"Bearer {token}"}).json()["nodePools"]
    levels = {p["name"]: [level["nodeLabel"] for level in
                          (p["networkTopology"] or {}).get("levels", [])] for p in pools}
    assert levels == {"default": ["kubernetes.io/hostname"],
                      "racks": ["topology.fairway.io/block", "topology.fairway.io/rack"]}
    [racks] = [p for p in pools if p["name"] == "racks"]
    optimization = racks["gpuResourceOptimization"]
    assert (optimization["swapEnabled"], optimization["cpuSwapMemorySize"]) == (True, "100Gi")
