"""The REST API's OpenAPI document, as served at /api/openapi.json.

`python -m fairway_submission.openapi > services/submission/openapi.json` writes the committed
copy; a test fails when it is stale.
"""

import json
from typing import Any

from fairway_submission.app import build
from fairway_submission.settings import SubmissionSettings


def document() -> dict[str, Any]:
    return build(SubmissionSettings()).http_app.openapi()


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
