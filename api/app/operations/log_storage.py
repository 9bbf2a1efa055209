"""Where the prediction log writer (``log_writer.py``) puts a batch of
records: the log's database, else the spool directory (``log_spool.py``);
and how it recovers from failures of either, replays the spool and deletes
old records.

Records go to the database ``batch_records`` at a time, a transaction each
(see ``regression_model.monitoring.log_store`` for the table), inserted with
``ON CONFLICT DO NOTHING`` on their key (``log_records.py``): a batch that
was committed although the acknowledgement was lost is recognised when
replayed, so nothing is written twice. A record the database refuses (not an
outage: say, text PostgreSQL cannot store) is kept in an
``unwritable-*.jsonl`` file in the spool directory, logged and counted, and
the others are written.

When a write fails because the database is down, hung (every connection and
statement is bounded by ``timeout``), locked or full, the batch is appended
to this worker's spool file (JSON lines, fsync'd). Once the database
answers, spool files nobody holds (ours, or left by a worker that died) are
replayed into it and deleted, at once and every ``sweep_seconds``. A stage
that fails (database, migration, spool, replay, retention) is logged at
ERROR, counted in ``prediction_log_failures_total{stage}``, and tried again
with capped exponential backoff (``retry_seconds`` doubling up to
``max_backoff_seconds``).

With ``retention_days``, records older than that are deleted, at most every
``prune_seconds``, in transactions of ``prune_batch_rows`` rows (so a large
table is never locked for long); ``regression-model log-prune`` does the
same by hand.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError

from api.app.operations import metrics
from api.app.operations.log_records import Record
from api.app.operations.log_spool import SpoolFile, keep_unwritable, replay_file
from regression_model.monitoring.log_store import (
    create_log_engine,
    insert_records,
    migrate,
    prune_log,
)

logger = logging.getLogger(__name__)


class Backoff:
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


@dataclass(eq=False, repr=False)  # the default repr would show the URL and its password
class LogStorage:
    """The database and the spool of one worker's prediction log, and what
    became of its records (``counts``)."""

    url: str
    spool_dir: Path
    _: KW_ONLY
    #: bound on connecting to the database and on each statement
    timeout: float = 5.0
    retry_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    sweep_seconds: float = 30.0
    batch_records: int = 5000
    #: records in memory beyond which the writer spools (named in the spool's errors)
    max_queued_records: int = 20_000
    #: 0: keep records forever.
    retention_days: float = 0.0
    prune_seconds: float = 600.0
    prune_batch_rows: int = 5000

    def __post_init__(self) -> None:
        #: Delete batches per writer round (more wait for the next round, so
        #: writes go on in between).
        self.prune_batches_per_round = 4
        self._engine: Engine | None = None
        self._reader: Engine | None = None
        self._reader_migrated = False
        self._migrated = False
        self._database_up = False
        self._database_backoff = Backoff()
        self._spool_backoff = Backoff()
        self._replay_backoff = Backoff()
        self._prune_backoff = Backoff()
        self._spool_failing = False
        self._spool = SpoolFile(self.spool_dir)
        self._next_sweep = 0.0
        self._next_prune = 0.0
        self._start_lock = threading.Lock()
        #: Totals of this worker (tests and the shutdown line read them).
        self.counts: collections.Counter[str] = collections.Counter()

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

    def _in_memory(self) -> int:
        """Records waiting in memory to be stored (the writer's queue)."""
        return 0

    def _try_again_now(self) -> None:
        """The database and the spool are tried at the next attempt, whatever
        their backoff (the writer's last round, at shutdown)."""
        for backoff in (self._database_backoff, self._spool_backoff):
            backoff.next_at = 0.0

    def _dispose(self) -> None:
        """Close the database connections (at shutdown)."""
        for engine in (self._engine, self._reader):
            if engine is not None:
                with contextlib.suppress(Exception):
                    engine.dispose()

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
            refused = 0
            for record in records:  # find the refused ones; the rest go in
                try:
                    with engine.begin() as connection:
                        insert_records(connection, [record])
                except (DataError, IntegrityError) as exc:
                    self._set_aside(record, exc)
                    refused += 1
            return refused

    def _set_aside(self, record: Record, exc: Exception) -> None:
        path = keep_unwritable(self.spool_dir, record)
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
        """Append ``records`` to this worker's spool file: whether they are
        safely there. Tried while the spool works, or when its backoff allows."""
        if not records:
            return True
        now = time.monotonic()
        if not self._spool_backoff.due(now):
            return False
        try:
            self._spool.append(records)
        except Exception as exc:
            # Failing before it is counted: a request that sees the failure
            # counted already queues within the single bound.
            self._spool_failing = True
            self._failure("spool", exc)
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
            for path in self._spool.replayable():
                self._replay_file(engine, path)
        except Exception as exc:
            self._failure("replay", exc)
            self._replay_backoff.failed(now, self.retry_seconds, self.max_backoff_seconds)
            return
        self._replay_backoff.succeeded()

    def _replay_file(self, engine: Engine, path: Path) -> None:
        replayed = replay_file(
            path, lambda batch: self._insert_batch(engine, batch), self.batch_records
        )
        if replayed is None:
            return  # another worker's current file
        if replayed.unreadable:
            self.counts["unreadable"] += replayed.unreadable
            self._failure(
                "replay",
                ValueError(f"{replayed.unreadable} lines of {path.name} are not records"),
            )
            logger.error("unreadable spool lines kept in %s", replayed.kept)
        self.counts["replayed"] += replayed.records
        metrics.LOG_RECORDS.labels("replayed").inc(replayed.records)
        logger.info("replayed %d spooled records from %s", replayed.records, path.name)
