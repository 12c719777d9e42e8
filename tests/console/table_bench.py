"""How fast the console's workloads table answers with 10,000 workloads: a platform of its own,
10,000 rows written straight into the workload view (spread over phases, types and three
projects; no pods, nothing for the other services to do), then each kind of table request
timed as a signed-in administrator (the median of several).

    .venv/bin/python -m tests.console.table_bench [--rows 10000] [--repeat 7]
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from fairway_devstack.testing import running_stack
from tests.e2e.conftest import create

PHASES = ("Pending", "Running", "Completed", "Failed", "Stopped")
TYPES = ("training", "workspace", "distributed", "inference")


async def seed(database_url: str, projects: list[tuple[int, str]], rows: int) -> None:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "submission"})
    try:
        await conn.execute(
            "INSERT INTO workloads (workload_id, name, project_id, project, workload_type,"
            " submitted_spec, effective_spec, created_by, created_at, phase)"
            " SELECT gen_random_uuid(), 'bench-' || i, ($1::bigint[])[1 + i % 3],"
            " ($2::text[])[1 + i % 3], ($3::text[])[1 + i % 4],"
            " '{\"image\": \"busybox\", \"compute\": {\"gpuDevicesRequest\": 1}}'::jsonb,"
            " '{\"image\": \"busybox\", \"compute\": {\"gpuDevicesRequest\": 1}}'::jsonb,"
            " 'bench', now() - i * interval '1 second', ($4::text[])[1 + i % 5]"
            " FROM generate_series(1, $5) AS i",
            [p[0] for p in projects], [p[1] for p in projects], list(TYPES), list(PHASES),
            rows)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fairway-table-bench-") as state, \
            running_stack(Path(state)) as stack:
        token = Path(stack.admin_token_file).read_text().strip()
        with httpx.Client(base_url=stack.api_url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as api:
            projects = [(int(create(api, "/api/v1/org-unit/projects", {"name": n})["id"]), n)
                        for n in ("bench-a", "bench-b", "bench-c")]
        asyncio.run(seed(stack.database_url, projects, args.rows))
        pages = args.rows // 50
        requests = {
            "first page (newest first)": "/workloads",
            f"last page ({pages})": f"/workloads?page={pages}",
            "sorted by name, page 100": "/workloads?sort=name&order=asc&page=100",
            "one project, Running": "/workloads?project=bench-b&phase=Running",
            "name contains '99'": "/workloads?name=99",
            "overview": "/",
        }
        with httpx.Client(base_url=stack.api_url, timeout=60,
                          cookies={"fairway_console": token}) as browser:
            for label, path in requests.items():
                times = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    response = browser.get(path)
                    times.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text[:500]
                print(f"{label:<32} {statistics.median(times) * 1000:7.1f} ms "
                      f"({len(response.content) // 1024} KiB)")


if __name__ == "__main__":
    main()
