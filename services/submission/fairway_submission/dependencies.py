"""What every route asks FastAPI for: the service (built once, kept on the app's state), the
caller's access rules from its bearer token, and a query where each parameter that takes one
value comes once."""

import types
from collections import Counter
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from fairway_submission.core.access import Grants
from fairway_submission.core.errors import refuse
from fairway_submission.service import SubmissionService


class BearerToken(HTTPBearer):
    """The bearer scheme in the OpenAPI document; the `Authorization` header as it came, for
    the service to judge (every bad or missing token answers 401 the same way)."""

    async def __call__(self, request: Request) -> str | None:
        return request.headers.get("Authorization")


bearer = BearerToken(bearerFormat="JWT", scheme_name="bearer", auto_error=False,
                     description="A token from POST /api/v1/token")


async def submission(request: Request) -> SubmissionService:
    # async: FastAPI runs a plain function in its thread pool, a thread hop per request
    return request.app.state.submission


async def caller(service: Annotated[SubmissionService, Depends(submission)],
                 authorization: Annotated[str | None, Security(bearer)] = None) -> Grants:
    return await service.caller(authorization)


Submission = Annotated[SubmissionService, Depends(submission)]
Caller = Annotated[Grants, Depends(caller)]


def _takes_many(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return origin in (Union, types.UnionType) and any(map(_takes_many, get_args(annotation)))


def _query_params(dependant: Dependant) -> list[Any]:
    return dependant.query_params + [p for sub in dependant.dependencies
                                     for p in _query_params(sub)]


def _single_valued(route: APIRoute) -> frozenset[str]:
    """The route's query parameters that take one value, by the name the client sends;
    worked out once per route and kept on it."""
    names = getattr(route, "fairway_single_valued", None)
    if names is None:
        names = frozenset(p.alias for p in _query_params(route.dependant)
                          if not _takes_many(p.field_info.annotation))
        route.fairway_single_valued = names
    return names


async def query_once(request: Request) -> None:
    """A parameter that takes one value and comes twice is refused, naming it: reading one of
    the two would answer a question the client may not have asked."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    counts = Counter(name for name, _ in request.query_params.multi_items())
    repeated = sorted({n for n, times in counts.items() if times > 1} & _single_valued(route))
    refuse([{"field": name, "reason": "is given more than once"} for name in repeated],
           message="invalid request: ")

