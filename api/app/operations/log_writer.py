"""The prediction log writer: every house priced or rejected, recorded off
the request path; when the database or the disk fails, the writer carries on,
keeps its memory bounded, says at ERROR what it could not keep, and recovers
by itself. (The log's table, and reading it, are the package's:
``regression_model.monitoring.log_store``; this module only writes it.)

A request only appends one entry to an in-memory queue: its id, time and
result, and its houses as JSON (pydantic-core, a few microseconds a house; no
I/O). Holding the houses as bytes rather than as the parsed objects keeps
them out of the garbage collector's way: queued objects, surviving a
collection or two, made every request's collections dearer (measured: 20 to
40 µs a request). A background thread, every ``flush_seconds``, turns the
queued requests into one record per house (``log_records.py``) and stores
them ``batch_records`` at a time: in the database, else in the spool
(``log_storage.py``, which also replays the spool and deletes old records),
so only one batch of records is ever built at once however long the queue.

When neither the database nor the spool takes a batch (the disk is full), the
writer holds its records in memory and retries both, each with capped
exponential backoff (``retry_seconds`` doubling up to ``max_backoff_seconds``).

Memory is bounded in every case. Beyond ``max_queued_records`` houses in
memory (queued, held, or in the batch being written), the writer spools the
oldest batches (the database is merely slower than the traffic); when the
spool cannot take them either, the oldest records are dropped: counted
(``prediction_log_records_total{outcome="dropped"}``) and logged at ERROR, at
most one line every ``DROP_LOG_SECONDS``. The request path enforces the bound
itself, so nothing depends on the writer being able to run: while the spool
is failing it drops the oldest beyond ``max_queued_records``, and at any time
beyond twice that (the writer is hung in a write, or the traffic brought a
whole bound's worth of houses during one batch's write). A worker's log never
holds more than ``2 * max_queued_records`` houses.

No exception ends the writer: each failure (database, migration, spool,
replay, retention, or anything unexpected) is logged at ERROR, counted in
``prediction_log_failures_total{stage}``, and retried with backoff. The
``prediction_log_queue_records`` gauge is set by the writer after every batch
and every sweep, and by the request path at most once a second, so it tells
the truth while the writer is failing too.

On shutdown (SIGTERM, after uvicorn has drained the requests) :meth:`close`
writes what is in memory, or spools it; what it can do neither with is
counted and reported at ERROR. A worker killed with SIGKILL loses what it had
queued and not yet written: at most ``flush_seconds`` of its traffic.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

from api.app.operations import metrics
from api.app.operations.log_records import Entry, Record, new_log_id, queued_json, records_of
from api.app.operations.log_storage import Backoff, LogStorage
from regression_model import PriceRange

logger = logging.getLogger(__name__)

#: Drops are logged at most this often (with the count since the last line).
DROP_LOG_SECONDS = 10.0
#: The request path sets the queue gauge at most this often.
_GAUGE_SECONDS = 1.0


@dataclass(eq=False, repr=False)  # the default repr would show the URL and its password
class PredictionLog(LogStorage):
    """Queues records on the request path; one thread stores them (the
    database's, the spool's and retention's settings are
    :class:`~api.app.operations.log_storage.LogStorage`'s)."""

    _: KW_ONLY
    flush_seconds: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        # In memory, oldest first: records the writer could neither write
        # nor spool (`_held`), then the requests queued since (`_queue`).
        # `_lock` guards both and the counts; the writer's batch in progress
        # (`_in_flight` records) counts too.
        self._lock = threading.Lock()
        # Each request with its log_id, made when it is queued (the shadow
        # challenger's prices name it).
        self._queue: collections.deque[tuple[Entry, str]] = collections.deque()
        self._queued_records = 0
        self._held: collections.deque[Record] = collections.deque()
        self._in_flight = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._gauge_due = 0.0
        self._drops_unreported = 0
        self._drop_log_due = 0.0
        self._drop_reason = ""
        self._record_failure_log_due = 0.0

    # -- request path -------------------------------------------------------

    def record(
        self,
        request_id: str,
        houses: Sequence[Any],
        prices: Sequence[float | None],
        errors: list[dict[str, Any]] | None,
        version: str,
        *,
        ranges: Sequence[Sequence[PriceRange] | None] | None = None,
    ) -> str | None:
        """Queue one request's houses (as JSON) and results (``ranges``:
        each house's price ranges as answered); return the ``log_id`` its
        records will have (None when they could not be queued). Never raises:
        a request is answered whatever becomes of its log record."""
        try:
            if self._thread is None:
                self.start()
            inputs = [queued_json(house) for house in houses]
            now = time.monotonic()
            limit = self.max_queued_records * (1 if self._spool_failing else 2)
            with self._lock:
                log_id = new_log_id()
                self._queue.append(
                    ((request_id, time.time(), inputs, prices, errors, version, ranges), log_id)
                )
                self._queued_records += len(inputs)
                excess = self._in_memory() - limit
                dropped = self._drop_oldest(excess) if excess > 0 else 0
            if dropped:
                self._note_dropped(
                    dropped,
                    "the spool is failing"
                    if self._spool_failing
                    else "the writer is behind by twice the bound",
                )
            if now >= self._gauge_due:
                self._gauge_due = now + _GAUGE_SECONDS
                metrics.LOG_QUEUE.set(self._in_memory())
            return log_id
        except Exception as exc:  # the request must not fail for its log record
            now = time.monotonic()
            quiet = now < self._record_failure_log_due  # one line per interval, not per request
            self._record_failure_log_due = max(
                self._record_failure_log_due, now + DROP_LOG_SECONDS
            )
            self._failure("record", exc, quiet=quiet)
            self._note_dropped(len(houses), "they could not be queued")
            return None

    @property
    def in_memory(self) -> int:
        """Records held in this worker's memory (what the queue gauge says)."""
        return self._in_memory()

    def _in_memory(self) -> int:
        return self._queued_records + len(self._held) + self._in_flight

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Write (or spool) everything in memory, then stop the writer; what
        could be neither written nor spooled is reported at ERROR."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        # Bounded: at shutdown the database and the spool are each tried once
        # more (a write gives up after `timeout`); what is left is lost.
        self._thread.join(timeout=4 * self.timeout + 10)
        if self._thread.is_alive():
            with self._lock:
                stranded = self._in_memory()
            self.counts["lost"] += stranded
            metrics.LOG_RECORDS.labels("dropped").inc(stranded)
            logger.error(
                "prediction log writer did not stop in %.0f s; the %d records it held are lost",
                4 * self.timeout + 10,
                stranded,
            )
        self._dispose()
        self._report_drops(force=True)
        extra = {"records": dict(self.counts), "spool_dir": str(self.spool_dir)}
        if self.counts["lost"] or self.counts["dropped"]:
            logger.error(
                "prediction log closed; %d records could not be written or spooled at "
                "shutdown and are lost (%d dropped earlier)",
                self.counts["lost"],
                self.counts["dropped"],
                extra=extra,
            )
        else:
            logger.info("prediction log closed", extra=extra)

    # -- the writer thread --------------------------------------------------

    def _run(self) -> None:
        unexpected = Backoff()
        # At once: connect, migrate, replay what earlier workers spooled; the
        # queue waits for the first flush (nothing else is written before it).
        try:
            self._write([])
        except Exception as exc:  # _write reports its own; anything else too
            self._failure("writer", exc, traceback=True)
        if self._wake.wait(self.flush_seconds):
            self._wake.clear()
        while True:
            stopping = self._stopping.is_set()
            pause = self.flush_seconds
            try:
                self._round(final=stopping)
                unexpected.succeeded()
            except Exception as exc:  # nothing ends the writer: say so, wait, go on
                self._failure("writer", exc, traceback=True)
                pause = unexpected.failed(
                    time.monotonic(), self.retry_seconds, self.max_backoff_seconds
                )
            if stopping:
                break
            if self._wake.wait(pause):
                self._wake.clear()
        with contextlib.suppress(Exception):
            self._lose_what_is_left()
        self._spool.close()

    def _round(self, *, final: bool = False) -> None:
        """One round: retention, then the queue; memory within its bound.
        The final round (shutdown) tries the database and the spool once
        more whatever their backoff, and writes what came in meanwhile."""
        if final:
            self._try_again_now()
        if not final:
            self._prune()
        self._drain()
        if final:
            self._drain()
        self._bound_memory()
        self._report_drops()
        metrics.LOG_QUEUE.set(self._in_memory())

    def _drain(self) -> None:
        """Write what is in memory, a batch at a time (each to the database,
        else to the spool); stop at the first batch neither takes, holding it.
        Writes at least once, even nothing: that retries the database after
        an outage and replays the spool."""
        records = self._take()
        while True:
            if not self._store(records):
                self._hold(records)
                return
            self._bound_memory()
            metrics.LOG_QUEUE.set(self._in_memory())
            records = self._take()
            if not records:
                return

    def _take(self) -> list[Record]:
        """The oldest records in memory, marked in flight: held records
        first, else the oldest queued requests' (at least one request, and no
        more than ``batch_records`` houses unless that one request has more)."""
        entries: list[tuple[Entry, str]] = []
        with self._lock:
            if self._held:
                count = min(len(self._held), self.batch_records)
                held = [self._held.popleft() for _ in range(count)]
                self._in_flight = count
                return held
            count = 0
            while self._queue and (
                not entries or count + len(self._queue[0][0][2]) <= self.batch_records
            ):
                entries.append(self._queue.popleft())
                count += len(entries[-1][0][2])
            self._queued_records -= count
            self._in_flight = count
        records: list[Record] = []
        for entry, log_id in entries:
            try:
                records += records_of(entry, log_id)
            except Exception as exc:  # a request whose records cannot be built
                self._failure("writer", exc, traceback=True)
                self._note_dropped(len(entry[2]), "their records could not be built")
        return records

    def _hold(self, records: list[Record]) -> None:
        """Keep a batch nothing took, ahead of the queue (it is older)."""
        with self._lock:
            self._held.extendleft(reversed(records))
            self._in_flight = 0

    def _store(self, records: list[Record]) -> bool:
        """``records`` into the database, else the spool: whether either took them."""
        stored = self._write(records) or self._spool_records(records)
        if stored:
            self._in_flight = 0
        return stored

    def _bound_memory(self) -> None:
        """Beyond ``max_queued_records`` in memory: spool the oldest batches
        (the database is slower than the traffic), or, when the spool does
        not take them, drop the oldest records."""
        while self._in_memory() > self.max_queued_records:
            records = self._take()
            if self._spool_records(records):
                self._in_flight = 0
                if not self.counts["overflowed"]:
                    logger.warning(
                        "prediction log database slower than the traffic; spooling records "
                        "beyond %d in memory to %s",
                        self.max_queued_records,
                        self.spool_dir,
                    )
                self.counts["overflowed"] += len(records)
                continue
            self._hold(records)
            with self._lock:
                dropped = self._drop_oldest(self._in_memory() - self.max_queued_records)
            self._note_dropped(dropped, "neither the database nor the spool takes them")
            return

    def _drop_oldest(self, excess: int) -> int:
        """Drop at least ``excess`` of the oldest records in memory (held
        first, then whole queued requests); call with ``_lock`` held."""
        dropped = 0
        while dropped < excess and self._held:
            self._held.popleft()
            dropped += 1
        while dropped < excess and self._queue:
            houses = len(self._queue.popleft()[0][2])
            self._queued_records -= houses
            dropped += houses
        return dropped

    def _note_dropped(self, count: int, why: str) -> None:
        if count <= 0:
            return
        with self._lock:
            self.counts["dropped"] += count
            self._drops_unreported += count
            self._drop_reason = why
        metrics.LOG_RECORDS.labels("dropped").inc(count)
        metrics.LOG_QUEUE.set(self._in_memory())
        self._report_drops()

    def _report_drops(self, *, force: bool = False) -> None:
        """One ERROR line for the drops since the last one, at most every
        ``DROP_LOG_SECONDS`` (a failing disk must not flood the log too)."""
        now = time.monotonic()
        with self._lock:
            count = self._drops_unreported
            if not count or (now < self._drop_log_due and not force):
                return
            self._drops_unreported = 0
            self._drop_log_due = now + DROP_LOG_SECONDS
            why = self._drop_reason
        logger.error(
            "prediction log dropped %d records, oldest first (%s); %d dropped in all, "
            "%d in memory (at most %d)",
            count,
            why,
            self.counts["dropped"],
            self._in_memory(),
            self.max_queued_records,
        )

    def _lose_what_is_left(self) -> None:
        """After the final round: whatever is still in memory is lost."""
        with self._lock:
            left = self._in_memory()
            self._held.clear()
            self._queue.clear()
            self._queued_records = self._in_flight = 0
        if left:
            self.counts["lost"] += left
            metrics.LOG_RECORDS.labels("dropped").inc(left)
        metrics.LOG_QUEUE.set(0)
