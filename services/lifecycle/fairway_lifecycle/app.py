"""Lifecycle: the only service that talks to Kubernetes. Wiring only."""

from pathlib import Path

from fairway_lifecycle import handlers
from fairway_lifecycle.kube import Kube
from fairway_lifecycle.service import LifecycleService
from fairway_lifecycle.settings import LifecycleSettings
from fairway_runtime import Service


def wire(runtime: Service, settings: LifecycleSettings, kube: Kube | None = None
         ) -> LifecycleService:
    """The service on `runtime`: its handlers, readiness, start and stop. `kube`: the
    Kubernetes adapter (tests bring a stand-in), else one from the settings."""
    kube = kube or Kube(settings.kubeconfig, workers=settings.kube_workers)
    service = LifecycleService(runtime, settings, kube)
    handlers.register(service)
    runtime.add_readiness_check(lambda: service.ready)

    @runtime.on_start
    async def start(_: Service) -> None:
        await service.start()

    @runtime.on_stop
    async def stop(_: Service) -> None:
        await service.stop()

    return service


def build(settings: LifecycleSettings | None = None) -> Service:
    settings = settings or LifecycleSettings()
    runtime = Service("lifecycle", settings, migrations=Path(__file__).parent / "migrations")
    wire(runtime, settings)
    return runtime
