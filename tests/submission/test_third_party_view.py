"""Third-party workloads in the API (real PostgreSQL, the app in-process): lifecycle's
announcement makes a row of type thirdParty with its kind, namespace and owner, its phase and
pods; a namespace of no project (or of a project that does not exist) shows the reason; an
older announcement changes nothing; stop and run are refused naming why."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from fairway_contracts.events import PodSummary, ThirdPartyWorkloadChanged

pytestmark = pytest.mark.infra
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def announced(name: str, project: str | None, *, seconds: float = 0, phase: str = "Pending",
              reason: str = "WaitingForScheduler", pods: int = 4, gone: bool = False,
              problem: str | None = None, wid: str | None = None) -> ThirdPartyWorkloadChanged:
    names = [f"{name}-{i}" for i in range(pods)]
    return ThirdPartyWorkloadChanged(
        event_id=f"tp:{uuid.uuid4().hex}", workload_id=wid or str(uuid.uuid4()), kind="Job",
        api_version="batch/v1", name=name, namespace="ml-team", owner_uid="uid-1",
        grouping="gang", min_members=pods, project=project, problem=problem,
        priority_class="train", priority=50, preemptible=True, pods=names, gpus_per_pod=2,
        cpu_millis=1500, phase=phase, phase_reason=reason, phase_message=f"now {phase}",
        pod_summaries=[PodSummary(name=n, gpus=2, phase="Pending") for n in names],
        gone=gone, observed_at=T0 + timedelta(seconds=seconds))


async def test_a_third_party_job_appears_with_its_kind_namespace_owner_and_phase(
        harness, default_project):
    event = announced("train-tp", "default")
    await harness.service.third_party_changed(event)
    admin = harness.admin
    listed = (await admin.get("/api/v1/workloads", params={"filterBy": "type==thirdParty"}))
    assert listed.status_code == 200, listed.text
    [view] = [w for w in listed.json()["workloads"] if w["workloadId"] == event.workload_id]
    assert (view["name"], view["type"], view["kind"], view["namespace"]) == (
        "train-tp", "thirdParty", "Job", "ml-team")
    assert view["projectId"] == default_project["id"]
    assert view["owner"] == {"kind": "Job", "apiVersion": "batch/v1", "name": "train-tp",
                             "namespace": "ml-team", "uid": "uid-1", "grouping": "gang",
                             "minMembers": 4}
    assert (view["phase"], view["phaseReason"]) == ("Pending", "WaitingForScheduler")
    assert view["requestedResources"]["gpu"] == 8 and view["requestedPods"] == 4
    pods = (await admin.get(f"/api/v1/workloads/{event.workload_id}/pods")).json()["pods"]
    assert [p["name"] for p in pods] == event.pods

    # its request for the scheduler, once: lifecycle makes no pods for it
    [(_, request)] = await harness.outbox(
        f"fairway.workload.submitted.default.{event.workload_id}")
    assert (request["thirdParty"], request["spec"]["pods"], request["spec"]["minPods"]) == (
        True, 4, 4)
    assert request["spec"]["compute"]["gpuDevicesRequest"] == 2

    # later news moves it; older news does not; each phase once in its history
    await harness.service.third_party_changed(announced(
        "train-tp", "default", seconds=10, phase="Running", reason="PodsRunning",
        wid=event.workload_id))
    await harness.service.third_party_changed(announced(
        "train-tp", "default", seconds=5, phase="Pending", wid=event.workload_id))
    view = (await admin.get(f"/api/v1/workloads/{event.workload_id}")).json()
    assert view["phase"] == "Running"
    assert len(await harness.outbox(
        f"fairway.workload.submitted.default.{event.workload_id}")) == 1
    history = (await admin.get(f"/api/v1/workloads/{event.workload_id}/events")).json()
    assert [(e["from"], e["to"]) for e in history["events"]] == [(None, "Pending"),
                                                                 ("Pending", "Running")]

    # no stop or run by Fairway: 409 naming why
    for response in (
            await admin.post(f"/api/v1/workloads/thirdParty/{event.workload_id}/suspend"),
            await admin.post(f"/api/v1/workloads/thirdParty/{event.workload_id}/resume")):
        assert response.status_code == 409, response.text
        assert "third-party workload (Job train-tp in namespace ml-team)" in response.text
    # not under another type's path
    wrong = await admin.delete(f"/api/v1/workloads/trainings/{event.workload_id}")
    assert wrong.status_code == 404, wrong.text
    # delete: asked of lifecycle, which deletes the top owner
    deleted = await admin.delete(f"/api/v1/workloads/thirdParty/{event.workload_id}")
    assert deleted.status_code == 202, deleted.text
    assert deleted.json()["desiredPhase"] == "Deleted"
    [(_, action)] = await harness.outbox(
        f"fairway.workload.action.delete.default.{event.workload_id}")
    assert action["action"] == "delete"


async def test_a_namespace_of_no_project_shows_why_it_waits(harness):
    problem = ("namespace ml-team belongs to no project: label the namespace (or the pod) "
               "fairway.io/project=<project>")
    lost = announced("lost", None, problem=problem, reason="NoProject")
    await harness.service.third_party_changed(lost)
    view = (await harness.admin.get(f"/api/v1/workloads/{lost.workload_id}")).json()
    assert (view["projectId"], view["phase"], view["phaseReason"]) == ("", "Pending",
                                                                      "NoProject")
    assert view["phaseMessage"] == problem
    assert not await harness.outbox(f"fairway.workload.submitted.%.{lost.workload_id}")

    ghost = announced("ghost", "no-such-project")
    await harness.service.third_party_changed(ghost)
    view = (await harness.admin.get(f"/api/v1/workloads/{ghost.workload_id}")).json()
    assert view["phaseReason"] == "NoProject"
    assert "names project no-such-project, which does not exist" in view["phaseMessage"]
    # a workload of no project is deleted on the project token "_"
    deleted = await harness.admin.delete(f"/api/v1/workloads/thirdParty/{lost.workload_id}")
    assert deleted.status_code == 202, deleted.text
    assert await harness.outbox(f"fairway.workload.action.delete._.{lost.workload_id}")


async def test_a_name_a_native_workload_has_gets_the_id_s_digits(harness, default_project):
    r = await harness.admin.post("/api/v1/workloads/trainings", json={
        "name": "shared", "projectId": default_project["id"], "spec": {"image": "busybox"}})
    assert r.status_code == 202, r.text
    event = announced("shared", "default")
    await harness.service.third_party_changed(event)
    view = (await harness.admin.get(f"/api/v1/workloads/{event.workload_id}")).json()
    assert view["name"] == f"shared-{event.workload_id[:8]}"


async def test_a_scaled_owner_s_pods_and_minimum_follow_in_the_view_and_the_request(
        harness, default_project):
    wid = str(uuid.uuid4())
    subject = f"fairway.workload.submitted.default.{wid}"

    def deployment(replicas: int, pods: int, seconds: float, minimum: int = 1
                   ) -> ThirdPartyWorkloadChanged:
        return announced("web-tp", "default", seconds=seconds, pods=pods, wid=wid).model_copy(
            update={"kind": "Deployment", "grouping": "elastic", "min_members": minimum,
                    "replicas": replicas, "event_id": f"tp:{uuid.uuid4().hex}"})

    await harness.service.third_party_changed(deployment(3, 3, 0))
    [(_, first)] = await harness.outbox(subject)
    assert (first["spec"]["pods"], first["spec"]["minPods"], first["revision"]) == (3, 1, 0)

    # scaled to 5: the view says 5 at once (2 pods not made yet), the scheduler is told again
    await harness.service.third_party_changed(deployment(5, 3, 1))
    view = (await harness.admin.get(f"/api/v1/workloads/{wid}")).json()
    assert view["requestedPods"] == 5
    requests = [r for _, r in await harness.outbox(subject)]
    assert [(r["spec"]["pods"], r["revision"]) for r in requests] == [(3, 0), (5, 1)]
    assert requests[1]["eventId"] != requests[0]["eventId"]

    # its pods made: nothing new to ask; a minimum raised: asked again
    await harness.service.third_party_changed(deployment(5, 5, 2))
    assert len(await harness.outbox(subject)) == 2
    await harness.service.third_party_changed(deployment(5, 5, 3, minimum=2))
    last = [r for _, r in await harness.outbox(subject)][-1]
    assert (last["spec"]["pods"], last["spec"]["minPods"], last["revision"]) == (5, 2, 2)
    view = (await harness.admin.get(f"/api/v1/workloads/{wid}")).json()
    assert view["owner"]["minMembers"] == 2


async def test_a_pod_group_sequence_past_32_bits_is_kept(harness, default_project):
    """A third-party workload's pod groups count tenths of a second since 2026 (past 2**31
    in 2032)."""
    from fairway_contracts.events import PodGroupChanged
    from fairway_submission import repository as repo

    event = announced("late-tp", "default")
    await harness.service.third_party_changed(event)
    group = PodGroupChanged(
        event_id="pg-late", workload_id=event.workload_id, name="late-tp", project="default",
        workload_type="training", sequence=2**31 + 10, phase="Pending", time=T0 + timedelta(1),
        pods=event.pod_summaries)
    async with harness.service.pool.acquire() as conn:
        await repo.apply_pod_groups(conn, [group])
        assert await conn.fetchval("SELECT pods_sequence FROM workloads WHERE workload_id = $1",
                                   uuid.UUID(event.workload_id)) == 2**31 + 10
