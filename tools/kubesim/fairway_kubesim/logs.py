"""`pods/log`: what a container printed, as the kubelet would serve it.

A simulated container prints a line when it starts, then one line a second while it runs, and
a last line when it exits:

    [kubesim] container main started (image pytorch:2.4)          at startedAt
    step 1: main running for 1s                                      at startedAt + 1 s
    step 2: main running for 2s                                      ...
    [kubesim] container main exited with code 0 (Completed)        at finishedAt

The pod's annotation `sim.fairway.io/log` (lines separated by newlines) replaces the generated
`step` lines of the main (first) container: its lines come one a second from the start, then
nothing until the exit line. Every line is a function of the container's `startedAt` /
`finishedAt` in the pod status (and of the annotation), so the log of a run is the same
whenever it is read, `previous` reads the run in `lastState.terminated`, and no text is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .api import Api, _flag, _int_param
from .errors import ApiError, bad_request, invalid
from .objects import SIM_PREFIX, parse_rfc3339
from .store import Resource

LOG_ANNOTATION = SIM_PREFIX + "log"
FOLLOW_POLL_SECONDS = 0.25  # how often a followed log looks at its container again


@dataclass(frozen=True, slots=True)
class Run:
    """One run of a container: when it started, and how it ended (if it has)."""

    container: str
    image: str
    started: float
    finished: float | None = None
    exit_code: int = 0
    reason: str = ""
    script: tuple[str, ...] | None = None  # the annotation's lines, for the main container

    def count(self, now: float) -> int:
        """How many lines the run has printed by `now` (the exit line included)."""
        end = now if self.finished is None else min(now, self.finished)
        if end < self.started:
            return 0
        printed = 1 + int(end - self.started)  # a line at the start, then one a second
        if self.script is not None:
            printed = min(printed, 1 + len(self.script))
        if self.finished is not None and now >= self.finished:
            printed += 1
        return printed

    def line(self, index: int) -> tuple[float, str]:
        """The index-th line and when it was printed."""
        last = self.count(math.inf) - 1 if self.finished is not None else -1
        if index == last:
            return (self.finished or self.started), (
                f"[kubesim] container {self.container} exited with code {self.exit_code} "
                f"({self.reason or ('Completed' if self.exit_code == 0 else 'Error')})")
        if index == 0:
            return self.started, (f"[kubesim] container {self.container} started "
                                  f"(image {self.image})")
        if self.script is not None:
            return self.started + index, self.script[index - 1]
        return self.started + index, f"step {index}: {self.container} running for {index}s"

    def first_since(self, since: float) -> int:
        """The index of the first line printed at or after `since`."""
        if since <= self.started:
            return 0
        index = math.ceil(since - self.started)
        if self.finished is not None:
            last = self.count(math.inf) - 1
            if self.finished >= since:
                return min(index, last)
            return last + 1
        return index


def _container_names(pod: Mapping[str, Any]) -> list[str]:
    return [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or ()]


def choose_container(pod: Mapping[str, Any], container: str | None) -> str:
    """The container a log request means, or 400 as the API server answers."""
    name = pod["metadata"]["name"]
    names = _container_names(pod)
    init = [c.get("name", "") for c in (pod.get("spec") or {}).get("initContainers") or ()]
    if not container:
        if len(names) == 1:
            return names[0]
        message = (f"a container name must be specified for pod {name}, choose one of: "
                   f"[{' '.join(names)}]")
        if init:
            message += f" or one of the init containers: [{' '.join(init)}]"
        raise bad_request(message)
    if container not in names:
        raise bad_request(f"container {container} is not valid for pod {name}")
    return container


def find_run(pod: Mapping[str, Any], container: str, previous: bool) -> Run:
    """The run of `container` a log request reads (the current one, or with `previous` the
    one before), or 400 with the kubelet's message when there is none."""
    name = pod["metadata"]["name"]
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if not spec.get("nodeName"):
        raise bad_request(f"pod {name} does not have a host assigned")
    statuses = {s.get("name"): s for s in status.get("containerStatuses") or ()}
    state = statuses.get(container) or {}
    current, last = state.get("state") or {}, (state.get("lastState") or {}).get("terminated")
    index = _container_names(pod).index(container)
    script = None
    text = (pod["metadata"].get("annotations") or {}).get(LOG_ANNOTATION)
    if text is not None and index == 0:
        script = tuple(text.splitlines())
    image = next((c.get("image", "") for c in spec.get("containers") or ()
                  if c.get("name") == container), "")

    def run(started: str | None, term: Mapping[str, Any] | None) -> Run:
        begin = parse_rfc3339(started) if started else time.time()
        if term is None:
            return Run(container, image, begin, script=script)
        finished = parse_rfc3339(term["finishedAt"]) if term.get("finishedAt") else begin
        return Run(container, image, begin, max(begin, finished), int(term.get("exitCode", 0)),
                   str(term.get("reason") or ""), script)

    if previous:
        if not last:
            raise bad_request(f'previous terminated container "{container}" in pod "{name}" '
                              "not found")
        return run(last.get("startedAt"), last)
    if "running" in current:
        return run(current["running"].get("startedAt"), None)
    if "terminated" in current:
        term = current["terminated"]
        return run(term.get("startedAt"), term)
    if last:  # waiting to restart: the run that ended
        return run(last.get("startedAt"), last)
    reason = (current.get("waiting") or {}).get("reason") or "ContainerCreating"
    why = {"ErrImagePull": "image can't be pulled",
           "ImagePullBackOff": "trying and failing to pull image"}.get(reason, reason)
    raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {why}')


