"""A workload's pod logs and Kubernetes events, read from Kubernetes with the official client
(read-only: submission lists pods and events and reads `pods/log`, it changes nothing in the
cluster).

The client is synchronous: each log request holds a thread of `PodLogs`' own pool while it
reads, chunk by chunk, and hands each chunk to the event loop as it comes, so a followed log
is streamed through and never held in memory. Kubernetes' answers become the API's errors,
naming the field the caller can change.
"""

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from fairway_kube import api_client, parse_body
from fairway_submission.core.errors import ApiError, field_error

log = logging.getLogger("fairway.submission.logs")

# The label lifecycle puts on every pod of a workload (its value: the workload's id); with the
# pod's name it finds the pod in whatever namespace its project uses.
WORKLOAD_LABEL = "fairway.io/workload-id"
CHUNK_BYTES = 16 * 1024
READ_TIMEOUT_SECONDS = 30.0  # a log that is not followed must come within this
EVENT_QUERIES_PER_POD = 16  # up to this many pods, their events are asked for pod by pod
MAX_EVENTS = 500  # the newest this many events of a workload are shown


@dataclass(frozen=True)
class LogQuery:
    """What of a pod's log a caller asked for (Kubernetes' PodLogOptions)."""

    container: str | None = None
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"follow": self.follow, "previous": self.previous,
                               "timestamps": self.timestamps}
        for key, value in (("container", self.container), ("tail_lines", self.tail_lines),
                           ("since_seconds", self.since_seconds)):
            if value is not None:
                out[key] = value
        return out


class PodLogs:
    """Reads pods and their logs from the cluster of `kubeconfig` (None: the in-cluster
    service account), with at most `streams` log requests at once."""

    def __init__(self, kubeconfig: str | None, streams: int) -> None:
        self._kubeconfig = kubeconfig
        self._core: client.CoreV1Api | None = None
        self._pool = ThreadPoolExecutor(max_workers=streams, thread_name_prefix="pod-logs")

    def _api(self) -> client.CoreV1Api:
        if self._core is None:  # first use: a submission that never reads a log needs no cluster
            try:
                self._core = client.CoreV1Api(api_client(self._kubeconfig))
            except Exception as exc:  # no kubeconfig, not in a cluster: say so, per request
                log.warning("no Kubernetes client: %s", exc)
                raise ApiError(503, "pod logs and events are unavailable: submission has no "
                                    "Kubernetes "
                                    "configuration (KUBECONFIG)") from None
        return self._core

    async def _in_thread(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)

    async def namespace_of(self, workload_id: str, pod: str) -> str:
        """The namespace of the workload's pod, or 404 naming it when it is gone."""
        api = self._api()

        def find() -> Any:
            return api.list_pod_for_all_namespaces(
                label_selector=f"{WORKLOAD_LABEL}={workload_id}",
                field_selector=f"metadata.name={pod}", _preload_content=False,
                _request_timeout=READ_TIMEOUT_SECONDS)

        response = await self._call(find, pod)
        items = (parse_body(response.data) or {}).get("items") or []
        if not items:
            raise field_error(404, "pod", f"pod {pod} of workload {workload_id} no longer "
                                          "exists in the cluster")
        return str(items[0]["metadata"]["namespace"])

    async def events(self, workload_id: str) -> list[dict[str, Any]]:
        """The Kubernetes events about the workload's pods (scheduling, image pulls, starts,
        kills, the node-level scheduler's moves), oldest first. Found by the pods' uids, so a
        pod of the same name in another namespace, or an earlier pod of that name, never
        lends its events. Pods that are gone take their events with them."""
        api = self._api()

        def read() -> list[dict[str, Any]]:
            pods = parse_body(api.list_pod_for_all_namespaces(
                label_selector=f"{WORKLOAD_LABEL}={workload_id}", _preload_content=False,
                _request_timeout=READ_TIMEOUT_SECONDS).data) or {}
            by_uid: dict[str, str] = {}
            namespaces: set[str] = set()
            for pod in pods.get("items") or []:
                meta = pod.get("metadata") or {}
                if meta.get("uid"):
                    by_uid[meta["uid"]] = meta.get("name", "")
                    namespaces.add(meta.get("namespace") or "default")
            found: list[dict[str, Any]] = []
            for namespace in sorted(namespaces):
                # A few pods: asked by uid, one by one; many: the namespace's pod events,
                # kept by uid here (fewer calls than pods).
                selectors = ([f"involvedObject.kind=Pod,involvedObject.uid={uid}"
                              for uid in by_uid] if len(by_uid) <= EVENT_QUERIES_PER_POD
                             else ["involvedObject.kind=Pod"])
                for selector in selectors:
                    answer = parse_body(api.list_namespaced_event(
                        namespace, field_selector=selector, _preload_content=False,
                        _request_timeout=READ_TIMEOUT_SECONDS).data) or {}
                    found.extend(e for e in answer.get("items") or []
                                 if (e.get("involvedObject") or {}).get("uid") in by_uid)
            # Times have a second's precision: within one second, the order they were
            # written in (the resource version, which every API server in use counts up).
            found.sort(key=lambda e: _written(e, _time(
                e.get("lastTimestamp") or (e.get("series") or {}).get("lastObservedTime")
                or e.get("firstTimestamp") or e.get("eventTime"))))
            return [_event(e, by_uid) for e in found[-MAX_EVENTS:]]

        return await self._call(read, f"of workload {workload_id}")

    async def open(self, namespace: str, pod: str, query: LogQuery) -> AsyncIterator[bytes]:
        """Start reading the log; Kubernetes' refusals are raised here, before anything is
        sent, and the returned iterator then yields the text as it comes."""
        api = self._api()

        def start() -> Any:
            return api.read_namespaced_pod_log(
                pod, namespace, _preload_content=False,
                _request_timeout=None if query.follow else READ_TIMEOUT_SECONDS,
                **query.kwargs())

        response = await self._call(start, pod)
        return self._chunks(response)

    async def _call(self, func: Any, pod: str) -> Any:
        try:
            return await self._in_thread(func)
        except client.exceptions.ApiException as exc:
            raise _refusal(exc.status, parse_body(exc.body), pod) from None
        except ApiError:
            raise
        except Exception as exc:  # connection refused, timed out: the cluster, not the caller
            log.warning("Kubernetes API call for pod %s failed: %s", pod, exc)
            raise ApiError(503, "the Kubernetes API did not answer; try again",
                           headers={"Retry-After": "2"}) from None

    async def _chunks(self, response: Any) -> AsyncIterator[bytes]:
        stream: Iterator[bytes] = response.stream(CHUNK_BYTES, decode_content=True)
        try:
            while True:
                chunk = await self._in_thread(next, stream, None)
                if chunk is None:
                    return
                if chunk:
                    yield chunk
        except Exception as exc:  # the cluster went away mid-stream: end the text there
            log.warning("pod log stream ended early: %s", exc)
        finally:
            _hang_up(response)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _event(event: dict[str, Any], pods: dict[str, str]) -> dict[str, Any]:
    """A core/v1 Event as the API shows it (events.k8s.io's newer fields where the older
    ones are empty, as `kubectl describe` reads them)."""
    involved = event.get("involvedObject") or {}
    source = event.get("source") or {}
    first = event.get("firstTimestamp") or event.get("eventTime")
    series = event.get("series") or {}
    last = event.get("lastTimestamp") or series.get("lastObservedTime") or first
    return {
        "pod": pods.get(involved.get("uid", ""), involved.get("name", "")),
        "type": event.get("type") or "Normal",
        "reason": event.get("reason") or "",
        "message": event.get("message") or "",
        "count": event.get("count") or series.get("count") or 1,
        "firstTime": _time(first),
        "lastTime": _time(last),
        "source": source.get("component") or event.get("reportingComponent") or "",
    }


