"""What every route asks FastAPI for: the service (built once, kept on the app's state) and
the caller's access rules from its bearer token."""

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer

from fairway_submission.core.access import Grants
from fairway_submission.service import SubmissionService


class BearerToken(HTTPBearer):
    """The bearer scheme in the OpenAPI document; the `Authorization` header as it came, for
    the service to judge (every bad or missing token answers 401 the same way)."""

    async def __call__(self, request: Request) -> str | None:
        return request.headers.get("Authorization")


bearer = BearerToken(bearerFormat="JWT", scheme_name="bearer", auto_error=False,
                     description="A token from POST /api/v1/token")


def submission(request: Request) -> SubmissionService:
    return request.app.state.submission


async def caller(service: Annotated[SubmissionService, Depends(submission)],
                 authorization: Annotated[str | None, Security(bearer)] = None) -> Grants:
    return await service.caller(authorization)


Submission = Annotated[SubmissionService, Depends(submission)]
Caller = Annotated[Grants, Depends(caller)]
