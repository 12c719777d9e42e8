"""Signing in to the console: the token POST /api/v1/token issues, kept in an HttpOnly,
SameSite=Strict cookie (scripts cannot read it, other sites cannot send it); the caller's
access is that token's access, judged by the same code as every API request."""

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from fairway_submission.core.access import Grants
from fairway_submission.core.errors import ApiError
from fairway_submission.service import SubmissionService

COOKIE = "fairway_console"


class SignInFirst(Exception):
    """The request has no valid token: the console answers with the sign-in page."""


async def caller_of(request: Request) -> Grants:
    service: SubmissionService = request.app.state.submission
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInFirst
    try:
        return await service.caller(f"Bearer {token}")
    except ApiError as exc:
        if exc.code == 401:
            raise SignInFirst from None
        raise


def keep_token(response: Response, token: str, seconds: int, secure: bool) -> None:
    response.set_cookie(COOKIE, token, max_age=seconds, httponly=True, samesite="strict",
                        secure=secure, path="/")


def forget_token(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def to_sign_in(request: Request) -> Response:
    """Back to the sign-in page, then to where the browser was going. htmx follows a
    redirect inside the fragment it asked for: it is told to load the whole page instead."""
    target = "/sign-in?next=" + request.url.path
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
