"""Prometheus metrics, counted by every worker (prometheus-client's
multi-process mode).

When ``PROMETHEUS_MULTIPROC_DIR`` is set before this module is imported (as
``python -m api`` does, with a fresh directory per server), each worker writes
its counts to memory-mapped files there and ``/metrics``, answered by any
worker, adds up every worker's, including workers that have since died.
Without it (a single process, the tests) the counts live in this process.

Label values are bounded: routes are the app's route templates (or
``unmatched``), fields the model's input fields (or ``other``). Request
counts and latencies are recorded by the request-context middleware, the
prediction figures by the ``/predict`` route, and the model's identity and
age are read from the loaded model at scrape time, as are the drift gauges
(from the worker's latest drift report; see ``drift_reports.py``), by the
collectors of ``scrape_metrics.py``.

On the request path a count is an append or an increment in this process
(:class:`_Tally`: a histogram's values observed, a counter's number).
:func:`flush` hands them to the metrics through prometheus-client's public
API only, ``Counter.inc(n)`` and ``Histogram.observe(value)`` once per value
(the library has no call that adds many observations at once; its
maintainers point bulk data to custom collectors, which multi-process mode
would not see), on the event loop (no lock needed), every ``FLUSH_SECONDS``,
before each scrape this worker answers, and at shutdown. Only metric objects
write the multi-process files, so that mode is prometheus-client's own. A
scrape answered by another worker may so miss up to ``FLUSH_SECONDS`` of this
worker's latest requests; a worker killed with SIGKILL loses as much.

What it costs, for one-house /predict requests (six observations each) at
3,000 a second in multi-process mode, measured by ``python -m pytest
api/tests/test_metrics.py -k flush_cost -s`` (2 cores busy with a CI run, so
on the high side): about 2 µs a request on the request path, and 62-77 ms
of flushing per second of such traffic (21-26 µs a request), 7.6 ms per
flush of 0.1 s. That is what recording straight into the shared files cost
(about 30 µs a request, measured before the tallies): the tally moves the
work off the request, not out of the worker. (Adding bucket counts through
the histogram's private fields, as this module once did, cost about 5 µs a
request and 0.1 ms a second.) ``FLUSH_SECONDS`` is short so that a flush
holds the event loop a few milliseconds, not the 60-100 ms a flush once a
second takes at that rate; a tally holds at most that long's values.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from api.app.core.settings import MULTIPROC_ENV_VAR
from api.app.operations.performance_gauges import PerformanceCollector
from api.app.operations.scrape_metrics import DriftCollector, ModelCollector

CONTENT_TYPE = CONTENT_TYPE_LATEST

_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "time from the request's arrival to the end of its response",
    ["method", "route", "status"],
    buckets=_SECONDS,
)
HOUSES_PER_REQUEST = Histogram(
    "predict_houses_per_request",
    "houses sent in one /predict request",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
HOUSES = Counter("predict_houses_total", "houses priced or rejected", ["outcome"])
VALIDATION_FAILURES = Counter(
    "predict_validation_failures_total", "per-house validation errors, by input field", ["field"]
)
PRICES = Histogram(
    "predict_price_dollars",
    "predicted sale prices",
    buckets=(
        50e3,
        75e3,
        100e3,
        125e3,
        150e3,
        175e3,
        200e3,
        250e3,
        300e3,
        400e3,
        500e3,
        750e3,
        1e6,
    ),
)
STAGES = Histogram(
    "predict_stage_seconds",
    "time per stage of /predict: parse (JSON body), validate, score",
    ["stage"],
    buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.05, 0.25, 1.0),
)
UNKNOWN_FIELDS = Counter(
    "predict_unknown_fields_total",
    "fields sent that are not model inputs: ignored (named in the response's warnings) or "
    "refused (strict mode: an error of the house)",
    ["outcome"],
)
LOG_RECORDS = Counter(
    "prediction_log_records_total",
    "prediction log records by what happened to them: written (to the database), "
    "spooled (to the local file while the database was unreachable), replayed (from the "
    "spool file into the database), unwritable (refused by the database, kept in a file), "
    "dropped (lost: neither the database nor the spool took them, oldest first beyond "
    "PREDICTION_LOG_MAX_QUEUED_RECORDS, or left at shutdown), pruned (deleted by retention)",
    ["outcome"],
)
#: Where the prediction log writer can fail (the bounded label set of LOG_FAILURES).
LOG_FAILURE_STAGES = ("database", "migration", "spool", "replay", "retention", "writer", "record")
LOG_FAILURES = Counter(
    "prediction_log_failures_total",
    "prediction log failures, each logged at ERROR and retried with backoff, by stage: "
    "database (a write), migration, spool (a write to the spool file), replay (of spool "
    "files), retention (deleting old records), writer (anything else in the writer "
    "thread), record (queueing a request's houses)",
    ["stage"],
)
for _stage in LOG_FAILURE_STAGES:  # every stage exported from the start, at 0
    LOG_FAILURES.labels(_stage)
LOG_QUEUE = Gauge(
    "prediction_log_queue_records",
    "records waiting in this worker's memory to be written (queued, held while the "
    "database and the spool both fail, or in the batch being written)",
    multiprocess_mode="livesum",
)
LOG_DATABASE_UP = Gauge(
    "prediction_log_database_up",
    "1 when the last write to the prediction log's database succeeded",
    multiprocess_mode="liveall",
)

_UNMATCHED = "unmatched"
_OTHER = "other"
#: How often the tallies of this process are added to the shared metrics (short, so
#: that a flush holds the event loop a few milliseconds at most; module docstring).
FLUSH_SECONDS = 0.1


class _Tally:
    """Counts for one counter or histogram child, kept in this process until
    :meth:`flush`: a counter's as a number, a histogram's as the values
    observed, handed to the child's own ``observe`` one by one (public API
    only: prometheus-client has no call that adds many observations at once),
    so flushing records exactly what observing on the request path would have."""

    __slots__ = ("child", "count", "values")

    def __init__(self, child: Counter | Histogram) -> None:
        self.child = child
        self.count = 0
        self.values: list[float] = []

    def observe(self, value: float) -> None:
        self.values.append(value)

    def flush(self) -> None:
        child = self.child
        if isinstance(child, Histogram):
            values, self.values = self.values, []
            for value in values:
                child.observe(value)
        elif self.count:
            count, self.count = self.count, 0
            child.inc(count)


#: Tallies of the labelled metrics, made once per label set.
_tallies: list[_Tally] = []
_request_tallies: dict[tuple[str, str, int], tuple[_Tally, _Tally]] = {}
_field_tallies: dict[str, _Tally] = {}


def _tally(child: Counter | Histogram) -> _Tally:
    tally = _Tally(child)
    _tallies.append(tally)
    return tally


_stage_tallies = {stage: _tally(STAGES.labels(stage)) for stage in ("parse", "validate", "score")}
_HOUSES_PER_REQUEST = _tally(HOUSES_PER_REQUEST)
_PRICES = _tally(PRICES)
_PRICED = _tally(HOUSES.labels("priced"))
_REJECTED = _tally(HOUSES.labels("rejected"))
_IGNORED_FIELDS = _tally(UNKNOWN_FIELDS.labels("ignored"))
_REFUSED_FIELDS = _tally(UNKNOWN_FIELDS.labels("refused"))


def flush() -> None:
    """Add this process's tallies to the shared metrics (call on the event loop)."""
    for tally in _tallies:
        tally.flush()


