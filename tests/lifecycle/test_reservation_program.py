"""The reservation pod's program reports the device it was given into its own pod, with the
official client, against kubesim."""

import threading

import pytest
from kubernetes import client, config

from fairway_kubesim import DEFAULT_PROFILE, KubeSimThread
from fairway_lifecycle import reservation


def test_it_writes_the_uuid_of_its_one_device(tmp_path, monkeypatch):
    with KubeSimThread(DEFAULT_PROFILE) as sim:
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        api.create_namespace({"metadata": {"name": "res"}})
        api.create_namespaced_pod("res", {"metadata": {"name": "holder"}, "spec": {
            "containers": [{"name": "reservation", "image": "fairway"}]}})
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "GPU-1234")
        monkeypatch.setenv("POD_NAME", "holder")
        monkeypatch.setenv("POD_NAMESPACE", "res")
        stop = threading.Event()
        result = {}
        runner = threading.Thread(target=lambda: result.setdefault(
            "code", reservation.main(stop=stop)))
        runner.start()
        try:
            for _ in range(100):
                notes = api.read_namespaced_pod("holder", "res").metadata.annotations or {}
                if notes.get("fairway.io/gpu-uuid"):
                    break
                stop.wait(0.05)
            assert notes["fairway.io/gpu-uuid"] == "GPU-1234"
        finally:
            stop.set()
            runner.join(5)
        assert result["code"] == 0


@pytest.mark.parametrize("visible", [None, "", "all", "GPU-1,GPU-2", "none"])
def test_anything_but_one_device_is_refused_saying_why(visible):
    with pytest.raises(ValueError, match="exactly one device"):
        reservation.device_uuid(visible)
