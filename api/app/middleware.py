"""Pure-ASGI middleware, outermost: request context, access log and metrics
(the body limit, inside it, is ``api.app.core.body_limit``); innermost, HEAD
answered as GET.

:class:`RequestContextMiddleware` gives every request an id, returns it (and
the worker's PID, so load tests can see which worker answered) in response
headers, with the stage timings of a prediction as ``Server-Timing``; it
writes one access line and counts one request (route, status, latency) per
request, and is the last resort for unexpected exceptions: they are logged
with the request id and answered with a generic 500 that says nothing about
the failure.

:class:`HeadAsGetMiddleware` answers ``HEAD`` wherever ``GET`` is answered, as
HTTP asks: the route runs as for ``GET`` (the same API key check, status and
headers, ``Content-Length`` included) and the body is dropped.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.app.core.errors import error_response
from api.app.core.request_context import (
    REQUEST_ID_HEADER,
    bind_request_id,
    new_request_id,
    unbind_request_id,
)
from api.app.operations import metrics
from api.app.schemas import ErrorDetail

WORKER_PID_HEADER = "X-Worker-PID"
#: Paths polled by orchestrators and Prometheus: logged at DEBUG when they succeed.
QUIET_PATHS = frozenset({"/api/v1/health", "/api/v1/ready", "/metrics"})
#: Status recorded for a request whose client went away before the answer.
CLIENT_GONE = 499

access_log = logging.getLogger("api.access")
error_log = logging.getLogger("api.errors")

INTERNAL_ERROR = (
    "internal error: the request could not be completed. It has been logged; "
    "quote the request id when reporting it"
)


#: Control characters (a decoded %0A, %0D, %00, ...) in a request's path.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
_NO_SUCH_PATH = "no such endpoint: see /docs for the API"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, count: bool = True) -> None:
        self.app = app
        self.pid = str(os.getpid())
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = bind_request_id(request_id)
        started = time.perf_counter()
        status: int | None = None

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                headers[WORKER_PID_HEADER] = self.pid
                headers.setdefault("X-Content-Type-Options", "nosniff")
                timings = (scope.get("state") or {}).get("timings")
                if timings:
                    headers["Server-Timing"] = metrics.server_timing(timings)
            await send(message)

        try:
            if _CONTROL_CHARACTER.search(scope["path"]):
                # Starlette's route patterns end in `$`, which also matches
                # before a final newline: /api/v1/model/report/%0A would be
                # answered by the report page. No path of this API has one.
                detail = ErrorDetail(row=None, field="path", message=_NO_SUCH_PATH)
                await error_response(404, [detail])(scope, receive, send_with_headers)
                return
            await self.app(scope, receive, send_with_headers)
        except Exception:
            error_log.exception(
                "unhandled exception", extra={"method": scope["method"], "path": scope["path"]}
            )
            if status is not None:  # the response has started: nothing else can be sent
                raise
            detail = ErrorDetail(row=None, field="*", message=INTERNAL_ERROR)
            response = error_response(500, [detail])
            await response(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            if self.count:
                metrics.observe_request(
                    scope["method"],
                    metrics.route_label(scope),
                    CLIENT_GONE if status is None else status,
                    elapsed,
                )
            state: dict[str, Any] = scope.get("state") or {}
            # Orchestrators poll the probes every few seconds: successful probes at DEBUG.
            quiet = scope["path"] in QUIET_PATHS and status is not None and status < 400
            access_log.log(
                logging.DEBUG if quiet else logging.INFO,
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client": (scope.get("client") or (None,))[0],
                    **{k: v for k, v in state.items() if k in ("houses", "priced", "rejected")},
                },
            )
            unbind_request_id(token)


class HeadAsGetMiddleware:
    """``HEAD`` run as ``GET``, the body dropped. The scope says ``GET`` to the
    routes only: from the response's start on (and after it) it says ``HEAD``
    again, so the server sends no body either and the access log and the
    request metrics count a ``HEAD``. A path that takes no ``GET`` answers
    ``HEAD`` with that path's ``GET`` answer too (405, 404), without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                scope["method"] = "HEAD"
                await send(message)
            elif kind in ("http.response.body", "http.response.pathsend"):
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await send(message)

        scope["method"] = "GET"
        try:
            await self.app(scope, receive, send_without_body)
        finally:
            scope["method"] = "HEAD"
