"""The REST API's OpenAPI document, as served at /api/openapi.json.

`python -m fairway_submission.openapi > services/submission/openapi.json` writes the committed
copy; a test fails when it is stale.
"""

import json

from fairway_submission.app import build
from fairway_submission.settings import SubmissionSettings


def render() -> str:
    service = build(SubmissionSettings())
    return json.dumps(service.http_app.openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
