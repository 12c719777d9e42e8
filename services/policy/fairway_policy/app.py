"""The policy service: answers `policy.evaluate` with the policies of the workload's branch
applied, and serves policy CRUD (get, put, delete) to the public API over request/reply.
Wiring only: the runtime, the `PolicyService` and its handlers."""

from pathlib import Path

from fairway_contracts import subjects
from fairway_policy import handlers
from fairway_policy.service import PolicyService
from fairway_policy.settings import PolicySettings
from fairway_runtime import Service

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: PolicySettings | None = None, *,
          evaluate_subject: str = subjects.POLICY_EVALUATE, crud_prefix: str = "") -> Service:
    """The service, ready to run. Tests pass their own settings and subjects of their own."""
    settings = settings or PolicySettings()
    runtime = Service("policy", settings, migrations=MIGRATIONS)
    handlers.register(PolicyService(runtime, settings, evaluate_subject=evaluate_subject,
                                    crud_prefix=crud_prefix))
    return runtime
