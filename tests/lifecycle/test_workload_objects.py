"""The controller makes a distributed workload's Service before its pods, deletes it once the
workload is deleted, and fails the workload, once, when Kubernetes refuses it for good (real
PostgreSQL, a stand-in Kubernetes API that keeps the calls)."""

import asyncio

import pytest

from fairway_contracts import WorkloadType
from fairway_lifecycle import repository as repo
from fairway_lifecycle.kube import KubeError
from tests.lifecycle.test_controller import FakeKube, delete, phases, submit, until
from tests.lifecycle.test_creation_failures import INVALID, started

pytestmark = pytest.mark.infra

DISTRIBUTED = {"kind": WorkloadType.DISTRIBUTED, "pods": 3, "minPods": 3, "numWorkers": 2,
               "distributedFramework": "MPI"}


class ObjectsKube(FakeKube):
    """Keeps object calls with the pod calls; refuses objects with `refuse` (a status)."""

    def __init__(self, refuse: int | None = None):
        super().__init__()
        self.refuse = refuse

    async def ensure_object(self, manifest):
        self.calls.append(("object", manifest["kind"], manifest["metadata"]["name"]))
        if self.refuse:
            raise KubeError(self.refuse, INVALID, f"{manifest['kind']} "
                                                   f"{manifest['metadata']['name']}")
        return "created"

    async def delete_object(self, kind, namespace, name):
        self.calls.append(("delete-object", kind, name))


async def test_the_service_and_hostfile_come_before_the_pods_and_go_with_the_workload(
        database_url, tag):
    kube = ObjectsKube()
    runtime, service = await started(database_url, kube)
    try:
        wid = f"{tag}-dist"
        await submit(service, wid, **DISTRIBUTED)
        name = f"bert-{wid[:8]}"

        async def created():
            return sum(c[0] == "create" for c in kube.calls) == 3
        await until(created)
        assert kube.calls[:3] == [("namespace", "fairway-team-a"), ("object", "Service", name),
                                  ("object", "ConfigMap", f"{name}-hostfile")]
        assert not any(c[0] == "delete-object" for c in kube.calls)

        await delete(service, wid)

        async def objects_deleted():
            return ("delete-object", "ConfigMap", f"{name}-hostfile") in kube.calls
        await until(objects_deleted)
        assert ("delete-object", "Service", name) in kube.calls
        assert (await phases(runtime.pool, wid))[-1] == "Deleted"
    finally:
        await runtime.stop()


async def test_a_refused_service_fails_the_workload_once_naming_it(database_url, tag):
    kube = ObjectsKube(refuse=422)
    runtime, service = await started(database_url, kube)
    try:
        wid = f"{tag}-badsvc"
        await submit(service, wid, **DISTRIBUTED)

        async def failed():
            return (await phases(runtime.pool, wid))[-1:] == ["Failed"]
        await until(failed)
        await asyncio.sleep(0.5)  # several retries' time, were there any
        assert [c for c in kube.calls if c[0] == "object"] == [
            ("object", "Service", f"bert-{wid[:8]}")]
        assert not any(c[0] == "create" for c in kube.calls)  # no pod without its Service
        async with runtime.pool.acquire() as conn:
            row = await repo.get(conn, wid)
        assert row.unschedulable[0] == "CreateRejected"
        assert f"Service bert-{wid[:8]} (422)" in row.unschedulable[1]
    finally:
        await runtime.stop()
