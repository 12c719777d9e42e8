"""Lifecycle's test hooks: the service built with its `LifecycleService` (and so its
controller, state machine and enforcer) reachable."""

from pathlib import Path

from fairway_lifecycle.app import wire
from fairway_lifecycle.service import LifecycleService
from fairway_lifecycle.settings import LifecycleSettings
from fairway_runtime import Service


def build_for_tests(settings: LifecycleSettings) -> tuple[Service, LifecycleService]:
    """The runtime, wired as `app.build` wires it, and its `LifecycleService`."""
    runtime = Service("lifecycle", settings, migrations=Path(__file__).parent / "migrations")
    return runtime, wire(runtime, settings)
