"""kubesim keeps its cluster in a snapshot file: a restart (even after SIGKILL, from the last
periodic snapshot) keeps nodes, namespaces, pods, leases, Services (with their ClusterIPs) and
ConfigMaps; watches from before the restart answer 410 so clients list again; a restored pod
bound to a node runs again there."""

import asyncio

import httpx
from kubernetes import client
from kubernetes.client.rest import ApiException

from fairway_kubesim import KubeSim
from fairway_kubesim.profiles import DEFAULT_PROFILE
from fairway_kubesim.store import RESTORE_GAP

from .conftest import bind, make_pod


def api_for(sim: KubeSim) -> client.CoreV1Api:
    config = client.Configuration()
    config.host = sim.url
    return client.CoreV1Api(client.ApiClient(config))


async def in_thread(func, *args, **kwargs):
    return await asyncio.to_thread(func, *args, **kwargs)


async def phase_of(api: client.CoreV1Api, ns: str, name: str) -> str:
    return (await in_thread(api.read_namespaced_pod, name, ns)).status.phase


async def test_a_restart_keeps_the_cluster_and_running_pods_run_again(tmp_path):
    snapshot = tmp_path / "cluster.json"
    sim = KubeSim(DEFAULT_PROFILE, snapshot=snapshot, snapshot_seconds=0.1)
    await sim.start()
    api = api_for(sim)
    await in_thread(api.create_namespace, {"metadata": {"name": "team-a"}})
    pod = make_pod("runner", annotations={"sim.fairway.io/run-seconds": "600"})
    await in_thread(api.create_namespaced_pod, "team-a", pod)
    node = (await in_thread(api.list_node)).items[0].metadata.name
    await in_thread(bind, api, "team-a", "runner", node)
    await in_thread(api.create_namespaced_pod, "team-a", make_pod("waiting"))
    for _ in range(100):
        if await phase_of(api, "team-a", "runner") == "Running":
            break
        await asyncio.sleep(0.1)
    listed_rv = int((await in_thread(api.list_namespaced_pod, "team-a")).metadata
                    .resource_version)
    uid = (await in_thread(api.read_namespaced_pod, "runner", "team-a")).metadata.uid
    await asyncio.sleep(0.3)  # a periodic snapshot has it
    sim.snapshot_path = None  # as if killed: no snapshot on the way out
    await sim.stop()

    again = KubeSim(DEFAULT_PROFILE, snapshot=snapshot)
    await again.start()
    try:
        assert again.restored
        api = api_for(again)
        pods = {p.metadata.name: p for p in (await in_thread(api.list_namespaced_pod,
                                                              "team-a")).items}
        assert set(pods) == {"runner", "waiting"}
        assert pods["runner"].metadata.uid == uid and pods["runner"].spec.node_name == node
        assert pods["waiting"].spec.node_name is None
        try:  # 410 Gone: as an HTTP status or, as the API server does, an ERROR event
            answer = await in_thread(api.list_namespaced_pod, "team-a", watch=True,
                                     resource_version=str(listed_rv), timeout_seconds=1,
                                     _preload_content=False)
            gone = await in_thread(answer.read)
        except ApiException as exc:
            gone = f"{exc.status} {exc.body}".encode()
        assert b"410" in gone, gone
        for _ in range(100):  # started again on its node
            if await phase_of(api, "team-a", "runner") == "Running":
                break
            await asyncio.sleep(0.1)
        assert await phase_of(api, "team-a", "runner") == "Running"
        created = await in_thread(api.create_namespaced_pod, "team-a", make_pod("new"))
        assert int(created.metadata.resource_version) > listed_rv + RESTORE_GAP - 1
    finally:
        await again.stop()


