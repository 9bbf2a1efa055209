"""The request id: taken from ``X-Request-ID`` when the client sends a sane
one, generated otherwise, visible to every log line of the request (also in
the threadpool, which copies context variables) and returned in the response
header of the same name."""

from __future__ import annotations

import random
import re
import time
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"

_current: ContextVar[str | None] = ContextVar("request_id", default=None)
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return _current.get()


def new_request_id(client_value: str | None) -> str:
    """The client's id when it is short and plain (safe to log), else a new one."""
    if client_value and _ACCEPTED.fullmatch(client_value):
        return client_value
    # 32 hex digits, time first (nanoseconds), then 64 random bits: as unique
    # as a UUID, and increasing, so the prediction log's index on request ids
    # grows at its end instead of at random places.
    return f"{time.time_ns():016x}{random.getrandbits(64):016x}"


def bind_request_id(request_id: str) -> object:
    """Make ``request_id`` current; returns a token for :func:`unbind_request_id`."""
    return _current.set(request_id)


def unbind_request_id(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
