"""Drift reports over the prediction log, shared by ``GET /api/v1/drift`` and
``/metrics``, with work and memory bounded whatever clients send.

A report is the same computation as ``regression-model drift`` (NumPy only)
over the ``DRIFT_WINDOW`` most recent houses of the served model version,
optionally only those logged from a start time on. Every distinct start used
to compute a fresh report in the request's thread: 16 clients varying
``since`` took a worker from 96 MB to 749 MB and the other clients'
``/predict`` median from 2.7 ms to 45 ms. Now:

- **Few keys.** A report is keyed by its start, rounded down (by the route,
  :func:`window_start`) to ``DRIFT_SINCE_ROUNDING_SECONDS``; None is the
  whole window.
- **Bounded cache.** The whole-window report (the ``/metrics`` gauges' too)
  and up to ``MAX_REPORTS`` others, the least recently used dropped first.
  A report is kept as the dict ``/metrics`` reads and as the JSON bytes the
  route sends, rendered once.
- **One computation at a time, off the request path.** One thread per worker
  feeds a child process (``drift_process.py``: no GIL shared with the event
  loop, a lower CPU priority), one report after another, reading the log in
  chunks of ``CHUNK_ROWS`` houses. At most ``MAX_WAITING`` starts wait in
  line; a request for one more is told to come back (the route's 503 with
  ``Retry-After``, unless an older report of that start exists). The whole
  window is always admitted, first in line, so a flood of ``since`` values
  never keeps the gauges from refreshing.
- **Requests wait, scrapes never do.** The route waits for the computation
  of its start up to ``DRIFT_WAIT_SECONDS`` (an await, no thread held); a
  scrape shows the latest whole-window report and, when it is older than
  ``DRIFT_CACHE_SECONDS``, queues a refresh. A failed refresh (database
  unreadable) keeps the previous report, whose age the gauges carry.
- The thread and the child stop after ``IDLE_SECONDS`` without work, and
  start again (about a second) when needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic_core import from_json, to_json

import api
from api.app.operations.log_writer import PredictionLog
from api.app.operations.report_cache import CachedReport, ReportCache, ReportError
from api.app.schemas.drift import DriftReport
from regression_model import Model

logger = logging.getLogger(__name__)

#: Reports kept besides the whole window's: about 40 KB each (dict and bytes).
MAX_REPORTS = 16
#: Starts that may wait for their computation at once (besides the whole window).
MAX_WAITING = 4
#: Houses read from the log at a time: their parsed JSON is the largest thing
#: a computation holds (a few MB), whatever DRIFT_WINDOW is.
CHUNK_ROWS = 1000
#: Without work for this long, the feeding thread and the child process stop.
IDLE_SECONDS = 60.0
#: A computation taking longer (a hung database, a starved child) is abandoned:
#: the child is killed and started again for the next report.
COMPUTE_TIMEOUT_SECONDS = 120.0

EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The directory that holds the ``api`` package, put on the child's path so it
#: runs this very code (in tests, a source tree that is not installed).
_API_PARENT = Path(api.__file__).resolve().parent.parent


def window_start(since: datetime, step_seconds: int) -> datetime:
    """``since`` in UTC (naive: taken as UTC), rounded down to a multiple of
    ``step_seconds`` since 1970-01-01, and clamped to what ``datetime`` holds
    (0001-01-01 to 9999-12-31).

    Differences of aware times never overflow, so neither does this (turning
    ``0001-01-01T00:00:00+00:01`` into UTC with ``astimezone`` did: year 0).
    """
    moment = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    offset = min(max(moment - _EPOCH, EARLIEST - _EPOCH), LATEST - _EPOCH)
    step = timedelta(seconds=step_seconds)
    return _EPOCH + max((offset // step) * step, EARLIEST - _EPOCH)


class DriftReportError(ReportError):
    """A drift report could not be computed; ``database``: the log could not be read."""


@dataclass
class _Job:
    key: datetime | None
    model: Model
    future: Future[CachedReport] = field(default_factory=Future)


class _Child:
    """The computing process (``drift_process.py``) and its pipes."""

    def __init__(self, setup: dict[str, Any]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            path for path in (str(_API_PARENT), env.get("PYTHONPATH", "")) if path
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.app.operations.drift_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            # Its own session: a terminal's Ctrl-C goes to the server, which
            # stops its workers; the child ends when its stdin closes.
            start_new_session=True,
        )
        self._send(setup)

    def alive(self) -> bool:
        return self.process.poll() is None

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(to_json(message) + b"\n")
            self.process.stdin.flush()
        except OSError as exc:  # it died (BrokenPipeError)
            raise DriftReportError(f"the drift process is gone ({exc})") from None

    def ask(self, since: datetime | None, timeout: float) -> dict[str, Any]:
        self._send({"since": since.isoformat() if since is not None else None})
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        reply = bytearray()
        deadline = time.monotonic() + timeout
        # The raw descriptor with a deadline, not readline(): a child that hangs
        # must not hang this thread.
        while not reply.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.close()
                raise DriftReportError(f"no drift report within {timeout:.0f} s")
            data = os.read(fd, 1 << 16)
            if not data:
                code = self.process.wait()
                raise DriftReportError(f"the drift process exited (code {code})")
            reply += data
        answer: dict[str, Any] = from_json(bytes(reply))
        if "error" in answer:
            error = answer["error"]
            raise DriftReportError.from_child(error)
        report: dict[str, Any] = answer["report"]
        # As the computation returned them (the JSON carried them as text).
        report["generated_at"] = datetime.fromisoformat(report["generated_at"])
        if report["since"] is not None:
            report["since"] = datetime.fromisoformat(report["since"])
        return report

    def close(self) -> None:
        """Close its stdin (it exits), then wait a little; kill it if it does not."""
        if self.process.stdin is not None:
            # Closing flushes; a child that already died breaks the pipe.
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class DriftReports(ReportCache[datetime, Model]):
    """The drift reports of one prediction log, in one worker."""

    def __init__(
        self,
        log: PredictionLog,
        *,
        window: int,
        max_age_seconds: float,
        max_reports: int = MAX_REPORTS,
        max_waiting: int = MAX_WAITING,
        idle_seconds: float = IDLE_SECONDS,
        compute_timeout: float = COMPUTE_TIMEOUT_SECONDS,
    ) -> None:
        # A Condition: the feeding thread waits on it for work.
        self._lock: threading.Condition
        super().__init__(
            max_age_seconds=max_age_seconds,
            max_reports=max_reports,
            lock=threading.Condition(),
            logger=logger,
            name="drift",
        )
        self.log = log
        self.window = window
        self.max_waiting = max_waiting
        self.idle_seconds = idle_seconds
        self.compute_timeout = compute_timeout
        self._waiting: OrderedDict[datetime | None, _Job] = OrderedDict()
        self._running: _Job | None = None
        self._thread: threading.Thread | None = None
        self._child: _Child | None = None

    # -- what the route and /metrics call ------------------------------------

    def refresh(self, model: Model, key: datetime | None) -> Future[CachedReport] | None:
        """The computation of ``key``'s report: the one already queued or
        running, else a new one; None when ``MAX_WAITING`` others already wait
        (the whole window is always admitted, first in line)."""
        with self._lock:
            if self._running is not None and self._running.key == key:
                return self._running.future
            job = self._waiting.get(key)
            if job is not None:
                return job.future
            if key is not None and sum(k is not None for k in self._waiting) >= self.max_waiting:
                return None
            job = _Job(key, model)
            self._waiting[key] = job
            if key is None:
                self._waiting.move_to_end(key, last=False)
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="drift-report", daemon=True)
                try:
                    thread.start()
                except RuntimeError as exc:  # no thread could be started: the next call retries
                    logger.exception("could not start the drift report thread")
                    del self._waiting[key]
                    job.future.set_exception(DriftReportError(str(exc)))
                    return job.future
                self._thread = thread
            else:
                self._lock.notify()
            return job.future

    def close(self) -> None:
        """Stop the child process now (the thread stops once idle)."""
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            child.close()

    # -- the feeding thread ---------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                deadline = time.monotonic() + self.idle_seconds
                while not self._waiting and time.monotonic() < deadline:
                    self._lock.wait(deadline - time.monotonic())
                if not self._waiting:
                    self._thread = None
                    child, self._child = self._child, None
                    break
                _, job = self._waiting.popitem(last=False)
                self._running = job
            try:
                report = self._compute(job.model, job.key)
                entry = CachedReport(
                    report,
                    DriftReport.model_validate(report).model_dump_json().encode(),
                    time.monotonic(),
                )
            except Exception as exc:
                self._log_failure(exc)
                with self._lock:
                    self._running = None
                job.future.set_exception(exc)
                continue
            with self._lock:
                self._store(job.key, entry)
                self._running = None
            job.future.set_result(entry)
        if child is not None:
            child.close()

    def _compute(self, model: Model, since: datetime | None) -> dict[str, Any]:
        """One report, computed by the child process (started if needed).
        Raises DriftReportError (``database``: the log could not be read)."""
        child = self._child
        if child is None or not child.alive():
            setup = {
                "url": self.log.url,
                "timeout": self.log.timeout,
                "window": self.window,
                "chunk_rows": CHUNK_ROWS,
                "manifest": model.manifest,
            }
            child = self._child = _Child(setup)
        return child.ask(since, self.compute_timeout)
