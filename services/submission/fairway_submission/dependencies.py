"""What every route asks FastAPI for: the service (built once, kept on the app's state) and
the caller's access rules from its bearer token."""

from typing import Annotated

from fastapi import Depends, Header, Request

from fairway_submission.core.access import Grants
from fairway_submission.service import SubmissionService


def submission(request: Request) -> SubmissionService:
    return request.app.state.submission


async def caller(service: Annotated[SubmissionService, Depends(submission)],
                 authorization: Annotated[str | None, Header()] = None) -> Grants:
    return await service.caller(authorization)


Submission = Annotated[SubmissionService, Depends(submission)]
Caller = Annotated[Grants, Depends(caller)]
