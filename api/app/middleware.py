"""Pure-ASGI middleware: request context and access log (outermost), body limit.

:class:`RequestContextMiddleware` gives every request an id, returns it (and
the worker's PID, so load tests can see which worker answered) in response
headers, writes one access line per request, and is the last resort for
unexpected exceptions: they are logged with the request id and answered with
a generic 500 that says nothing about the failure.

:class:`BodyLimitMiddleware` answers 413 before the application reads a byte
when ``Content-Length`` is too large, and stops reading a chunked body as
soon as it passes the limit.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
PROBE_PATHS = frozenset({"/api/v1/health", "/api/v1/ready"})

access_log = logging.getLogger("api.access")
error_log = logging.getLogger("api.errors")

INTERNAL_ERROR = (
    "internal error: the request could not be completed. It has been logged; "
    "quote the request id when reporting it"
)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pid = str(os.getpid())

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
            state: dict[str, Any] = scope.get("state") or {}
            # Orchestrators poll the probes every few seconds: successful probes at DEBUG.
            quiet = scope["path"] in PROBE_PATHS and status is not None and status < 400
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
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": (scope.get("client") or (None,))[0],
                    **{k: v for k, v in state.items() if k in ("houses", "priced", "rejected")},
                },
            )
            unbind_request_id(token)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
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
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        await self.app(scope, _replay(chunks, None, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = ErrorDetail(
            row=None,
            field=BODY,
            message=f"the body is larger than {self.max_body_bytes} bytes: "
            "split the houses into smaller batches",
        )
        response = error_response(413, [detail], headers={"Connection": "close"})
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
