"""Pure-ASGI middleware: request context, access log and metrics
(outermost), body limit.

:class:`RequestContextMiddleware` gives every request an id, returns it (and
the worker's PID, so load tests can see which worker answered) in response
headers, with the stage timings of a prediction as ``Server-Timing``; it
writes one access line and counts one request (route, status, latency) per
request, and is the last resort for unexpected exceptions: they are logged
with the request id and answered with a generic 500 that says nothing about
the failure.

:class:`BodyLimitMiddleware` answers 413 when ``Content-Length`` is too large,
and stops buffering a chunked body as soon as it passes the limit. Before it
answers, it reads and discards the rest of the body (up to
``MAX_DRAIN_BYTES``): a client that is still sending when the server closes
the connection gets a reset instead of the answer (Python's ``urllib`` and
``http.client`` do; curl happens not to). A client that asked
``Expect: 100-continue`` has sent nothing yet and is answered at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.app import metrics
from api.app.errors import error_response
from api.app.exceptions import BODY
from api.app.request_context import (
    REQUEST_ID_HEADER,
    bind_request_id,
    new_request_id,
    unbind_request_id,
)
from api.app.schemas import ErrorDetail

WORKER_PID_HEADER = "X-Worker-PID"
#: Paths polled by orchestrators and Prometheus: logged at DEBUG when they succeed.
QUIET_PATHS = frozenset({"/api/v1/health", "/api/v1/ready", "/metrics"})
#: Status recorded for a request whose client went away before the answer.
CLIENT_GONE = 499
#: How long an over-limit body may take to be read and discarded.
DRAIN_SECONDS = 10.0

access_log = logging.getLogger("api.access")
error_log = logging.getLogger("api.errors")

INTERNAL_ERROR = (
    "internal error: the request could not be completed. It has been logged; "
    "quote the request id when reporting it"
)


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


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, max_drain_bytes: int = 0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_drain_bytes = max_drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            # A client waiting for "100 Continue" has not sent the body: nothing to drain.
            waiting = headers.get("expect", "").lower() == "100-continue"
            drained = waiting or await self._drain(receive, 0)
            await self._too_large(scope, receive, send, close=not drained)
            return
        # Read the whole body here (the endpoints need all of it anyway), then
        # replay it: the limit holds for chunked bodies with no Content-Length too.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                await self.app(scope, _replay([], message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                more = bool(message.get("more_body", False))
                drained = not more or await self._drain(receive, size)
                await self._too_large(scope, receive, send, close=not drained)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        await self.app(scope, _replay(chunks, None, receive), send)

    async def _drain(self, receive: Receive, already: int) -> bool:
        """Read and discard the rest of the body; True when all of it was read
        (within ``max_drain_bytes`` and ``DRAIN_SECONDS``)."""
        size = already
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                while size <= self.max_drain_bytes:
                    message = await receive()
                    if message["type"] != "http.request":
                        return False
                    size += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return size <= self.max_drain_bytes
        except TimeoutError:
            return False
        return False

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, *, close: bool) -> None:
        detail = ErrorDetail(
            row=None,
            field=BODY,
            message=f"the body is larger than {self.max_body_bytes} bytes: "
            "split the houses into smaller batches",
        )
        # Keep-alive only when the whole body was read: otherwise the rest of
        # it would be taken for the next request.
        headers = {"Connection": "close"} if close else None
        response = error_response(413, [detail], headers=headers)
        await response(scope, receive, send)


def _replay(chunks: list[bytes], first: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that yields the buffered body once, then defers to the server."""
    pending: list[Message] = (
        [first]
        if first is not None
        else [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
    )

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
