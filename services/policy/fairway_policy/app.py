"""The policy service: answers `policy.evaluate`; keeps the `policies` table for policy CRUD."""

from pathlib import Path

from fairway_contracts import subjects
from fairway_policy import handlers
from fairway_policy.settings import PolicySettings
from fairway_runtime import Service


def build(settings: PolicySettings | None = None, *,
          evaluate_subject: str = subjects.POLICY_EVALUATE) -> Service:
    """The service, ready to run. Tests pass their own settings and a subject of their own."""
    service = Service("policy", settings or PolicySettings(),
                      migrations=Path(__file__).parent / "migrations")
    handlers.register(service, subject=evaluate_subject)
    return service
