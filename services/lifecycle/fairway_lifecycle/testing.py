"""Lifecycle's test hooks: the service built as `app.build` builds it, with its
`LifecycleService` (and so its controller, state machine and enforcer) reachable and a
Kubernetes stand-in where a test brings one."""

from pathlib import Path

from fairway_lifecycle.app import wire
from fairway_lifecycle.kube import Kube
from fairway_lifecycle.service import LifecycleService
from fairway_lifecycle.settings import LifecycleSettings
from fairway_runtime import Service


def build_for_tests(settings: LifecycleSettings, *, kube: Kube | None = None
                    ) -> tuple[Service, LifecycleService]:
    """The runtime and its `LifecycleService`; `kube` stands in for the Kubernetes API."""
    runtime = Service("lifecycle", settings, migrations=Path(__file__).parent / "migrations")
    return runtime, wire(runtime, settings, kube)
