"""Route: the platform's health (GET /healthz): healthy when every service has said it is
ready within the last few heartbeat intervals (see `core.health`)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from fairway_submission.dependencies import Submission

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz(service: Submission) -> JSONResponse:
    services = service.heartbeats.status(service.runtime.is_ready())
    healthy = all(state == "ready" for state in services.values())
    return JSONResponse({"status": "ok" if healthy else "starting", "services": services},
                        status_code=200 if healthy else 503)
