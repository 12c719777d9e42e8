"""A second start of the stack on the same state directory finds kubesim's cluster as the
first left it (the devstack runs kubesim with its snapshot file): the same pods, not new ones.
Whole-stack crashes under load are in tests/e2e/test_crash.py."""

import time

import httpx

from fairway_devstack.testing import running_stack


def kubesim_pods(kubesim: httpx.Client, timeout: float = 60) -> dict[str, str]:
    """Pod `namespace/name` → uid, once kubesim answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = kubesim.get("/api/v1/pods")
            if answer.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "kubesim does not answer"
        time.sleep(0.3)
    return {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p["metadata"]["uid"]
            for p in answer.json()["items"]}


def test_a_second_start_of_the_stack_keeps_kubesims_pods(tmp_path):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kept"},
           "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    uids = []
    for _ in range(2):
        with running_stack(tmp_path / "stack", services=()) as stack:
            kubesim = httpx.Client(base_url=stack.info()["processes"]["kubesim"]["url"],
                                   timeout=10, trust_env=False,
                                   headers={"Authorization": "Bearer kubesim"})
            if not uids:
                created = kubesim.post("/api/v1/namespaces/default/pods", json=pod)
                assert created.status_code == 201, created.text
            uids.append(kubesim_pods(kubesim).get("default/kept"))
    assert uids[0] is not None and uids == [uids[0], uids[0]], "the same pod, not a new one"