async def test_creations_per_pod_name_are_counted_across_deletes_and_restarts(tmp_path):
    snapshot = tmp_path / "cluster.json"
    sim = KubeSim(DEFAULT_PROFILE, snapshot=snapshot, admin=True)
    await sim.start()
    api = api_for(sim)
    await in_thread(api.create_namespaced_pod, "default", make_pod("twice"))
    await in_thread(api.delete_namespaced_pod, "twice", "default", grace_period_seconds=0)
    await in_thread(api.create_namespaced_pod, "default", make_pod("twice"))
    await in_thread(api.create_namespaced_pod, "default", make_pod("once"))
    await sim.stop()  # the counts go into the snapshot with the pods

    again = KubeSim(DEFAULT_PROFILE, snapshot=snapshot, admin=True)
    await again.start()
    try:
        async with httpx.AsyncClient(base_url=again.url) as http:
            answer = (await http.get("/admin/creations/pods")).json()
        assert answer == {"default/twice": 2, "default/once": 1}
    finally:
        await again.stop()


async def test_a_restart_keeps_the_gpu_devices_each_pod_was_given(tmp_path):
    """The device plugin's allocation survives a restart: a reservation pod still holds the
    device whose UUID it reported, whatever order the pods are admitted in again."""
    devices = "kubesim.fairway.io/gpu-uuids"
    snapshot = tmp_path / "cluster.json"
    sim = KubeSim(DEFAULT_PROFILE, snapshot=snapshot, snapshot_seconds=0.1)
    await sim.start()
    api = api_for(sim)
    await in_thread(api.create_namespace, {"metadata": {"name": "gpus"}})
    for name, gpus in (("first", 2), ("second", 1), ("third", 1)):
        await in_thread(api.create_namespaced_pod, "gpus",
                        make_pod(name, gpus=gpus, restart_policy="Always", node_name="a100-1"))
    held: dict[str, str] = {}
    for _ in range(100):
        pods = (await in_thread(api.list_namespaced_pod, "gpus")).items
        held = {p.metadata.name: (p.metadata.annotations or {}).get(devices) for p in pods}
        if all(held.values()) and len(held) == 3:
            break
        await asyncio.sleep(0.1)
    assert len(set(",".join(held.values()).split(","))) == 4, held
    await in_thread(api.delete_namespaced_pod, "first", "gpus", grace_period_seconds=0)
    await asyncio.sleep(0.3)  # a periodic snapshot has it
    await sim.stop()

    again = KubeSim(DEFAULT_PROFILE, snapshot=snapshot)
    await again.start()
    try:
        api = api_for(again)
        for _ in range(100):
            pods = {p.metadata.name: p for p in
                    (await in_thread(api.list_namespaced_pod, "gpus")).items}
            if all(p.status.phase == "Running" for p in pods.values()):
                break
            await asyncio.sleep(0.1)
        after = {name: (p.metadata.annotations or {}).get(devices) for name, p in pods.items()}
        assert after == {"second": held["second"], "third": held["third"]}
    finally:
        await again.stop()


async def test_a_restart_keeps_services_their_cluster_ips_and_config_maps(tmp_path):
    snapshot = tmp_path / "cluster.json"
    sim = KubeSim(DEFAULT_PROFILE, snapshot=snapshot)
    await sim.start()
    api = api_for(sim)
    await in_thread(api.create_namespace, {"metadata": {"name": "team-s"}})
    svc = await in_thread(api.create_namespaced_service, "team-s", {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    await in_thread(api.create_namespaced_config_map, "team-s", {
        "metadata": {"name": "settings"}, "data": {"a": "1"}})
    await sim.stop()  # a snapshot on the way out

    again = KubeSim(DEFAULT_PROFILE, snapshot=snapshot)
    await again.start()
    try:
        api = api_for(again)
        kept = await in_thread(api.read_namespaced_service, "web", "team-s")
        assert kept.spec.cluster_ip == svc.spec.cluster_ip
        assert (await in_thread(api.read_namespaced_config_map, "settings", "team-s")
                ).data == {"a": "1"}
        other = await in_thread(api.create_namespaced_service, "team-s", {
            "metadata": {"name": "other"},
            "spec": {"selector": {"app": "o"}, "ports": [{"port": 80}]}})
        assert other.spec.cluster_ip != svc.spec.cluster_ip  # a kept address stays taken
    finally:
        await again.stop()
