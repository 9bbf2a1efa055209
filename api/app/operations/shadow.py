"""A shadow challenger: a second verified model (``CHALLENGER_MODEL_DIR``)
prices every request the champion priced, off the request path, and its
prices are stored beside the champion's in the prediction log's database
(table ``shadow_prices``, keyed by the logged house: ``log_id`` and ``row``,
and the challenger's label). They are never returned to a client;
``regression-model compare`` reads them.

The request path only appends the request's log_id and its parsed houses to
an in-memory queue, bounded in houses (``max_queued_houses``): when it is
full the request's houses are dropped, counted in
``shadow_prices_total{outcome="dropped"}``, and the request goes on. It never
waits for the challenger, the lock is held for an append.

One background thread loads the challenger (``load_challenger``: the
manifest's seal, the tables' sha256 and format; another version is allowed)
and prices a real house with it, then every ``flush_seconds`` prices what was
queued, several requests in one ``predict`` call (a house's price never
depends on its batch, so it is the price the challenger gives it alone: the
batching only saves the per-call cost, which is what shadowing costs the
worker; and ``Model.price`` gives the prices as an array, without the lists
of ranges ``predict`` builds: half the cost of a batch of 100), and inserts
the prices, many rows per statement. A challenger that
fails to load leaves the champion serving alone: the reason is logged, and
``/health`` says the challenger failed. A challenger that raises, or a
database that fails, loses that batch's prices (counted as
``outcome="failed"``, logged at ERROR at most every ``ERROR_LOG_SECONDS``);
the database is then left alone with capped exponential backoff, batches
meanwhile counted as failed, so memory never grows and the thread lives on.
"""

from __future__ import annotations

import collections
import functools
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Connection, Engine, insert

from api.app.examples import canary_house
from api.app.operations.log_storage import Backoff
from api.app.operations.shadow_requests import Shadowed, shadowed
from regression_model import (
    CompiledModel,
    ValidationResult,
    challenger_label,
    load_challenger,
)
from regression_model.monitoring.log_store import (
    create_log_engine,
    migrate,
    record_time,
    shadow_prices,
)

logger = logging.getLogger(__name__)

#: Errors of the same kind are logged at most this often (with a count).
ERROR_LOG_SECONDS = 10.0
#: Rows per INSERT statement: 5 parameters each, under SQLite's oldest limit
#: of 999 (one statement per row would release the GIL per row, and the
#: thread would wait out the switch interval for it each time).
ROWS_PER_STATEMENT = 64
#: The row's columns, in the order of each row's values.
COLUMNS = ("log_id", "row", "challenger_version", "logged_at", "price")
#: The driver's placeholder, for the databases written with a plain statement.
_PLACEHOLDERS = {"sqlite": "?", "postgresql": "%s"}

SHADOW_PRICES = Counter(
    "shadow_prices_total",
    "houses the challenger shadowed, by what became of its price: stored (in "
    "shadow_prices), dropped (the queue was full) or failed (the challenger or the "
    "database failed; logged at ERROR)",
    ["outcome"],
)
SHADOW_OUTCOMES = ("stored", "dropped", "failed")


class ShadowState(StrEnum):
    LOADING = "loading"
    SHADOWING = "shadowing"
    FAILED = "failed"


