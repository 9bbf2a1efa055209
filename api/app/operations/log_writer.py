"""The prediction log writer: every house priced or rejected, recorded off
the request path; when the database or the disk fails, the writer carries on,
keeps its memory bounded, says at ERROR what it could not keep, and recovers
by itself.

A request only appends one entry to an in-memory queue: its id, time and
result, and its houses as JSON (pydantic-core, a few microseconds a house; no
I/O). Holding the houses as bytes rather than as the parsed objects keeps
them out of the garbage collector's way: queued objects, surviving a
collection or two, made every request's collections dearer (measured: 20 to
40 µs a request). A background thread, every ``flush_seconds``, turns the
queued requests into one record per house and writes them to the database,
``batch_records`` at a time, a transaction each (see
``regression_model.monitoring.log_store`` for the table), so only one
batch of records is ever built at once however long the queue.

A record holds the model's fields only: the house's inputs under the model's
names (aliases resolved, by ``regression_model.scoring.validation``'s
``model_fields``, the rule validation reads them by) and its id, plus the
names of the fields the model ignored (at most ``IGNORED_FIELDS_MAX``, each
cut to ``IGNORED_FIELD_LENGTH`` characters), so what a client sends beyond
the model is never stored. The filtering happens in the writer thread, not
on the request path (it costs about 40 µs a house).

When a write fails because the database is down, hung (every connection and
statement is bounded by ``timeout``), locked or full, the batch is appended
to a spool file in ``spool_dir`` (JSON lines, fsync'd) and requests carry on.
Each worker writes its own spool file and holds a lock on it; once the
database answers, spool files nobody holds (ours, or left by a worker that
died) are replayed into it and deleted, at once and every ``sweep_seconds``.

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

Records are keyed by ``(log_id, row)``, made once per request before the
first attempt, and inserted (one statement per batch, see
``insert_records``) with ``ON CONFLICT DO NOTHING``: a batch that was
committed although the acknowledgement was lost is recognised when replayed,
so nothing is written twice. A record the database refuses (not an outage:
say, text PostgreSQL cannot store) is kept in an ``unwritable-*.jsonl`` file
in the spool directory, logged and counted, and the others are written.

With ``retention_days``, the writer deletes records older than that, at most
every ``prune_seconds``, in transactions of ``prune_batch_rows`` rows (so a
large table is never locked for long); ``regression-model log-prune`` does
the same by hand.

On shutdown (SIGTERM, after uvicorn has drained the requests) :meth:`close`
writes what is in memory, or spools it; what it can do neither with is
counted and reported at ERROR. A worker killed with SIGKILL loses what it had
queued and not yet written: at most ``flush_seconds`` of its traffic.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from pydantic_core import from_json, to_json
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError

from api.app.operations import metrics
from regression_model import model_fields
from regression_model.monitoring.log_store import (
    FIELDS,
    create_log_engine,
    insert_records,
    migrate,
    prune_log,
    record_json,
    record_time,
)

logger = logging.getLogger(__name__)

#: A queued request: (request id, Unix time, each house as JSON, predictions,
#: errors, model version).
Entry = tuple[str, float, list[bytes], Sequence[float | None], list[dict[str, Any]] | None, str]
#: One house's record: ``FIELDS``, with ``inputs`` as JSON bytes.
Record = dict[str, Any]

#: At most this many ignored field names are kept per house, each cut to
#: this many characters: a client sending thousands of made-up keys, or one
#: very long one, cannot make the log expensive.
IGNORED_FIELDS_MAX = 50
IGNORED_FIELD_LENGTH = 64
#: Drops are logged at most this often (with the count since the last line).
DROP_LOG_SECONDS = 10.0
#: The request path sets the queue gauge at most this often.
_GAUGE_SECONDS = 1.0


def house_json(house: Any) -> bytes:
    """A house as sent, as JSON (a number too long for a float, read as
    infinity, is written as the string "Infinity")."""
    return to_json(house, inf_nan_mode="strings")


def new_log_id() -> str:
    """32 hex digits: the time in nanoseconds, then 64 random bits. Unique
    across workers, and increasing, so inserts append to the primary key's
    index instead of landing at random places in it."""
    return f"{time.time_ns():016x}{random.getrandbits(64):016x}"


def logged_fields(house_as_json: bytes) -> tuple[bytes, list[str] | None]:
    """What the log keeps of a house: its model fields (JSON) and the names
    of the fields the model ignored (None when there were none). A house that
    is not a JSON object (it was rejected as such) is kept as sent."""
    house = from_json(house_as_json)
    if not isinstance(house, Mapping):
        return house_as_json, None
    fields, ignored = model_fields(house)
    return (
        house_json(fields),
        [name[:IGNORED_FIELD_LENGTH] for name in ignored[:IGNORED_FIELDS_MAX]] or None,
    )


def records_of(entry: Entry) -> list[Record]:
    """One record per house of a queued request."""
    request_id, moment, houses, prices, errors, version = entry
    log_id = new_log_id()
    logged_at = record_time(datetime.fromtimestamp(moment, UTC))
    by_row: dict[int, list[dict[str, Any]]] = {}
    for error in errors or ():
        by_row.setdefault(int(error["row"]), []).append(
            {"field": error["field"], "message": error["message"]}
        )
    records = []
    for row, house in enumerate(houses):
        inputs, ignored = logged_fields(house)
        records.append(
            {
                "log_id": log_id,
                "row": row,
                "request_id": request_id,
                "logged_at": logged_at,
                "model_version": version,
                "inputs": inputs,
                "price": prices[row],
                "errors": by_row.get(row),
                "ignored_fields": ignored,
            }
        )
    return records


def _spool_line(record: Record) -> bytes:
    return record_json(record)


def _from_spool_line(line: bytes) -> Record:
    record: Record = json.loads(line)
    record["inputs"] = house_json(record.get("inputs"))
    return {name: record.get(name) for name in FIELDS}


class _Backoff:
    """When a failing stage may be tried again: after ``base`` seconds,
    doubling with each failure in a row, never more than ``cap``."""

    def __init__(self) -> None:
        self.failures = 0
        self.next_at = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def failed(self, now: float, base: float, cap: float) -> float:
        self.failures += 1
        delay: float = min(cap, base * 2.0 ** min(self.failures - 1, 30))
        self.next_at = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.next_at = 0.0


class PredictionLog:
    """Queues records on the request path; one thread writes them."""

    def __init__(
        self,
        url: str,
        spool_dir: Path,
        *,
        flush_seconds: float = 0.25,
        timeout: float = 5.0,
        retry_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        sweep_seconds: float = 30.0,
        batch_records: int = 5000,
        max_queued_records: int = 20_000,
        retention_days: float = 0.0,
        prune_seconds: float = 600.0,
        prune_batch_rows: int = 5000,
    ) -> None:
        self.url = url
        self.spool_dir = spool_dir
        self.flush_seconds = flush_seconds
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.sweep_seconds = sweep_seconds
        self.batch_records = batch_records
        self.max_queued_records = max_queued_records
        #: 0: keep records forever.
        self.retention_days = retention_days
        self.prune_seconds = prune_seconds
        self.prune_batch_rows = prune_batch_rows
        #: Delete batches per writer round (more wait for the next round, so
        #: writes go on in between).
        self.prune_batches_per_round = 4
        # In memory, oldest first: records the writer could neither write
        # nor spool (`_held`), then the requests queued since (`_queue`).
        # `_lock` guards both and the counts; the writer's batch in progress
        # (`_in_flight` records) counts too.
        self._lock = threading.Lock()
        self._queue: collections.deque[Entry] = collections.deque()
        self._queued_records = 0
        self._held: collections.deque[Record] = collections.deque()
        self._in_flight = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self._reader: Engine | None = None
        self._reader_migrated = False
        self._migrated = False
        self._database_up = False
        self._database_backoff = _Backoff()
        self._spool_backoff = _Backoff()
        self._replay_backoff = _Backoff()
        self._prune_backoff = _Backoff()
        self._spool_failing = False
        self._next_sweep = 0.0
        self._next_prune = 0.0
        self._gauge_due = 0.0
        self._drops_unreported = 0
        self._drop_log_due = 0.0
        self._drop_reason = ""
        self._record_failure_log_due = 0.0
        self._spool_fd: int | None = None
        self._spool_path: Path | None = None
        #: Totals of this worker (tests and the shutdown line read them).
        self.counts: collections.Counter[str] = collections.Counter()

    # -- request path -------------------------------------------------------

    def record(
        self,
        request_id: str,
        houses: Sequence[Any],
        prices: Sequence[float | None],
        errors: list[dict[str, Any]] | None,
        version: str,
    ) -> None:
        """Queue one request's houses (as JSON) and results. Never raises: a
        request is answered whatever becomes of its log record."""
        try:
            if self._thread is None:
                self.start()
            inputs = [house_json(house) for house in houses]
            now = time.monotonic()
            limit = self.max_queued_records * (1 if self._spool_failing else 2)
            with self._lock:
                self._queue.append((request_id, time.time(), inputs, prices, errors, version))
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
        except Exception as exc:  # the request must not fail for its log record
            now = time.monotonic()
            quiet = now < self._record_failure_log_due  # one line per interval, not per request
            self._record_failure_log_due = max(
                self._record_failure_log_due, now + DROP_LOG_SECONDS
            )
            self._failure("record", exc, quiet=quiet)
            self._note_dropped(len(houses), "they could not be queued")

    def reader(self) -> Engine:
        """An engine for reading the log (drift reports), apart from the writer's.
        The schema is migrated first (once; idempotent, under the migration
        lock): a report asked for before the writer's first write finds the
        table, empty, instead of failing."""
        with self._start_lock:
            if self._reader is None:
                self._reader = create_log_engine(self.url, timeout=self.timeout)
            if not self._reader_migrated:
                migrate(self._reader)
                self._reader_migrated = True
            return self._reader

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
        for engine in (self._engine, self._reader):
            if engine is not None:
                with contextlib.suppress(Exception):
                    engine.dispose()
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
        unexpected = _Backoff()
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
        self._close_spool()

    def _round(self, *, final: bool = False) -> None:
        """One round: retention, then the queue; memory within its bound.
        The final round (shutdown) tries the database and the spool once
        more whatever their backoff, and writes what came in meanwhile."""
        if final:
            for backoff in (self._database_backoff, self._spool_backoff):
                backoff.next_at = 0.0
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
        entries: list[Entry] = []
        with self._lock:
            if self._held:
                count = min(len(self._held), self.batch_records)
                held = [self._held.popleft() for _ in range(count)]
                self._in_flight = count
                return held
            count = 0
            while self._queue and (
                not entries or count + len(self._queue[0][2]) <= self.batch_records
            ):
                entries.append(self._queue.popleft())
                count += len(entries[-1][2])
            self._queued_records -= count
            self._in_flight = count
        records: list[Record] = []
        for entry in entries:
            try:
                records += records_of(entry)
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
            houses = len(self._queue.popleft()[2])
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

    def _failure(
        self, stage: str, exc: BaseException, *, traceback: bool = False, quiet: bool = False
    ) -> None:
        """Every failure: counted by stage, logged at ERROR (unless ``quiet``:
        the caller limits its own rate)."""
        self.counts[f"failed_{stage}"] += 1
        metrics.LOG_FAILURES.labels(stage).inc()
        if quiet:
            return
        logger.error(
            "prediction log %s failed: %s: %s",
            stage,
            type(exc).__name__,
            (str(exc).splitlines() or [""])[0][:300],
            exc_info=exc if traceback else None,
            extra={"stage": stage, "url": self._safe_url},
        )

    # -- the database -------------------------------------------------------

    def _write(self, records: list[Record]) -> bool:
        """``records`` into the database: whether they went in. Tried while
        the database is up, or when its backoff allows."""
        now = time.monotonic()
        if not (self._database_up or self._database_backoff.due(now)):
            return False
        stage = "database"
        try:
            if self._engine is None:
                self._engine = create_log_engine(self.url, timeout=self.timeout)
            engine = self._engine
            if not self._migrated:
                stage = "migration"
                migrate(engine)
                self._migrated = True
            if not self._database_up or now >= self._next_sweep:
                self._replay_spool(engine)
                self._next_sweep = now + self.sweep_seconds
            stage = "database"
            set_aside = 0
            for start in range(0, len(records), self.batch_records):
                # One request bigger than a batch is written in pieces.
                set_aside += self._insert_batch(
                    engine, records[start : start + self.batch_records]
                )
        except Exception as exc:
            self._database_failed(stage, exc, now)
            return False
        if not self._database_up:
            logger.info("prediction log database reachable", extra={"url": self._safe_url})
        self._database_up = True
        self._database_backoff.succeeded()
        metrics.LOG_DATABASE_UP.set(1)
        self.counts["written"] += len(records) - set_aside
        metrics.LOG_RECORDS.labels("written").inc(len(records) - set_aside)
        return True

    def _database_failed(self, stage: str, exc: Exception, now: float) -> None:
        self._failure(stage, exc)
        self._database_up = False
        self._migrated = False
        metrics.LOG_DATABASE_UP.set(0)
        delay = self._database_backoff.failed(now, self.retry_seconds, self.max_backoff_seconds)
        logger.error(
            "prediction log database not taking writes; records go to the spool in %s; "
            "next attempt in %.1f s",
            self.spool_dir,
            delay,
        )
        if self._engine is not None:
            # Fresh connections next time: a connection that failed mid-write
            # (a full disk, a cut socket) is not trusted again.
            with contextlib.suppress(Exception):
                self._engine.dispose()

    @property
    def _safe_url(self) -> str:
        return self._engine.url.render_as_string(hide_password=True) if self._engine else "?"

    def _insert_batch(self, engine: Engine, records: list[Record]) -> int:
        """Insert in one transaction; a record the database refuses is set
        aside (an outage raises instead, and the caller spools the batch).
        Returns how many were set aside."""
        if not records:
            return 0
        try:
            with engine.begin() as connection:
                insert_records(connection, records)
            return 0
        except (DataError, IntegrityError):
            set_aside = 0
            for record in records:  # find the refused ones; the rest go in
                try:
                    with engine.begin() as connection:
                        insert_records(connection, [record])
                except (DataError, IntegrityError) as exc:
                    self._set_aside(record, exc)
                    set_aside += 1
            return set_aside

    def _set_aside(self, record: Record, exc: Exception) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        path = self.spool_dir / f"unwritable-{os.getpid()}.jsonl"
        with path.open("ab") as handle:
            handle.write(_spool_line(record) + b"\n")
        self.counts["unwritable"] += 1
        metrics.LOG_RECORDS.labels("unwritable").inc()
        logger.error(
            "the database refused a prediction log record; kept in %s",
            path,
            extra={"log_request_id": record["request_id"], "error": str(exc).splitlines()[0]},
        )

    # -- retention ----------------------------------------------------------

    def _prune(self) -> None:
        """Delete records older than ``retention_days``: a few bounded
        batches per round, a round every ``prune_seconds`` (sooner while
        more are left), only while the database takes writes."""
        now = time.monotonic()
        if (
            self.retention_days <= 0
            or not self._database_up
            or self._engine is None
            or now < self._next_prune
        ):
            return
        before = datetime.now(UTC) - timedelta(days=self.retention_days)
        limit = self.prune_batches_per_round
        try:
            deleted = prune_log(
                self._engine, before, batch_rows=self.prune_batch_rows, max_batches=limit
            )
        except Exception as exc:
            self._failure("retention", exc)
            self._next_prune = now + self._prune_backoff.failed(
                now, self.retry_seconds, self.max_backoff_seconds
            )
            return
        self._prune_backoff.succeeded()
        self.counts["pruned"] += deleted
        metrics.LOG_RECORDS.labels("pruned").inc(deleted)
        if deleted >= limit * self.prune_batch_rows:
            self._next_prune = now  # more to delete: go on next round
        else:
            self._next_prune = now + self.prune_seconds
            if deleted:
                logger.info(
                    "prediction log: deleted records older than %g days",
                    self.retention_days,
                    extra={"deleted": self.counts["pruned"]},
                )

    # -- the spool ----------------------------------------------------------

    def _spool_records(self, records: list[Record]) -> bool:
        """Append ``records`` to this worker's spool file and fsync it:
        whether they are safely there. Tried while the spool works, or when
        its backoff allows; a failed append is cut off again, so the file
        never holds half a line in the middle."""
        if not records:
            return True
        now = time.monotonic()
        if not self._spool_backoff.due(now):
            return False
        try:
            self._append_to_spool(b"".join(_spool_line(record) + b"\n" for record in records))
        except Exception as exc:
            self._failure("spool", exc)
            self._spool_failing = True
            delay = self._spool_backoff.failed(now, self.retry_seconds, self.max_backoff_seconds)
            logger.error(
                "prediction log spool %s not taking records; %d held in memory (at most %d); "
                "next attempt in %.1f s",
                self.spool_dir,
                self._in_memory(),
                self.max_queued_records,
                delay,
            )
            return False
        if self._spool_failing:
            logger.info("prediction log spool writable again: %s", self.spool_dir)
        self._spool_failing = False
        self._spool_backoff.succeeded()
        self.counts["spooled"] += len(records)
        metrics.LOG_RECORDS.labels("spooled").inc(len(records))
        return True

    def _append_to_spool(self, data: bytes) -> None:
        if self._spool_fd is None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            path = self.spool_dir / f"spool-{os.getpid()}-{uuid.uuid4().hex}.jsonl"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)  # others leave it alone while we live
            self._spool_fd, self._spool_path = fd, path
        fd = self._spool_fd
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, end)
            except OSError:
                # It cannot even be cut: start another file next time (this
                # one ends with a partial line, which replay stops at).
                self._close_spool()
            raise

    def _close_spool(self) -> None:
        if self._spool_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._spool_fd)  # releases the lock: any worker may replay it
            self._spool_fd = None

    def _replay_spool(self, engine: Engine) -> None:
        """Write every spool file nobody holds (ours included), then delete
        it. A failure is counted and logged, and retried with backoff; it
        does not stop this round's own records from being written."""
        now = time.monotonic()
        if not self._replay_backoff.due(now):
            return
        try:
            if not self.spool_dir.is_dir():
                return
            self._close_spool()
            for path in sorted(self.spool_dir.glob("spool-*.jsonl")):
                self._replay_file(engine, path)
        except Exception as exc:
            self._failure("replay", exc)
            self._replay_backoff.failed(now, self.retry_seconds, self.max_backoff_seconds)
            return
        self._replay_backoff.succeeded()

    def _replay_file(self, engine: Engine, path: Path) -> None:
        with _locked(path) as handle:
            if handle is None:
                return  # another worker's current file
            replayed = unreadable = 0
            batch: list[Record] = []
            for line in handle:
                if not line.endswith(b"\n"):
                    logger.warning("spool file %s ends with a partial line", path)
                    break
                try:
                    batch.append(_from_spool_line(line))
                except ValueError:
                    unreadable += 1
                    continue
                if len(batch) >= self.batch_records:
                    replayed += len(batch) - self._insert_batch(engine, batch)
                    batch = []
            replayed += len(batch) - self._insert_batch(engine, batch)
            if unreadable:
                # Kept for a person to look at, out of the replay's way.
                kept = path.with_name(f"unreadable-{path.name}")
                path.rename(kept)
                self.counts["unreadable"] += unreadable
                self._failure(
                    "replay", ValueError(f"{unreadable} lines of {path.name} are not records")
                )
                logger.error("unreadable spool lines kept in %s", kept)
            else:
                path.unlink()
        self.counts["replayed"] += replayed
        metrics.LOG_RECORDS.labels("replayed").inc(replayed)
        logger.info("replayed %d spooled records from %s", replayed, path.name)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[IO[bytes] | None]:
    """``path`` opened and exclusively locked, or None when another process holds it."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        yield None
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        if not path.exists():  # replayed and deleted by another worker meanwhile
            yield None
            return
        yield handle
