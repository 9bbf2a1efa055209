"""What the drift and the performance reports share: a report computed off the
request path (:class:`CachedReport`), the error of one that could not be
(:class:`ReportError`), and the bounded cache both keep per worker
(:class:`ReportCache`): the whole window's report and up to ``max_reports``
others, the least recently used dropped first, read without waiting.

How a report is computed stays each one's own (``drift_reports.py``: a thread
feeding a child process of its own; ``performance_reports.py``: a runner
handing work to a process pool of one); each says why.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

#: Computation failures are logged at ERROR at most this often (a database that
#: is down fails every queued report in turn); the others at DEBUG.
ERROR_LOG_INTERVAL_SECONDS = 10.0

#: A report's key: its start (None is the whole window).
Key = TypeVar("Key")
#: What a report is computed from (the served model, or its manifest).
Source = TypeVar("Source")


class ReportError(RuntimeError):
    """A report could not be computed; ``database``: the log could not be read."""

    def __init__(self, message: str, *, database: bool = False) -> None:
        super().__init__(message)
        self.database = database

    @classmethod
    def from_child(cls, error: dict[str, Any]) -> Self:
        """The error a child process sent as plain data (``type``, ``message``,
        ``database``): an exception of the database driver need not pickle."""
        return cls(f"{error['type']}: {error['message']}", database=bool(error["database"]))


@dataclass(frozen=True)
class CachedReport:
    """A computed report: the dict (``/metrics``) and its JSON (the route)."""

    report: dict[str, Any]
    body: bytes
    #: time.monotonic() when it was computed
    computed_at: float

    def age(self) -> float:
        return time.monotonic() - self.computed_at


class ReportCache(ABC, Generic[Key, Source]):
    """The reports of one prediction log, in one worker: the whole window's
    and up to ``max_reports`` others (least recently used dropped first).
    Subclasses compute them (:meth:`refresh`) and store each with
    :meth:`_store`, under ``_lock``."""

    def __init__(
        self,
        *,
        max_age_seconds: float,
        max_reports: int,
        lock: threading.Lock | threading.Condition,
        logger: logging.Logger,
        name: str,
    ) -> None:
        self.max_age_seconds = max_age_seconds
        self.max_reports = max_reports
        self._lock = lock
        self._whole: CachedReport | None = None
        self._reports: OrderedDict[Key, CachedReport] = OrderedDict()
        self._logger = logger
        self._name = name
        self._last_error_logged = -ERROR_LOG_INTERVAL_SECONDS

    @abstractmethod
    def refresh(self, source: Source, key: Key | None) -> Future[CachedReport] | None:
        """The computation of ``key``'s report: the one queued or running, else
        a new one; None when too many others already wait."""

    def cached(self, key: Key | None) -> CachedReport | None:
        """The latest report of ``key`` (fresh or not), or None; never waits."""
        with self._lock:
            if key is None:
                return self._whole
            entry = self._reports.get(key)
            if entry is not None:
                self._reports.move_to_end(key)
            return entry

    def is_fresh(self, entry: CachedReport) -> bool:
        return entry.age() < self.max_age_seconds

    def latest(self, source: Source | None) -> dict[str, Any] | None:
        """The latest whole-window report, without waiting: None until one has
        been computed. When it is stale (or missing) and the model is loaded,
        a refresh is queued."""
        entry = self.cached(None)
        if source is not None and (entry is None or not self.is_fresh(entry)):
            self.refresh(source, None)
        return entry.report if entry is not None else None

    def _store(self, key: Key | None, entry: CachedReport) -> None:
        """(Under the lock) keep ``entry`` as ``key``'s latest report."""
        if key is None:
            self._whole = entry
            return
        self._reports[key] = entry
        self._reports.move_to_end(key)
        while len(self._reports) > self.max_reports:
            self._reports.popitem(last=False)

    def _log_failure(self, exc: Exception) -> None:
        """A report not computed: at ERROR at most every
        ``ERROR_LOG_INTERVAL_SECONDS``, else at DEBUG; the traceback only for an
        unexpected error. The last report stays (the gauges show it ageing);
        the next request retries."""
        now = time.monotonic()
        level = logging.DEBUG
        if now - self._last_error_logged >= ERROR_LOG_INTERVAL_SECONDS:
            level, self._last_error_logged = logging.ERROR, now
        self._logger.log(
            level,
            "%s report not computed: %s",
            self._name,
            exc,
            exc_info=not isinstance(exc, ReportError),
        )
