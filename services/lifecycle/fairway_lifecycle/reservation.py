"""The program of a reservation pod (`python -m fairway_lifecycle.reservation`).

Lifecycle makes one reservation pod per GPU device that fractions share: it requests one whole
`nvidia.com/gpu`, so the device plugin gives it a device and no other scheduler hands that
device out. The NVIDIA container toolkit tells the container which device it got in
`NVIDIA_VISIBLE_DEVICES`; this program writes that UUID into the pod's own annotation
`fairway.io/gpu-uuid`, where lifecycle reads it to point the fractions at the device, then
waits until the pod is deleted. It needs `POD_NAME` and `POD_NAMESPACE` (the downward API) and
a service account allowed to get and patch pods in its namespace; `KUBECONFIG` outside a
cluster.
"""

import logging
import signal
import sys
import threading

from kubernetes import client, config
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ANNOTATION = "fairway.io/gpu-uuid"
log = logging.getLogger("fairway.reservation")


def device_uuid(visible: str | None) -> str:
    """The one device the container was given. ValueError says what is wrong."""
    devices = [d.strip() for d in (visible or "").split(",") if d.strip()]
    if len(devices) != 1 or devices[0] in ("all", "none", "void"):
        raise ValueError(f"NVIDIA_VISIBLE_DEVICES must name exactly one device, got "
                         f"{visible!r}: is the pod's nvidia.com/gpu limit 1 and the NVIDIA "
                         "container toolkit installed?")
    return devices[0]


def report(api: client.CoreV1Api, namespace: str, name: str, uuid: str) -> None:
    api.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": {ANNOTATION: uuid}}})


class ReservationSettings(BaseSettings):
    """What the reservation pod's container is given (not Fairway's own settings: the
    NVIDIA container toolkit's variable and the downward API's)."""

    model_config = SettingsConfigDict(populate_by_name=True)

    visible_devices: str | None = Field(default=None, alias="NVIDIA_VISIBLE_DEVICES")
    pod_name: str = Field(alias="POD_NAME")
    pod_namespace: str = Field(alias="POD_NAMESPACE")
    kubeconfig: str | None = Field(default=None, alias="KUBECONFIG")


def main(argv: list[str] | None = None, stop: threading.Event | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = ReservationSettings()
        uuid = device_uuid(settings.visible_devices)
    except (ValueError, ValidationError) as exc:
        log.error("cannot report the reserved device: %s", exc)
        return 2
    if settings.kubeconfig:
        config.load_kube_config(settings.kubeconfig)
    else:
        config.load_incluster_config()
    name, namespace = settings.pod_name, settings.pod_namespace
    report(client.CoreV1Api(), namespace, name, uuid)
    log.info("pod %s/%s holds GPU %s", namespace, name, uuid)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
