"""`fairway top projects` with time-aware fairness on in a pool: each project's usage that
counts (GPU-hours) and the over-quota weight it corrected the project's to, beside its fair
share; with it off nowhere, the table is as before."""

import json
from datetime import UTC, datetime

import pytest

from tests.cli.test_tour import login_admin
from tests.submission.test_organisation import queue_status

pytestmark = pytest.mark.infra


def test_top_projects_shows_usage_and_the_adjusted_weight_where_time_aware_is_on(cli, server):
    from fairway_submission import repository as repo

    login_admin(cli, server)
    cli("project", "create", "heavy-user", "--node-pool", "default", "--gpu", "1")
    before = cli("top", "projects", "--node-pool", "default")
    assert "FAIR SHARE" in before and "ADJUSTED WEIGHT" not in before

    async def scheduler_published() -> None:  # as the scheduler's queue status arrives
        async with server.harness.service.pool.acquire() as conn:
            assert await repo.apply_queue_status(conn, queue_status(
                "project", "heavy-user", "default", datetime.now(UTC), fair_share=3,
                usage=7200.0, adjusted_over_quota_weight=0.25))

    server.run(scheduler_published())
    rows = {r["project"]: r for r in json.loads(cli("top", "projects", "--node-pool",
                                                    "default", "--json"))}
    assert (rows["heavy-user"]["usage"], rows["heavy-user"]["adjustedOverQuotaWeight"],
            rows["heavy-user"]["fairShare"]) == (7200, 0.25, 3)
    table = cli("top", "projects", "--node-pool", "default")
    assert "USAGE (GPU-H)" in table and "ADJUSTED WEIGHT" in table
    line = next(x for x in table.splitlines() if x.strip().startswith("heavy-user"))
    assert line.split()[-2:] == ["2", "0.25"]  # 7,200 GPU-seconds: 2 GPU-hours
