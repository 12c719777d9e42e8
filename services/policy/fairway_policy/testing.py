"""Policy's test hooks: the service built with its `PolicyService` reachable, answering on
subjects of its own (so another policy instance on a shared NATS server never answers a test's
requests, nor the test another's)."""

from pathlib import Path

from fairway_contracts import subjects
from fairway_policy import handlers
from fairway_policy.service import PolicyService
from fairway_policy.settings import PolicySettings
from fairway_runtime import Service


def build_for_tests(settings: PolicySettings, *, tag: str) -> tuple[Service, PolicyService]:
    """The runtime and its `PolicyService`, answering evaluations on
    `test-<tag>.<policy.evaluate>` and CRUD behind the prefix `test-<tag>.`."""
    runtime = Service("policy", settings, migrations=Path(__file__).parent / "migrations")
    service = PolicyService(runtime, settings,
                            evaluate_subject=f"test-{tag}.{subjects.POLICY_EVALUATE}",
                            crud_prefix=f"test-{tag}.")
    handlers.register(service)
    return runtime, service