def route_label(scope: Mapping[str, Any]) -> str:
    """The route template that answered (bounded), not the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else _UNMATCHED


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    tallies = _request_tallies.get(key)
    if tallies is None:
        label = (method, route, str(status))
        tallies = _request_tallies[key] = (
            _tally(REQUESTS.labels(*label)),
            _tally(LATENCY.labels(*label)),
        )
    tallies[0].count += 1
    tallies[1].observe(seconds)


def observe_prediction(
    houses: int,
    prices: Sequence[float | None],
    errors: Sequence[Mapping[str, Any]] | None,
    timings: Mapping[str, float],
    known_fields: frozenset[str],
    *,
    warnings: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """The figures of one /predict request (tallied; see :func:`flush`)."""
    # Only fields that are not inputs (a label's hint names a known field; a
    # house's fields beyond the 20 named count once, in their "*" entry).
    _IGNORED_FIELDS.count += sum(w["field"] not in known_fields for w in warnings or ())
    _HOUSES_PER_REQUEST.observe(houses)
    priced = 0
    for price in prices:
        if price is not None:
            priced += 1
            _PRICES.observe(price)
    _PRICED.count += priced
    _REJECTED.count += houses - priced
    for error in errors or ():
        if error["field"] in known_fields:
            field = error["field"]
        else:  # only an unknown field, refused in strict mode, is not a known one
            field = _OTHER
            _REFUSED_FIELDS.count += 1
        tally = _field_tallies.get(field)
        if tally is None:
            tally = _field_tallies[field] = _tally(VALIDATION_FAILURES.labels(field))
        tally.count += 1
    for stage, seconds in timings.items():
        stage_tally = _stage_tallies.get(stage)
        if stage_tally is not None:
            stage_tally.observe(seconds)


def server_timing(timings: Mapping[str, float]) -> str:
    """The ``Server-Timing`` header value (milliseconds) for the stages timed."""
    return ", ".join(f"{stage};dur={seconds * 1000:.3f}" for stage, seconds in timings.items())


def is_multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV_VAR))


def render(
    manifest: Mapping[str, Any] | None,
    drift_report: Mapping[str, Any] | None = None,
    performance_report: Mapping[str, Any] | None = None,
) -> bytes:
    """The exposition text: every worker's counts (or this process's), then the
    model, then the drift and performance gauges (when there are reports)."""
    flush()
    if is_multiprocess():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        counts = generate_latest(registry)
    else:
        counts = generate_latest(REGISTRY)
    model = CollectorRegistry()
    model.register(ModelCollector(manifest))
    model.register(DriftCollector(drift_report))
    model.register(PerformanceCollector(performance_report))
    return counts + generate_latest(model)


def forget_dead_workers() -> None:
    """Drop the live gauges of workers that have died (a worker that was killed
    never says so itself); their counters stay, as counts do."""
    directory = os.environ.get(MULTIPROC_ENV_VAR)
    if not directory:
        return
    for file in Path(directory).glob("gauge_live*_*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def flush_periodically() -> None:
    """Flush every ``FLUSH_SECONDS`` until cancelled (then once more)."""
    try:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            flush()
    finally:
        flush()