@dataclass(slots=True)
class LogOptions:
    container: str | None
    follow: bool
    previous: bool
    timestamps: bool
    tail: int | None
    since: float | None
    limit: int | None


def log_options(request: web.Request, pod_name: str) -> LogOptions:
    """The query of a log request, refused as PodLogOptions validation refuses it."""
    tail = _int_param(request, "tailLines")
    since_seconds = _int_param(request, "sinceSeconds")
    limit = _int_param(request, "limitBytes")
    since_time = request.query.get("sinceTime")
    causes = []
    if tail is not None and tail < 0:
        causes.append(("tailLines", "FieldValueInvalid", f"Invalid value: {tail}: must be "
                       "greater than or equal to 0"))
    if since_seconds is not None and since_seconds < 1:
        causes.append(("sinceSeconds", "FieldValueInvalid", f"Invalid value: {since_seconds}: "
                       "must be greater than 0"))
    if limit is not None and limit < 1:
        causes.append(("limitBytes", "FieldValueInvalid", f"Invalid value: {limit}: must be "
                       "greater than 0"))
    if since_seconds is not None and since_time:
        causes.append(("", "FieldValueForbidden", "Forbidden: at most one of `sinceTime` or "
                       "`sinceSeconds` may be specified"))
    since: float | None = None
    if since_time:
        try:
            since = datetime.fromisoformat(since_time.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise bad_request(f'parsing time "{since_time}" as RFC 3339: cannot parse') \
                from None
    elif since_seconds is not None and since_seconds > 0:
        since = time.time() - since_seconds
    if causes:
        raise invalid("PodLogOptions", pod_name, causes)
    return LogOptions(container=request.query.get("container") or None,
                      follow=_flag(request, "follow"), previous=_flag(request, "previous"),
                      timestamps=_flag(request, "timestamps"), tail=tail, since=since,
                      limit=limit)


def _stamp(when: float) -> str:
    """RFC 3339 with nanoseconds, as the kubelet prefixes lines with `timestamps=true`."""
    moment = datetime.fromtimestamp(when, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 1000:09d}Z"


def render(run: Run, start: int, stop: int, timestamps: bool) -> Iterator[bytes]:
    for index in range(start, stop):
        when, text = run.line(index)
        yield ((_stamp(when) + " " if timestamps else "") + text + "\n").encode()


class LogApi:
    """`GET /api/v1/namespaces/{ns}/pods/{name}/log`."""

    def __init__(self, api: Api) -> None:
        self.pods: Resource = api.store["pods"]

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("GET", "/api/v1/namespaces/{ns}/pods/{name}/log", self.read_log)]

    async def read_log(self, request: web.Request) -> web.StreamResponse:
        namespace, name = request.match_info["ns"], request.match_info["name"]
        pod = self.pods.require(namespace, name).obj
        options = log_options(request, name)
        container = choose_container(pod, options.container)
        run = find_run(pod, container, options.previous)
        now = time.time()
        stop = run.count(now)
        start = 0 if options.since is None else run.first_since(options.since)
        if options.tail is not None:
            start = max(start, stop - options.tail)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        budget = options.limit
        try:
            budget = await self._write(resp, render(run, start, stop, options.timestamps),
                                       budget)
            if options.follow and not options.previous and run.finished is None:
                await self._follow(resp, namespace, name, container, run, max(start, stop),
                                   options.timestamps, budget)
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the reader went away
        return resp

    @staticmethod
    async def _write(resp: web.StreamResponse, chunks: Iterator[bytes], budget: int | None
                     ) -> int | None:
        """Write lines, at most `budget` bytes of them; the budget left (None: no limit)."""
        batch: list[bytes] = []
        for chunk in chunks:
            if budget is not None:
                if budget <= 0:
                    break
                chunk = chunk[:budget]
                budget -= len(chunk)
            batch.append(chunk)
            if len(batch) >= 256:
                await resp.write(b"".join(batch))
                batch.clear()
        if batch:
            await resp.write(b"".join(batch))
        return budget

    async def _follow(self, resp: web.StreamResponse, namespace: str, name: str,
                      container: str, run: Run, sent: int, timestamps: bool,
                      budget: int | None) -> None:
        """Stream the run's lines as they come; end when the run ends (its exit line sent) or
        the pod is gone."""
        while budget is None or budget > 0:
            stored = self.pods.get(namespace, name)
            if stored is None:
                return
            latest = run
            with contextlib.suppress(ApiError):
                latest = find_run(stored.obj, container, previous=False)
            if latest.started != run.started:
                # the container restarted since: the run followed is now its previous one
                with contextlib.suppress(ApiError):
                    latest = find_run(stored.obj, container, previous=True)
                if latest.started != run.started:
                    return
            run = latest
            stop = run.count(time.time())
            if stop > sent:
                budget = await self._write(resp, render(run, sent, stop, timestamps), budget)
                sent = stop
            if run.finished is not None:
                return
            wait = min(FOLLOW_POLL_SECONDS, max(0.01, run.started + sent - time.time()))
            await asyncio.sleep(wait)