@dataclass(eq=False, repr=False)  # the default repr would show the URL and its password
class Shadow:
    """One worker's challenger: its loading, its queue and its thread."""

    directory: Path
    #: the prediction log's database (None: the log is off, nothing to store beside)
    url: str | None
    _: KW_ONLY
    max_queued_houses: int = 20_000
    flush_seconds: float = 0.1
    #: bound on connecting to the database and on each statement
    timeout: float = 5.0
    retry_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    #: Totals of this worker (tests read them).
    counts: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self.state = ShadowState.LOADING
        #: why the challenger is not shadowing, safe to show to anyone (None: it is)
        self.detail: str | None = "the challenger is loading"
        self.model: CompiledModel | None = None
        #: what its prices are stored under: version and tables' sha256 prefix
        self.label: str | None = None
        self._lock = threading.Lock()
        self._queue: collections.deque[Shadowed] = collections.deque()
        self._queued_houses = 0
        self._busy = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self._migrated = False
        self._database = Backoff()
        self._error_log_due: dict[str, float] = {}

    # -- request path -------------------------------------------------------

    @property
    def shadowing(self) -> bool:
        """Whether requests are being shadowed (the route then keeps the
        champion's validation results for :meth:`submit`)."""
        return self.state is ShadowState.SHADOWING

    def submit(
        self,
        log_id: str | None,
        houses: Sequence[Any],
        validated: Sequence[ValidationResult],
        *,
        strict: bool,
    ) -> None:
        """Queue a priced request's houses for the challenger, or drop them
        (counted) when the queue is full. Never raises, never waits; ignored
        while the challenger is not shadowing, or when the request has no
        log record to store its prices beside (``log_id`` None)."""
        if log_id is None or self.state is not ShadowState.SHADOWING:
            return
        try:
            assert self.model is not None  # shadowing: loaded
            request = shadowed(log_id, houses, validated, self.model.known_fields, strict=strict)
            count = request.count
            with self._lock:
                full = self._queued_houses + count > self.max_queued_houses
                if not full:
                    self._queue.append(request)
                    self._queued_houses += count
            if full:
                self._tally("dropped", count)
        except Exception as exc:  # the request is answered whatever becomes of this
            self._error("submit", "could not queue a request for the challenger: %r", exc)

    @property
    def in_memory(self) -> int:
        """Houses queued, or being priced and stored."""
        return self._queued_houses + self._busy

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Price and store what is queued (bounded in time), then stop."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=2 * self.timeout + 10)
        if self._thread.is_alive():
            logger.error("the shadow challenger did not stop in time; its queue is lost")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until what was queued has been priced and stored (or failed):
        whether it was, within ``timeout`` seconds (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while self.in_memory and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)
        return not self.in_memory

    # -- the thread ---------------------------------------------------------

    def _run(self) -> None:
        self._load()
        while self.state is ShadowState.SHADOWING:
            stopping = self._stopping.is_set()
            try:
                self._drain()
            except Exception as exc:  # nothing ends the thread
                self._error("shadow", "shadow challenger: unexpected failure: %r", exc)
            if stopping:
                break
            if self._wake.wait(self.flush_seconds):
                self._wake.clear()

    def _load(self) -> None:
        if self.url is None:
            self.state = ShadowState.FAILED
            self.detail = (
                "the prediction log is off: shadow prices are stored beside it "
                "(set DATABASE_URL or PREDICTION_LOG_PATH)"
            )
            logger.error("CHALLENGER_MODEL_DIR is set but %s; not shadowing", self.detail)
            return
        try:
            model = load_challenger(self.directory)
            price = model.predict([canary_house()])["predictions"][0]
            if price is None or not math.isfinite(price) or price <= 0:
                raise RuntimeError(f"the challenger priced the canary house {price!r}")
        except Exception:
            # The champion serves alone; the reason goes to the log, never to a client.
            self.state = ShadowState.FAILED
            self.detail = "the challenger failed to load; the service log says why"
            logger.exception(
                "challenger in %s failed to load; the champion serves alone", self.directory
            )
            return
        self.model, self.label = model, challenger_label(model)
        self.detail = None
        self.state = ShadowState.SHADOWING
        logger.info("challenger shadowing", extra={"challenger": self.label})

    def _drain(self) -> None:
        """Price and store what is queued, a request batch at a time."""
        while True:
            with self._lock:
                batch = list(self._queue)
                self._queue.clear()
                self._busy = self._queued_houses
                self._queued_houses = 0
            if not batch:
                return
            try:
                self._store(self._priced(batch))
            finally:
                self._busy = 0

    def _priced(self, batch: list[Shadowed]) -> list[tuple[Any, ...]]:
        """The challenger's price of every house of ``batch`` (None: it refused
        the house), one row of ``shadow_prices`` each; the requests whose
        pricing failed have none."""
        model = self.model
        assert model is not None and self.label is not None
        # Small requests in one batch per strictness, each larger one alone.
        groups = [
            small
            for strict in (False, True)
            if (small := [r for r in batch if r.houses and r.strict is strict])
        ]
        groups += [[request] for request in batch if request.validated]
        rows: list[tuple[Any, ...]] = []
        for requests in groups:
            try:
                prices = _prices(model, requests)
            except Exception as exc:
                self._tally("failed", sum(request.count for request in requests))
                self._error("challenger", "the challenger failed to price a batch: %r", exc)
                continue
            start = 0
            for request in requests:
                # The time as the log's records carry it (UTC, with its offset).
                logged_at = record_time(datetime.fromtimestamp(request.moment, UTC))
                rows += [
                    (request.log_id, row, self.label, logged_at, prices[start + row])
                    for row in range(request.count)
                ]
                start += request.count
        return rows

    def _store(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows``; when the database fails (or is in backoff), they
        are lost, counted and logged."""
        if not rows:
            return
        now = time.monotonic()
        if not self._database.due(now):
            self._tally("failed", len(rows))
            return
        try:
            engine = self._connected()
            with engine.begin() as connection:
                _insert(connection, rows)
        except Exception as exc:
            delay = self._database.failed(now, self.retry_seconds, self.max_backoff_seconds)
            self._tally("failed", len(rows))
            self._error(
                "database",
                "shadow prices not stored (%r); the database is tried again in %.0f s",
                exc,
                delay,
            )
            return
        self._database.succeeded()
        self._tally("stored", len(rows))

    def _connected(self) -> Engine:
        """The engine, the schema migrated once (as the log's writer does)."""
        if self._engine is None:
            assert self.url is not None
            self._engine = create_log_engine(self.url, timeout=self.timeout)
        if not self._migrated:
            migrate(self._engine)
            self._migrated = True
        return self._engine

    # -- accounting ---------------------------------------------------------

    def _tally(self, outcome: str, houses: int) -> None:
        self.counts[outcome] += houses
        SHADOW_PRICES.labels(outcome).inc(houses)

    def _error(self, kind: str, message: str, *args: Any) -> None:
        """Log at ERROR, at most once every ``ERROR_LOG_SECONDS`` per kind."""
        now = time.monotonic()
        if now < self._error_log_due.get(kind, 0.0):
            return
        self._error_log_due[kind] = now + ERROR_LOG_SECONDS
        logger.error(message, *args)


def _prices(model: CompiledModel, requests: list[Shadowed]) -> list[float | None]:
    """The prices of the houses of ``requests`` (None: refused), in order, as
    arrays (``Model.price``, ``price_validated``: what ``predict`` gives,
    without building its lists of ranges): one large request from the
    champion's validation results, or small ones validated again together."""
    if requests[0].validated:
        batches = [model.price_validated(checked) for checked in requests[0].validated]
    else:
        houses = [house for request in requests for house in request.houses]
        batches = [model.price(houses, strict=requests[0].strict, refuse_non_objects=True)]
    return [None if math.isnan(p) else p for batch in batches for p in batch.prices.tolist()]


def _insert(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (``COLUMNS``), skipping one already stored (a house
    shadowed twice). SQLite and PostgreSQL: plain statements of many rows,
    prepared once per row count (SQLAlchemy's compiling of a many-row insert
    cost more than pricing the houses: 65 µs a row); others through
    SQLAlchemy."""
    placeholder = _PLACEHOLDERS.get(connection.dialect.name)
    if placeholder is None:
        moments = {row[3]: datetime.fromisoformat(row[3]) for row in rows}
        values = [
            dict(zip(COLUMNS, (*row[:3], moments[row[3]], row[4]), strict=True)) for row in rows
        ]
        connection.execute(insert(shadow_prices), values)
        return
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        connection.exec_driver_sql(
            _statement(placeholder, len(chunk)), tuple(value for row in chunk for value in row)
        )


@functools.cache
def _statement(placeholder: str, rows: int) -> str:
    one = "(" + ", ".join([placeholder] * len(COLUMNS)) + ")"
    return (
        'INSERT INTO shadow_prices (log_id, "row", challenger_version, logged_at, price) '
        f"VALUES {', '.join([one] * rows)} ON CONFLICT DO NOTHING"
    )
