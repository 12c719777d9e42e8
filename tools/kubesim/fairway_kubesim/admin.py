"""Fault injection for tests: a small admin endpoint, off unless enabled (`--admin`,
`KubeSim(admin=True)`).

    POST   /admin/watches/drop              end every open watch now          -> {"dropped": n}
    POST   /admin/watches/expire {"count": N}
                                            answer the next N watch requests with 410 Gone
                                                                               -> {"pending": N}
    POST   /admin/nodes/{name}/ready {"ready": false|true}
                                            make a node NotReady (its pods go Unknown, then are
                                            evicted after `nodeEvictionSeconds`) or Ready again
    PUT    /admin/faults {"delayFraction": 0.2, "delaySeconds": 0.5, "failFraction": 0.1,
                          "failCode": 500, "seed": 1}
                                            delay / fail that fraction of API requests (not
                                            /admin, /healthz ...); seeded for reproducible runs
    DELETE /admin/faults                    stop delaying and failing requests
    GET    /admin/faults                    the current settings and counters
    GET    /admin/stats                     objects, watches, kubelet transitions, requests
    GET    /admin/creations/{plural}        how often each name was created -> {"ns/name": n}

A failed request is answered with a Kubernetes `Status` (500 InternalError, 503
ServiceUnavailable or 429 TooManyRequests with `Retry-After: 1`, per `failCode`).
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from .errors import ApiError, bad_request, not_found

if TYPE_CHECKING:
    from .api import Api
    from .kubelet import Kubelet

_REASONS = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
            504: "Timeout"}
_NOT_FAULTED = ("/admin", "/healthz", "/livez", "/readyz")


class Faults:
    def __init__(self) -> None:
        self.expire_watches = 0
        self.delay_fraction = 0.0
        self.delay_seconds = 0.0
        self.fail_fraction = 0.0
        self.fail_code = 500
        self.rng = random.Random()
        self.delayed = 0
        self.failed = 0

    @property
    def active(self) -> bool:
        return bool(self.delay_fraction or self.fail_fraction)

    def take_expired_watch(self) -> bool:
        if self.expire_watches > 0:
            self.expire_watches -= 1
            return True
        return False

    async def before(self, request: web.Request) -> None:
        if request.path.startswith(_NOT_FAULTED):
            return
        if self.delay_fraction and self.rng.random() < self.delay_fraction:
            self.delayed += 1
            await asyncio.sleep(self.delay_seconds)
        if self.fail_fraction and self.rng.random() < self.fail_fraction:
            self.failed += 1
            code = self.fail_code
            raise ApiError(code, _REASONS.get(code, "InternalError"),
                           f"injected fault: {request.method} {request.path} failed",
                           {"retryAfterSeconds": 1} if code in (429, 503) else None)

    def settings(self) -> dict[str, Any]:
        return {"delayFraction": self.delay_fraction, "delaySeconds": self.delay_seconds,
                "failFraction": self.fail_fraction, "failCode": self.fail_code,
                "expireWatches": self.expire_watches, "delayed": self.delayed,
                "failed": self.failed}

    def configure(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise bad_request("expected a JSON object")
        known = {"delayFraction", "delaySeconds", "failFraction", "failCode", "seed"}
        unknown = set(body) - known
        if unknown:
            raise bad_request(f"unknown fault settings: {sorted(unknown)}")

        def fraction(key: str) -> float:
            value = body.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    0 <= value <= 1):
                raise bad_request(f"{key} must be a number from 0 to 1")
            return float(value)

        delay_fraction, fail_fraction = fraction("delayFraction"), fraction("failFraction")
        delay = body.get("delaySeconds", 0.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise bad_request("delaySeconds must be a non-negative number")
        code = body.get("failCode", 500)
        if code not in _REASONS:
            raise bad_request(f"failCode must be one of {sorted(_REASONS)}")
        self.delay_fraction, self.delay_seconds = delay_fraction, float(delay)
        self.fail_fraction, self.fail_code = fail_fraction, code
        if body.get("seed") is not None:
            self.rng.seed(body["seed"])

    def clear(self) -> None:
        self.delay_fraction = self.fail_fraction = self.delay_seconds = 0.0


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


async def _read(request: web.Request) -> Any:
    data = await request.read()
    if not data:
        return {}
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise bad_request("the body must be JSON") from None


def add_admin_routes(app: web.Application, api: Api, kubelet: Kubelet) -> Faults:
    faults = Faults()
    api.faults = faults
    store = api.store

    async def drop_watches(request: web.Request) -> web.Response:
        dropped = sum(len(r.watchers) for r in store.resources.values())
        store.close_watchers()
        return _json({"dropped": dropped})

    async def expire_watches(request: web.Request) -> web.Response:
        body = await _read(request)
        count = body.get("count", 1) if isinstance(body, dict) else None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise bad_request("count must be a non-negative integer")
        faults.expire_watches = count
        return _json({"pending": faults.expire_watches})

    async def node_ready(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await _read(request)
        ready = body.get("ready") if isinstance(body, dict) else None
        if not isinstance(ready, bool):
            raise bad_request('expected {"ready": true|false}')
        if store["nodes"].get("", name) is None:
            raise not_found("nodes", name)
        kubelet.set_node_ready(name, ready)
        return _json({"node": name, "ready": ready})

    async def put_faults(request: web.Request) -> web.Response:
        faults.configure(await _read(request))
        return _json(faults.settings())

    async def get_faults(request: web.Request) -> web.Response:
        return _json(faults.settings())

    async def delete_faults(request: web.Request) -> web.Response:
        faults.clear()
        return _json(faults.settings())

    async def stats(request: web.Request) -> web.Response:
        return _json({
            "resourceVersion": store.rv,
            "objects": {k: len(r) for k, r in store.resources.items()},
            "watches": {k: len(r.watchers) for k, r in store.resources.items()},
            "kubeletTransitions": kubelet.transitions,
            "pendingTransitions": kubelet.pending_transitions(),
            "requests": api.requests,
        })

    async def creations(request: web.Request) -> web.Response:
        plural = request.match_info["plural"]
        if plural not in store.resources:
            raise not_found("resources", plural)
        return _json(dict(store.resources[plural].creations))

    r = app.router
    r.add_post("/admin/watches/drop", drop_watches)
    r.add_post("/admin/watches/expire", expire_watches)
    r.add_post("/admin/nodes/{name}/ready", node_ready)
    r.add_put("/admin/faults", put_faults)
    r.add_post("/admin/faults", put_faults)
    r.add_get("/admin/faults", get_faults)
    r.add_delete("/admin/faults", delete_faults)
    r.add_get("/admin/stats", stats)
    r.add_get("/admin/creations/{plural}", creations)
    return faults