def _written(event: dict[str, Any], last: str | None) -> tuple[str, int]:
    version = str((event.get("metadata") or {}).get("resourceVersion") or "")
    return last or "", int(version) if version.isdigit() else 0


def _time(value: Any) -> str | None:
    """An RFC 3339 time as the API writes times (ISO 8601 with the offset), so that they
    sort and compare as times: Kubernetes' clients write `Z` or `+00:00`, with or without
    fractions."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).astimezone(UTC).isoformat()
    except ValueError:
        return str(value)


def _hang_up(response: Any) -> None:
    """End a log response, also when a worker thread is still blocked reading it (a followed
    log waiting for its next line, whose reader left): closing the file alone does not wake
    that read, shutting the socket down does."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        response.close()


def _refusal(status: int, body: Any, pod: str) -> ApiError:
    """Kubernetes' answer to a log request as the API's error."""
    message = body.get("message") if isinstance(body, dict) else None
    message = message or (body if isinstance(body, str) else f"Kubernetes answered {status}")
    if status == 404:
        return field_error(404, "pod", f"pod {pod} no longer exists in the cluster")
    if status == 400:
        if "container name must be specified" in message or "is not valid for pod" in message:
            return field_error(400, "container", message)
        if "previous terminated container" in message:
            return field_error(409, "previous", message)
        return field_error(409, "pod", message)  # not started yet: the pod's state, not the ask
    if status in (401, 403):
        log.warning("Kubernetes refused submission's log request (%s): %s", status, message)
        return ApiError(503, "pod logs and events are unavailable: the cluster refused "
                             "submission's request "
                             f"({status})")
    if status == 422:
        return ApiError(400, message)
    return ApiError(503, f"the Kubernetes API answered {status}: {message}",
                    headers={"Retry-After": "2"})
