"""Realised performance reports over the prediction log's outcomes, shared by
``GET /api/v1/performance`` and ``/metrics``, with work and memory bounded
whatever clients send.

A report is the computation of ``regression-model performance``
(``regression_model.monitoring.outcome_join`` and ``performance``) over the
``MAX_OUTCOMES`` most recent sales, optionally only those sold from a day on,
for the served model version. As drift reports (``drift_reports.py``, which
says why each of these is needed; the cache both keep: ``report_cache.py``):

- **Few keys.** A report is keyed by its first sale day (UTC; sale dates are
  days), None for the whole window.
- **Bounded cache.** The whole window's report (the gauges') and up to
  ``MAX_REPORTS`` others, the least recently used dropped first; each as the
  dict ``/metrics`` reads and the JSON bytes the route sends.
- **One computation at a time, off the request path.** One thread per
  worker hands the computations, one after another, to a child process (a
  ``multiprocessing`` pool of one, started with *spawn*, ``NICENESS`` lower
  in CPU priority: no GIL shared with the event loop). At most
  ``MAX_WAITING`` days wait in line; one more is told to come back (the
  route's 503 with ``Retry-After``). A computation taking longer than
  ``COMPUTE_TIMEOUT_SECONDS`` is abandoned: the child is terminated and the
  next report starts another.
- The child stops after ``IDLE_SECONDS`` without a report, and starts again
  (about a second) when needed.
- **Requests wait, scrapes never do.** A scrape shows the latest whole-window
  report and queues a refresh when it is older than ``DRIFT_CACHE_SECONDS``.
  A failed refresh (database unreadable) keeps the previous report.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime
from multiprocessing.pool import Pool
from typing import Any

from api.app.operations.report_cache import CachedReport, ReportCache, ReportError
from api.app.schemas.performance import PerformanceReport

logger = logging.getLogger(__name__)

#: Reports kept besides the whole window's.
MAX_REPORTS = 16
#: Days that may wait for their computation at once (besides the whole window).
MAX_WAITING = 4
#: Most recent sales a report reads (a few hundred bytes each while summed).
MAX_OUTCOMES = 100_000
#: A computation taking longer (a hung database, a starved child) is abandoned.
COMPUTE_TIMEOUT_SECONDS = 120.0
#: Added to the child's nice value (drift_process.py says why 10).
NICENESS = 10
#: Without a report for this long, the child process stops (started again,
#: about a second, when needed).
IDLE_SECONDS = 60.0
#: How often a computation's wait looks whether the service is stopping.
CLOSE_POLL_SECONDS = 0.2


class PerformanceReportError(ReportError):
    """A performance report could not be computed; ``database``: the log could not be read."""


#: The child's engine per log URL, made by its first report and kept for the next ones.
_child_engines: dict[str, Any] = {}


def compute_report(setup: dict[str, Any], since: date | None) -> dict[str, Any]:
    """One report, in the child: ``{"report": ...}`` or ``{"error": ...}``
    (plain data: an exception of the database driver need not pickle)."""
    from sqlalchemy.exc import SQLAlchemyError

    from regression_model import __version__ as model_version
    from regression_model import get_config
    from regression_model.monitoring.log_rows import Unreadable
    from regression_model.monitoring.log_store import create_log_engine, migrate
    from regression_model.monitoring.outcome_join import matched_outcomes
    from regression_model.monitoring.performance import PerformanceAccumulator

    try:
        engine = _child_engines.get(setup["url"])
        if engine is None:
            engine = create_log_engine(setup["url"], timeout=setup["timeout"])
            # A report asked for before the writer's first write finds the tables.
            migrate(engine)
            _child_engines[setup["url"]] = engine
        config = get_config()
        accumulator = PerformanceAccumulator(setup["manifest"], config)
        skipped = Unreadable()  # malformed records: counted in the report, never a failure
        for read, sales in matched_outcomes(
            engine,
            config,
            model_version=model_version,
            since=since,
            latest=setup["max_outcomes"],
            unreadable=skipped,
        ):
            accumulator.add(read, sales)
        report = accumulator.report(
            model_version=model_version,
            generated_at=datetime.now(UTC),
            since=since,
            max_outcomes=setup["max_outcomes"],
            unreadable=skipped.records,
        )
        return {"report": report}
    except Exception as exc:  # the worker logs it; the next request retries
        return {
            "error": {
                "type": type(exc).__name__,
                "database": isinstance(exc, SQLAlchemyError),
                "message": str(exc)[:2000],
            }
        }


class PerformanceReports(ReportCache[date, dict[str, Any]]):
    """The performance reports of one prediction log, in one worker."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        max_age_seconds: float,
        max_outcomes: int = MAX_OUTCOMES,
        max_reports: int = MAX_REPORTS,
        max_waiting: int = MAX_WAITING,
        compute_timeout: float = COMPUTE_TIMEOUT_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        super().__init__(
            max_age_seconds=max_age_seconds,
            max_reports=max_reports,
            lock=threading.Lock(),
            logger=logger,
            name="performance",
        )
        self.url = url
        self.timeout = timeout
        self.max_outcomes = max_outcomes
        self.max_waiting = max_waiting
        self.compute_timeout = compute_timeout
        self.idle_seconds = idle_seconds
        self._idle_timer: threading.Timer | None = None
        self._jobs: dict[date | None, Future[CachedReport]] = {}
        # Made when first needed, again after close(): the app may start again
        # (its lifespan entered anew, as tests do) with the same reports.
        self._runner: ThreadPoolExecutor | None = None
        self._pool: Pool | None = None
        self._closed = threading.Event()

    def refresh(self, manifest: dict[str, Any], key: date | None) -> Future[CachedReport] | None:
        """The computation of ``key``'s report: the one queued or running, else
        a new one; None when ``MAX_WAITING`` other days already wait."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None:
                return job
            if key is not None and sum(k is not None for k in self._jobs) >= self.max_waiting:
                return None
            if self._runner is None:
                self._closed.clear()
                self._runner = ThreadPoolExecutor(1, thread_name_prefix="performance-report")
            job = self._runner.submit(self._compute, manifest, key)
            self._jobs[key] = job
            return job

    def close(self) -> None:
        """Stop the child process and the thread (a computation under way is abandoned)."""
        self._closed.set()
        with self._lock:
            runner, self._runner = self._runner, None
            # Cancelled or abandoned: a later request must not wait for them.
            self._jobs.clear()
            pool, self._pool = self._pool, None
            if self._idle_timer is not None:
                self._idle_timer.cancel()
        if runner is not None:
            runner.shutdown(wait=False, cancel_futures=True)
        if pool is not None:
            pool.terminate()
            pool.join()

    def _compute(self, manifest: dict[str, Any], key: date | None) -> CachedReport:
        try:
            answer = self._ask(manifest, key)
            if "error" in answer:
                error = answer["error"]
                raise PerformanceReportError.from_child(error)
            report = answer["report"]
            entry = CachedReport(
                report,
                PerformanceReport.model_validate(report).model_dump_json().encode(),
                time.monotonic(),
            )
        except Exception as exc:
            self._log_failure(exc)
            with self._lock:
                self._jobs.pop(key, None)
                self._stop_when_idle()
            raise
        with self._lock:
            self._jobs.pop(key, None)
            self._store(key, entry)
            self._stop_when_idle()
        return entry

    def _ask(self, manifest: dict[str, Any], key: date | None) -> dict[str, Any]:
        pool = self._pool
        if pool is None:
            context = multiprocessing.get_context("spawn")
            pool = self._pool = context.Pool(1, initializer=os.nice, initargs=(NICENESS,))
        setup = {
            "url": self.url,
            "timeout": self.timeout,
            "manifest": manifest,
            "max_outcomes": self.max_outcomes,
        }
        pending = pool.apply_async(compute_report, (setup, key))
        deadline = time.monotonic() + self.compute_timeout
        # Waited for in steps, so that close() (which terminates the pool: the
        # result never comes) ends the wait too.
        while not pending.ready():
            if self._closed.is_set():
                raise PerformanceReportError("the service is stopping")
            if time.monotonic() >= deadline:
                self._pool = None
                pool.terminate()
                raise PerformanceReportError(
                    f"no performance report within {self.compute_timeout:.0f} s"
                )
            pending.wait(CLOSE_POLL_SECONDS)
        answer: dict[str, Any] = pending.get()
        return answer

    def _stop_when_idle(self) -> None:
        """(Under the lock) stop the child ``idle_seconds`` from now unless a
        report is asked for meanwhile."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = threading.Timer(self.idle_seconds, self._stop_if_idle)
        self._idle_timer.daemon = True
        self._idle_timer.start()

    def _stop_if_idle(self) -> None:
        with self._lock:
            if self._jobs or self._pool is None:
                return  # in use (a computation queued or running), or stopped
            pool, self._pool = self._pool, None
        pool.terminate()
        pool.join()

    def _log_failure(self, exc: Exception) -> None:
        if self._closed.is_set():
            return  # stopping: nothing to report (the log's handlers may be gone)
        super()._log_failure(exc)
