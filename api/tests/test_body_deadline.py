"""The body deadline of ``BodyLimitMiddleware``, in process: one timer per
slot of ``DEADLINE_SLOT_SECONDS`` expires the reads still waiting, as a 408;
a cancellation by the server stays a cancellation. (Over HTTP, with a client
trickling bytes: test_request_bodies.py.)"""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.types import Message, Receive, Scope, Send

from api.app.core.body_limit import DEADLINE_SLOT_SECONDS, BodyLimitMiddleware
from api.app.core.exceptions import RequestRejected

TIMEOUT = 0.3
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"1000")]


def _scope() -> Scope:
    return {"type": "http", "method": "POST", "path": "/", "headers": HEADERS}


async def _body_never_comes() -> Message:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def _ignore(message: Message) -> None:
    pass


def _reading(reads: list[Message | BaseException]) -> BodyLimitMiddleware:
    """The middleware around an app that reads the body and notes what it got."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            reads.append(await receive())
        except (RequestRejected, asyncio.CancelledError) as exc:
            reads.append(exc)
            raise

    return BodyLimitMiddleware(app, max_body_bytes=10_000, body_timeout_seconds=TIMEOUT)


def test_a_read_past_the_deadline_is_a_408() -> None:
    reads: list[Message | BaseException] = []
    limits = _reading(reads)
    started = time.monotonic()
    with pytest.raises(RequestRejected) as caught:
        asyncio.run(limits(_scope(), _body_never_comes, _ignore))
    waited = time.monotonic() - started
    assert caught.value.status_code == 408
    assert f"within {TIMEOUT:g} seconds" in caught.value.errors[0].message
    assert caught.value.headers == {"Connection": "close"}
    assert TIMEOUT <= waited <= TIMEOUT + DEADLINE_SLOT_SECONDS + 1.0
    assert not limits.deadlines.slots  # nothing left waiting


def test_the_server_cancelling_a_read_is_not_a_408() -> None:
    reads: list[Message | BaseException] = []
    limits = _reading(reads)

    async def cancelled_before_the_deadline() -> None:
        task = asyncio.ensure_future(limits(_scope(), _body_never_comes, _ignore))
        await asyncio.sleep(TIMEOUT / 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The slot's timer still fires: it finds nothing to expire.
        await asyncio.sleep(TIMEOUT)

    asyncio.run(cancelled_before_the_deadline())
    [read] = reads
    assert isinstance(read, asyncio.CancelledError)
    assert not any(limits.deadlines.slots.values())


def test_a_body_read_in_time_is_no_longer_watched() -> None:
    reads: list[Message | BaseException] = []
    limits = _reading(reads)

    async def whole_body() -> Message:
        return {"type": "http.request", "body": b"x" * 1000, "more_body": False}

    async def read_then_wait_past_the_deadline() -> None:
        await limits(_scope(), whole_body, _ignore)
        await asyncio.sleep(TIMEOUT + DEADLINE_SLOT_SECONDS)

    asyncio.run(read_then_wait_past_the_deadline())
    [read] = reads
    assert isinstance(read, dict) and read["body"] == b"x" * 1000
    assert not limits.deadlines.slots
