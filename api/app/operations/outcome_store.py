"""Where ``POST /api/v1/outcomes`` stores sale prices: the prediction log's
database (its ``outcomes`` table), through an engine of its own, apart from
the log writer's.

The work is the package's (``regression_model.monitoring.outcomes``: checking
each row, storing idempotently, looking request references up in the log);
here it runs off the event loop, a few jobs at a time per worker (a request
waiting for a slot holds no thread), each bounded by the log's timeout. Any
failure of the database (down, hung, locked, full; the schema cannot be
migrated) becomes :class:`OutcomeStoreUnavailableError`, logged at ERROR, for a 503:
nothing is stored then, and the next request tries again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from api.app.core.offload import run_cpu_bound
from regression_model.monitoring.log_store import create_log_engine, migrate
from regression_model.monitoring.outcomes import StoredOutcomes, store_outcomes, validate_outcomes

logger = logging.getLogger(__name__)

#: Outcomes up to this many are checked on the event loop (microseconds each).
INLINE_OUTCOMES = 64


class OutcomeStoreUnavailableError(RuntimeError):
    """The database could not store the outcomes (the message says why, without the URL)."""


@dataclass(frozen=True)
class RecordedOutcomes:
    """What became of a request's outcomes: each bad row's errors, and what the others did."""

    errors: list[dict[str, Any]]
    stored: StoredOutcomes


class OutcomeStore:
    """The outcomes of one worker: checked, then stored in the log's database."""

    def __init__(self, url: str, *, timeout: float = 5.0, concurrent_jobs: int = 2) -> None:
        self._url = url
        self._timeout = timeout
        self._engine: Engine | None = None
        self._migrated = False
        self._lock = threading.Lock()
        self._concurrent_jobs = concurrent_jobs
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return "OutcomeStore()"

    def _ready_engine(self) -> Engine:
        """The engine, the schema migrated once (idempotent, under the migration lock)."""
        with self._lock:
            if self._engine is None:
                self._engine = create_log_engine(self._url, timeout=self._timeout)
            if not self._migrated:
                migrate(self._engine)
                self._migrated = True
            return self._engine

    def _store(self, checked: Sequence[Any]) -> StoredOutcomes:
        try:
            return store_outcomes(self._ready_engine(), checked)
        except (SQLAlchemyError, OSError, CommandError) as exc:
            logger.error("outcomes not stored: %s", type(exc).__name__, exc_info=True)
            raise OutcomeStoreUnavailableError(
                f"the prediction log's database cannot store outcomes ({type(exc).__name__}): "
                "nothing was stored; retry later"
            ) from None

    async def record(self, items: Sequence[Any]) -> RecordedOutcomes:
        """Check ``items`` (outcomes as sent) and store the good ones; raises
        :class:`OutcomeStoreUnavailableError` when the database fails."""
        if len(items) <= INLINE_OUTCOMES:
            checked, errors = validate_outcomes(items)
        else:
            checked, errors = await run_cpu_bound(validate_outcomes, items)
        if not checked:  # nothing to store: the database is not asked
            return RecordedOutcomes(errors, StoredOutcomes())
        async with self._job_slots():
            stored = await run_in_threadpool(self._store, checked)
        return RecordedOutcomes(errors, stored)

    def _job_slots(self) -> asyncio.Semaphore:
        """Bounds the threads a burst of requests holds while the database is
        slow; one per event loop (a semaphore belongs to the loop it waited in)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self._concurrent_jobs))
        return self._slots[1]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
