"""The body limit and deadline: pure-ASGI middleware.

:class:`BodyLimitMiddleware` answers 413 when ``Content-Length`` is too large,
and counts a body as the app reads it: past the limit (chunked bodies have no
``Content-Length``) the read raises a 413, and a body not complete within
``BODY_TIMEOUT_SECONDS`` of the request raises a 408 (connection closed), so
a client trickling bytes holds no connection for long (the deadlines share one
timer per ``DEADLINE_SLOT_SECONDS``, not one per request). The body is not read
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
import math
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.app.core.errors import error_response
from api.app.core.exceptions import BODY, RequestRejected, request_error
from api.app.schemas import ErrorDetail

#: How long an over-limit body may take to be read and discarded.
DRAIN_SECONDS = 10.0
#: Body deadlines are rounded up to a multiple of this (``_Deadlines``): a 408
#: may come this much later than ``BODY_TIMEOUT_SECONDS``.
DEADLINE_SLOT_SECONDS = 0.1


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
        self.deadlines = _Deadlines()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.body_timeout_seconds
        # One pass over the raw headers (ASGI servers give the names in lower
        # case); the first of a repeated header counts, as in Starlette's Headers.
        declared: bytes | None = None
        expect = b""
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value if declared is None else declared
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"expect":
                expect = expect or value
        # A client waiting for "100 Continue" has not sent the body: nothing to drain.
        waiting = expect.lower() == b"100-continue"
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            drained = waiting or await self.drain(receive, 0, deadline)
            await self._too_large(scope, receive, send, close=not drained)
            return
        body = _Body(
            self,
            receive,
            send,
            deadline,
            expected=chunked or declared not in (None, b"0"),
            waiting=waiting,
        )
        try:
            await self.app(scope, body.receive, body.send)
        finally:
            body.stop_watching()

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


class _Deadlines:
    """The bodies being read, by the slot of ``DEADLINE_SLOT_SECONDS`` their
    deadline falls in, with one timer per slot that expires those still
    incomplete. A timeout per read (``asyncio.timeout_at``) arms and cancels a
    timer for every request: measured, 5 % of the time of a one-house request."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.slots: dict[int, set[_Body]] = {}

    def watch(self, body: _Body) -> set[_Body]:
        """Expire ``body`` at its deadline (rounded up to its slot) unless it is
        taken out of the set returned before then."""
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # the app served from another event loop (tests)
            self.loop, self.slots = loop, {}
        slot = math.ceil(body.deadline / DEADLINE_SLOT_SECONDS)
        bodies = self.slots.get(slot)
        if bodies is None:
            bodies = self.slots[slot] = set()
            loop.call_at(slot * DEADLINE_SLOT_SECONDS, _expire_slot, self.slots, slot)
        bodies.add(body)
        return bodies


def _expire_slot(slots: dict[int, set[_Body]], slot: int) -> None:
    for body in slots.pop(slot, ()):
        body.expire()


class _Body:
    """One request's body as the app reads it: counted against the limit and
    the deadline; what the app leaves unread is drained (or the connection
    closed) when its answer starts."""

    __slots__ = (
        "abandoned",
        "asked",
        "complete",
        "deadline",
        "expired",
        "limits",
        "reader",
        "server_receive",
        "server_send",
        "size",
        "waiting",
        "watched_in",
    )

    def __init__(
        self,
        limits: BodyLimitMiddleware,
        receive: Receive,
        send: Send,
        deadline: float,
        *,
        expected: bool,
        waiting: bool,
    ) -> None:
        self.limits = limits
        self.server_receive = receive
        self.server_send = send
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
        #: The deadline has passed (``_Deadlines``).
        self.expired = False
        #: The task waiting in ``receive`` for the next part of the body.
        self.reader: asyncio.Task[Any] | None = None
        #: The slot this body waits in (``_Deadlines.watch``), until it is complete.
        self.watched_in: set[_Body] | None = None

    def expire(self) -> None:
        self.expired = True
        if self.reader is not None:
            self.reader.cancel()

    def _timed_out(self) -> RequestRejected:
        self.abandoned = True
        self.stop_watching()
        return request_error(
            408,
            BODY,
            f"the body was not complete within {self.limits.body_timeout_seconds:g} "
            "seconds of the request: send it at once",
            {"Connection": "close"},
        )

    def stop_watching(self) -> None:
        if self.watched_in is not None:
            self.watched_in.discard(self)
            self.watched_in = None

    async def receive(self) -> Message:
        if self.complete or self.abandoned:
            return await self.server_receive()  # e.g. waiting for the disconnect
        self.asked = True
        if self.expired:  # the deadline passed while the app was not reading
            raise self._timed_out()
        if self.watched_in is None:
            self.watched_in = self.limits.deadlines.watch(self)
        reader = asyncio.current_task()
        assert reader is not None  # ASGI apps run in tasks
        cancelling = reader.cancelling()
        self.reader = reader
        try:
            message = await self.server_receive()
        except asyncio.CancelledError:
            # As asyncio.timeout does: a 408 when expire() alone cancelled the
            # read, not when the server cancels the request too.
            if self.expired and reader.uncancel() <= cancelling:
                raise self._timed_out() from None
            raise
        finally:
            self.reader = None
        if message["type"] != "http.request":  # the client went away
            self.abandoned = True
            self.stop_watching()
            return message
        self.size += len(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if self.size > self.limits.max_body_bytes:
            self.stop_watching()
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
        if not more:
            self.complete = True
            self.stop_watching()
        return message

    async def send(self, message: Message) -> None:
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
        await self.server_send(message)
