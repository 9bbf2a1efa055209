"""The prediction log writer: every house priced or rejected, recorded off
the request path, and nothing lost when the database is not there.

A request only appends one entry to an in-memory queue: its id, time and
result, and its houses as JSON (pydantic-core, a few microseconds a house; no
I/O). Holding the houses as bytes rather than as the parsed objects keeps
them out of the garbage collector's way: queued objects, surviving a
collection or two, made every request's collections dearer (measured: 20 to
40 µs a request). A background thread, every
``flush_seconds``, turns the queued requests into one record per house and
writes them to the database, ``batch_records`` at a time, a transaction
each (see ``regression_model.monitoring.prediction_log`` for the table), so
only one batch of records is ever built at once however long the queue.

Memory is bounded: when the database takes writes more slowly than requests
arrive (the writer has fallen ``max_queued_records`` houses behind), the
oldest queued batches go to the spool file instead, and are replayed into the
database at the next sweep. Nothing is dropped, and a worker's memory stays
flat under any load.

When a write fails because the database is down, hung (every connection and
statement is bounded by ``timeout``) or locked, the batch is appended to a
spool file in ``spool_dir`` (JSON lines, fsync'd) and requests carry on. The
writer retries the database every ``retry_seconds``; once it answers, spool
files are replayed into it and deleted. Each worker writes its own spool
file and holds a lock on it; any worker replays files nobody holds (left by a
worker that died), at start and every ``sweep_seconds``.

Records are keyed by ``(log_id, row)``, made once per request before the
first attempt, and inserted (one statement per batch, see
``insert_records``) with ``ON CONFLICT DO NOTHING``: a batch that was
committed although the acknowledgement was lost is recognised when replayed,
so nothing is written twice. A record the database refuses (not an outage:
say, text PostgreSQL cannot store) is kept in an ``unwritable-*.jsonl`` file
in the spool directory, logged and counted, and the others are written.

On shutdown (SIGTERM, after uvicorn has drained the requests) :meth:`close`
writes what is queued, or spools it. A worker killed with SIGKILL loses what
it had queued and not yet written: at most ``flush_seconds`` of its traffic.
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
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pydantic_core import to_json
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from api.app import metrics
from regression_model.monitoring.prediction_log import (
    FIELDS,
    create_log_engine,
    insert_records,
    migrate,
    record_json,
    record_time,
)

logger = logging.getLogger(__name__)

#: A queued request: (request id, Unix time, each house as JSON, predictions,
#: errors, model version).
Entry = tuple[str, float, list[bytes], Sequence[float | None], list[dict[str, Any]] | None, str]
#: One house's record: ``FIELDS``, with ``inputs`` as JSON bytes.
Record = dict[str, Any]


def house_json(house: Any) -> bytes:
    """A house as sent, as JSON (a number too long for a float, read as
    infinity, is written as the string "Infinity")."""
    return to_json(house, inf_nan_mode="strings")


def new_log_id() -> str:
    """32 hex digits: the time in nanoseconds, then 64 random bits. Unique
    across workers, and increasing, so inserts append to the primary key's
    index instead of landing at random places in it."""
    return f"{time.time_ns():016x}{random.getrandbits(64):016x}"


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
    return [
        {
            "log_id": log_id,
            "row": row,
            "request_id": request_id,
            "logged_at": logged_at,
            "model_version": version,
            "inputs": house,
            "price": prices[row],
            "errors": by_row.get(row),
        }
        for row, house in enumerate(houses)
    ]


def _spool_line(record: Record) -> bytes:
    return record_json(record)


def _from_spool_line(line: bytes) -> Record:
    record: Record = json.loads(line)
    record["inputs"] = house_json(record.get("inputs"))
    return {name: record.get(name) for name in FIELDS}


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
        sweep_seconds: float = 30.0,
        batch_records: int = 5000,
        max_queued_records: int = 20_000,
    ) -> None:
        self.url = url
        self.spool_dir = spool_dir
        self.flush_seconds = flush_seconds
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.sweep_seconds = sweep_seconds
        self.batch_records = batch_records
        self.max_queued_records = max_queued_records
        self._queue: collections.deque[Entry] = collections.deque()
        #: Houses queued: the request threads add, the writer subtracts.
        self._queued_records = 0
        self._count_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self._reader: Engine | None = None
        self._reader_migrated = False
        self._migrated = False
        self._database_up = False
        self._next_attempt = 0.0
        self._next_sweep = 0.0
        self._spool: IO[bytes] | None = None
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
        """Queue one request's houses (as JSON) and results."""
        if self._thread is None:
            self.start()
        inputs = [house_json(house) for house in houses]
        with self._count_lock:
            self._queued_records += len(inputs)
        self._queue.append((request_id, time.time(), inputs, prices, errors, version))

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

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Write (or spool) everything queued, then stop the writer."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        # Bounded: each write gives up after `timeout`, then the rest is spooled.
        self._thread.join(timeout=4 * self.timeout + 10)
        if self._thread.is_alive():
            logger.error("prediction log writer did not stop; its queue is lost")
        for engine in (self._engine, self._reader):
            if engine is not None:
                engine.dispose()
        logger.info(
            "prediction log closed",
            extra={"records": dict(self.counts), "spool_dir": str(self.spool_dir)},
        )

    # -- the writer thread --------------------------------------------------

    def _run(self) -> None:
        try:
            # At once: connect, migrate, replay what earlier workers spooled.
            self._write([])
            while True:
                self._wake.wait(self.flush_seconds)
                self._wake.clear()
                stopping = self._stopping.is_set()
                self._drain()
                if stopping:
                    self._drain()  # anything queued while writing
                    break
        except Exception:  # never let the thread die silently
            logger.exception("prediction log writer failed")
        finally:
            self._close_spool()

    def _drain(self) -> None:
        """Write the queue, a batch at a time; when the database falls too
        far behind, spool the oldest batches instead (see the module's doc).
        Writes at least once, even nothing: that retries the database after an
        outage and replays the spool."""
        while True:
            self._write(self._take())
            while self._queued_records > self.max_queued_records:
                if not self.counts["overflowed"]:
                    logger.warning(
                        "prediction log database slower than the traffic; spooling "
                        "records beyond %d queued to %s",
                        self.max_queued_records,
                        self.spool_dir,
                    )
                records = self._take()
                self.counts["overflowed"] += len(records)
                self._spool_records(records)
            metrics.LOG_QUEUE.set(self._queued_records)
            if not self._queue:
                return

    def _take(self) -> list[Record]:
        """The oldest queued requests' records: at least one request, and no
        more than ``batch_records`` houses unless that one request has more."""
        records: list[Record] = []
        while self._queue and (
            not records or len(records) + len(self._queue[0][2]) <= self.batch_records
        ):
            records += records_of(self._queue.popleft())
        with self._count_lock:
            self._queued_records -= len(records)
        return records

    def _write(self, records: list[Record]) -> None:
        now = time.monotonic()
        if self._database_up or now >= self._next_attempt:
            try:
                engine = self._connect()
                if now >= self._next_sweep or not self._database_up:
                    self._replay_spool(engine)
                    self._next_sweep = now + self.sweep_seconds
                set_aside = 0
                for start in range(0, len(records), self.batch_records):
                    # One request bigger than a batch is written in pieces.
                    set_aside += self._insert_batch(
                        engine, records[start : start + self.batch_records]
                    )
                if not self._database_up:
                    logger.info("prediction log database reachable", extra={"url": self._safe_url})
                self._database_up = True
                metrics.LOG_DATABASE_UP.set(1)
                self.counts["written"] += len(records) - set_aside
                metrics.LOG_RECORDS.labels("written").inc(len(records) - set_aside)
                return
            except (SQLAlchemyError, OSError) as exc:
                if self._database_up or not self.counts["outages"]:
                    logger.warning(
                        "prediction log database unreachable; spooling records to %s (%s)",
                        self.spool_dir,
                        type(exc).__name__,
                        extra={"error": str(exc).splitlines()[0][:300]},
                    )
                    self.counts["outages"] += 1
                self._database_up = False
                self._migrated = False
                metrics.LOG_DATABASE_UP.set(0)
                self._next_attempt = time.monotonic() + self.retry_seconds
        self._spool_records(records)

    @property
    def _safe_url(self) -> str:
        return self._engine.url.render_as_string(hide_password=True) if self._engine else "?"

    def _connect(self) -> Engine:
        if self._engine is None:
            self._engine = create_log_engine(self.url, timeout=self.timeout)
        if not self._migrated:
            migrate(self._engine)
            self._migrated = True
        return self._engine

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

    # -- the spool ----------------------------------------------------------

    def _spool_records(self, records: list[Record]) -> None:
        if not records:
            return
        if self._spool is None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            self._spool_path = self.spool_dir / f"spool-{os.getpid()}-{uuid.uuid4().hex}.jsonl"
            self._spool = self._spool_path.open("ab")
            fcntl.flock(self._spool, fcntl.LOCK_EX)  # others leave it alone while we live
        self._spool.write(b"".join(_spool_line(record) + b"\n" for record in records))
        self._spool.flush()
        os.fsync(self._spool.fileno())
        self.counts["spooled"] += len(records)
        metrics.LOG_RECORDS.labels("spooled").inc(len(records))

    def _close_spool(self) -> None:
        if self._spool is not None:
            self._spool.close()  # releases the lock: any worker may replay it
            self._spool = None

    def _replay_spool(self, engine: Engine) -> None:
        """Write every spool file nobody holds (ours included), then delete it."""
        if not self.spool_dir.is_dir():
            return
        self._close_spool()
        for path in sorted(self.spool_dir.glob("spool-*.jsonl")):
            with _locked(path) as handle:
                if handle is None:
                    continue  # another worker's current file
                replayed = 0
                batch: list[Record] = []
                for line in handle:
                    if not line.endswith(b"\n"):
                        logger.warning("spool file %s ends with a partial line", path)
                        break
                    batch.append(_from_spool_line(line))
                    if len(batch) >= self.batch_records:
                        replayed += len(batch) - self._insert_batch(engine, batch)
                        batch = []
                replayed += len(batch) - self._insert_batch(engine, batch)
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
