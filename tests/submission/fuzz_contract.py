"""`make fuzz`: the Schemathesis command line over the API as an outside tester runs it, against
the same app as tests/submission/test_contract.py (served over HTTP, real PostgreSQL, the real
policy service over NATS), with the coverage phase (each constraint's boundaries, missing and
mistyped fields) on top of many generated examples per operation. Not collected by `make test`
(its name is not test_*); `make fuzz` names it. The report (JUnit) and Schemathesis' own files
go to .fairway/fuzz/; a failure prints how to replay it."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairway_submission.openapi import document
from tests.submission.conftest import real_policy
from tests.submission.test_contract import (
    CHECKS,
    REJECTIONS,
    Known,
    existing_things,
    served,
)

pytestmark = pytest.mark.infra

EXAMPLES = os.environ.get("FAIRWAY_CONTRACT_EXAMPLES", "300")
OUT = Path(".fairway/fuzz").resolve()


def settings(known: Known) -> str:
    """schemathesis.toml: 413 counts as a refusal; half the time a path id or a body's
    `projectId` / `parentId` names a thing that exists and a body's `name` is a fresh valid one,
    so that requests get past "not found" and the name rules to the real work."""
    lines = ["[checks.negative_data_rejection]",
             f"expected-statuses = {json.dumps(REJECTIONS)}", "", "[parameters]"]
    dictionaries = {}
    for name, value in known.items():
        where = "body" if name in ("projectId", "parentId") else "path"
        lines.append(f'"{where}.{name}" = {{ dictionary = "{name}", probability = 0.5 }}')
        dictionaries[name] = [value]
    lines.append('"body.name" = { dictionary = "name", probability = 0.5 }')
    dictionaries["name"] = [f"contract-cli-{i}" for i in range(500)]
    for name, values in dictionaries.items():
        lines += ["", f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]
    return "\n".join(lines) + "\n"


def schemathesis_run(url: str, token: str, known: Known) -> subprocess.CompletedProcess:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "openapi.json").write_text(json.dumps(document()))
    # Schemathesis reads its settings from a schemathesis.toml where it runs: here, OUT's.
    (OUT / "schemathesis.toml").write_text(settings(known))
    return subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run", "openapi.json",
         "--url", url, "--header", f"Authorization: Bearer {token}",
         "--checks", ",".join(check.__name__ for check in CHECKS),
         "--phases", "examples,coverage,fuzzing", "--max-examples", EXAMPLES,
         "--report", "junit", "--report-dir", "report"],
        cwd=OUT, capture_output=True, text=True, check=False)


async def test_schemathesis_finds_nothing(harness, nats_url, database_url):
    async with real_policy(harness, nats_url, database_url), served(harness.app) as url:
        known = await existing_things(harness)
        run = await asyncio.to_thread(schemathesis_run, url, harness.admin_token, known)
    assert run.returncode == 0, run.stdout + run.stderr
