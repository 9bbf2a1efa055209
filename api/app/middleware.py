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
and counts a body as the app reads it: past the limit (chunked bodies have no
``Content-Length``) the read raises a 413, and a body not complete within
``BODY_TIMEOUT_SECONDS`` of the request raises a 408 (connection closed), so
a client trickling bytes holds no connection for long. The body is not read
before the app asks for it: a key checked before the body (``security.py``)
refuses a request without reading it. Before a 413, and before any answer
that leaves the body unread (a 401, a route that takes no body), it reads
and discards the rest (up to ``MAX_DRAIN_BYTES``): a client that is still
sending when the server closes the connection gets a reset instead of the
answer (Python's ``urllib`` and ``http.client`` do; curl happens not to).
Beyond that bound, or past the deadline, the answer says
``Connection: close``. A client that asked ``Expect: 100-continue`` has sent
nothing yet and is answered at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.app.core.errors import error_response
from api.app.core.exceptions import BODY, request_error
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
#: How long an over-limit body may take to be read and discarded.
DRAIN_SECONDS = 10.0

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


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_drain_bytes: int = 0,
        body_timeout_seconds: float = 30.0,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_drain_bytes = max_drain_bytes
        self.body_timeout_seconds = body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.body_timeout_seconds
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        # A client waiting for "100 Continue" has not sent the body: nothing to drain.
        waiting = headers.get("expect", "").lower() == "100-continue"
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            drained = waiting or await self.drain(receive, 0, deadline)
            await self._too_large(scope, receive, send, close=not drained)
            return
        body = _Body(
            self,
            receive,
            deadline,
            expected="transfer-encoding" in headers or declared not in (None, "0"),
            waiting=waiting,
        )
        await self.app(scope, body.receive, body.wrap(send))

    async def drain(self, receive: Receive, already: int, deadline: float) -> bool:
        """Read and discard the rest of the body; True when all of it was read
        (within ``max_drain_bytes``, ``DRAIN_SECONDS`` and the body's deadline)."""
        size = already
        until = min(deadline, asyncio.get_running_loop().time() + DRAIN_SECONDS)
        try:
            async with asyncio.timeout_at(until):
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

    def too_large_message(self) -> str:
        return (
            f"the body is larger than {self.max_body_bytes} bytes: "
            "split the houses into smaller batches"
        )

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, *, close: bool) -> None:
        detail = ErrorDetail(row=None, field=BODY, message=self.too_large_message())
        # Keep-alive only when the whole body was read: otherwise the rest of
        # it would be taken for the next request.
        headers = {"Connection": "close"} if close else None
        response = error_response(413, [detail], headers=headers)
        await response(scope, receive, send)


class _Body:
    """One request's body as the app reads it: counted against the limit and
    the deadline; what the app leaves unread is drained (or the connection
    closed) when its answer starts."""

    def __init__(
        self,
        limits: BodyLimitMiddleware,
        receive: Receive,
        deadline: float,
        *,
        expected: bool,
        waiting: bool,
    ) -> None:
        self.limits = limits
        self.server_receive = receive
        self.deadline = deadline
        self.waiting = waiting
        self.size = 0
        #: No more body to read: all of it arrived (or there was none).
        self.complete = not expected
        #: Stopped reading before the end (408, an undrained 413, the client gone):
        #: the connection must close.
        self.abandoned = False
        #: The app has asked for the body (the server then sent "100 Continue").
        self.asked = False

    async def receive(self) -> Message:
        if self.complete or self.abandoned:
            return await self.server_receive()  # e.g. waiting for the disconnect
        self.asked = True
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self.server_receive()
        except TimeoutError:
            self.abandoned = True
            raise request_error(
                408,
                BODY,
                f"the body was not complete within {self.limits.body_timeout_seconds:g} "
                "seconds of the request: send it at once",
                {"Connection": "close"},
            ) from None
        if message["type"] != "http.request":  # the client went away
            self.abandoned = True
            return message
        self.size += len(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if self.size > self.limits.max_body_bytes:
            # Read and discard the rest before answering, so that a client still
            # sending gets the 413 rather than a reset connection.
            drained = not more or await self.limits.drain(
                self.server_receive, self.size, self.deadline
            )
            self.complete, self.abandoned = drained, not drained
            raise request_error(
                413,
                BODY,
                self.limits.too_large_message(),
                None if drained else {"Connection": "close"},
            )
        self.complete = not more
        return message

    def wrap(self, send: Send) -> Send:
        async def send_after_the_body(message: Message) -> None:
            if message["type"] == "http.response.start" and not (self.complete or self.abandoned):
                # The app answered without reading the body (a 401 checked before
                # it, a route that takes none): read and discard it so the client
                # gets the answer, not a reset, and the connection stays usable.
                # A client still waiting for "100 Continue" has sent nothing:
                # close instead of waiting for a body that may never come.
                drained = (not self.waiting or self.asked) and await self.limits.drain(
                    self.server_receive, self.size, self.deadline
                )
                self.complete, self.abandoned = drained, not drained
                if not drained:
                    MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        return send_after_the_body
