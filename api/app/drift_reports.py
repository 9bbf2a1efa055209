"""Drift reports over the prediction log, shared by ``GET /api/v1/drift`` and
``/metrics``.

A report is the same computation as ``regression-model drift`` (NumPy only,
so the worker loads neither pandas nor SciPy) over the ``DRIFT_WINDOW`` most
recent houses of the served model version. Each worker keeps the latest
report per ``since`` for ``DRIFT_CACHE_SECONDS``.

The route computes a stale report while its request waits (in the
threadpool). A scrape never waits: ``/metrics`` shows the latest report over
the whole window and, when that is stale, starts one refresh in a background
thread, so a scrape costs a dictionary read whatever the size of the log,
and a database that cannot be read leaves the previous report (whose age the
gauges carry) instead of failing the scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from api.app.prediction_log import PredictionLog
from regression_model import __version__ as model_version
from regression_model.monitoring.drift import DriftAccumulator
from regression_model.monitoring.prediction_log import read_log
from regression_model.predict import LoadedModel

logger = logging.getLogger(__name__)


class DriftReports:
    """Drift reports of one prediction log, reused while fresh."""

    def __init__(self, log: PredictionLog, *, window: int, max_age_seconds: float) -> None:
        self.log = log
        self.window = window
        self.max_age_seconds = max_age_seconds
        # since -> (time.monotonic() when computed, report)
        self._cache: dict[datetime | None, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._refreshing = False

    def report(self, model: LoadedModel, since: datetime | None = None) -> dict[str, Any]:
        """The cached report for ``since`` if fresh, else one computed now.
        Raises SQLAlchemy's errors when the log's database cannot be read."""
        with self._lock:
            cached = self._cache.get(since)
            if cached is not None and self._fresh(cached[0]):
                return cached[1]
        report = self._compute(model, since)
        with self._lock:
            # Stale reports go, so the cache holds only those of the last
            # DRIFT_CACHE_SECONDS however many `since` values clients send.
            self._cache = {key: item for key, item in self._cache.items() if self._fresh(item[0])}
            self._cache[since] = (time.monotonic(), report)
        return report

    def latest(self, model: LoadedModel | None) -> dict[str, Any] | None:
        """The latest report over the whole window, without waiting: None until
        one has been computed. When it is stale (or missing) and the model is
        loaded, one refresh starts in the background."""
        with self._lock:
            cached = self._cache.get(None)
            start = (
                model is not None
                and not self._refreshing
                and (cached is None or not self._fresh(cached[0]))
            )
            if start:
                self._refreshing = True
        if start:
            assert model is not None  # for mypy: `start` implies it
            try:
                threading.Thread(
                    target=self._refresh, args=(model,), name="drift-report", daemon=True
                ).start()
            except RuntimeError:  # no thread could be started: try again next scrape
                logger.exception("could not start the drift report refresh")
                with self._lock:
                    self._refreshing = False
        return cached[1] if cached is not None else None

    def _fresh(self, computed_at: float) -> bool:
        return time.monotonic() - computed_at < self.max_age_seconds

    def _refresh(self, model: LoadedModel) -> None:
        try:
            self.report(model)
        except Exception:
            # Any failure (database unreadable, a broken manifest) keeps the last
            # report, whose timestamp the gauges show ageing; the next scrape retries.
            logger.warning("drift report for /metrics failed", exc_info=True)
        finally:
            with self._lock:
                self._refreshing = False

    def _compute(self, model: LoadedModel, since: datetime | None) -> dict[str, Any]:
        accumulator = DriftAccumulator(model.manifest, model.config)
        for chunk in read_log(
            self.log.reader(), since=since, model_version=model_version, latest=self.window
        ):
            accumulator.add([inputs for inputs, _ in chunk], [price for _, price in chunk])
        return accumulator.report(
            model_version=model_version,
            generated_at=datetime.now(UTC),
            since=since,
            window=self.window,
        )
