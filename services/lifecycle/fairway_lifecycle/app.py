"""Lifecycle: the only service that talks to Kubernetes."""

from pathlib import Path

from fairway_lifecycle import handlers
from fairway_lifecycle.controller import Controller
from fairway_lifecycle.kube import Kube
from fairway_lifecycle.settings import LifecycleSettings
from fairway_lifecycle.utilization import RulesEnforcer
from fairway_runtime import Service


def build(settings: LifecycleSettings | None = None) -> Service:
    settings = settings or LifecycleSettings()
    service = Service("lifecycle", settings, migrations=Path(__file__).parent / "migrations")
    kube = Kube(settings.kubeconfig, workers=settings.kube_workers)
    controller = Controller(service, kube, settings.resync_seconds,
                            eviction_grace_seconds=settings.eviction_grace_seconds)
    enforcer = RulesEnforcer(service, controller,
                             window_seconds=settings.utilization_window_seconds,
                             check_seconds=settings.rules_check_seconds)
    handlers.register(service, settings, controller, enforcer)
    service.add_readiness_check(lambda: controller.synced)

    @service.on_start
    async def start_controller(_: Service) -> None:
        await enforcer.load()  # before the controller: stop reasons survive a restart
        await controller.start()
        service.background(enforcer.run(), "scheduling-rules")

    @service.on_stop
    async def stop_controller(_: Service) -> None:
        await controller.stop()
        kube.close()

    service.controller = controller  # for tests
    service.enforcer = enforcer
    return service
