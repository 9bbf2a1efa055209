"""Where a window of the prediction log starts: what ``regression-model drift
--since``, ``log-prune --older-than`` and ``GET /api/v1/drift?since=`` take."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

#: The earliest time there is: a span reaching further back means "everything".
EARLIEST = datetime.min.replace(tzinfo=UTC)
#: What is accepted, in words for an error message.
SINCE_FORMS = (
    "an ISO 8601 time such as 2026-11-27T00:00:00Z, or a span back from now such as 24h or 7d"
)
#: Longer than any ISO 8601 time with microseconds and an offset.
MAX_SINCE_LENGTH = 64
#: A span back from now: 30m, 24h, 7d, 2w (bounded digits: no huge-number parsing).
SPAN = re.compile(r"([0-9]{1,15}(?:\.[0-9]{1,9})?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when it has no offset) or a span back from
    ``now``, as a timezone-aware time. Raises ``ValueError`` with a message
    for the person who typed it."""
    now = now or datetime.now(UTC)
    if len(text) > MAX_SINCE_LENGTH:
        raise ValueError(f"longer than {MAX_SINCE_LENGTH} characters: send {SINCE_FORMS}")
    span = SPAN.fullmatch(text)
    if span:
        seconds = float(span.group(1)) * _UNIT_SECONDS[span.group(2)]
        if not math.isfinite(seconds) or seconds >= (now - EARLIEST).total_seconds():
            return EARLIEST
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text[:MAX_SINCE_LENGTH]!r} is neither an ISO 8601 time nor a span: send "
            f"{SINCE_FORMS}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
