"""Policy's settings: the shared ones (NATS_URL, DATABASE_URL, FAIRWAY_HTTP_*...) and how long
a branch's policies are remembered."""

from pydantic import Field

from fairway_runtime import ServiceSettings


class PolicySettings(ServiceSettings):
    """Evaluation and policy CRUD: the shared settings (NATS, PostgreSQL), and how long the
    policies of a branch are kept between evaluations."""

    remember_seconds: float = Field(
        default=2.0, ge=0, le=60, alias="FAIRWAY_POLICY_REMEMBER_SECONDS",
        description="how long an evaluation reuses the policies of a branch (cluster, department, "
                    "project) read from the database; a save or delete forgets them at once on "
                    "every instance that hears the change notice, and within this many seconds "
                    "on one that missed it; 0: read them for every evaluation")
