"""The prediction log on a really full disk: a 2 MB tmpfs holds the SQLite
file and the spool. The writer must stay alive, keep its memory within
``max_queued_records``, count and report (at ERROR) what it drops, keep the
queue gauge true, and, once the filesystem is enlarged, write again by itself
without a restart; whatever was not dropped reaches the database, once.

Mounting needs root: the tests skip otherwise, and fail instead with
``REQUIRE_LOG_FAULTS=1`` (as in CI, ``.ci/run``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from api.app.operations.log_writer import PredictionLog
from api.tests.conftest import FIGURES
from api.tests.helpers import running_server
from api.tests.test_metrics import scrape, value
from api.tests.tooling import unavailable
from regression_model import __version__ as model_version
from regression_model.monitoring.log_store import create_log_engine, predictions

REQUIRED_BY = "REQUIRE_LOG_FAULTS"


@contextmanager
def small_tmpfs(size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on a new directory, unmounted after."""
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs needs root", REQUIRED_BY)
    directory = Path(tempfile.mkdtemp(prefix="log-full-disk-", dir="/tmp"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        directory.rmdir()
        unavailable(f"cannot mount a tmpfs: {done.stderr.strip()}", REQUIRED_BY)
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], capture_output=True)
        directory.rmdir()


def resize(directory: Path, size: str) -> None:
    subprocess.run(
        ["mount", "-o", f"remount,size={size}", str(directory)], check=True, capture_output=True
    )


def count_rows(path: Path, *, request_prefix: str | None = None) -> int:
    engine = create_log_engine(str(path))
    try:
        query = select(func.count()).select_from(predictions)
        if request_prefix is not None:
            query = query.where(predictions.c.request_id.startswith(request_prefix))
        with engine.connect() as connection:
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.timeout(90)
def test_a_full_disk_bounds_memory_counts_drops_and_the_writer_recovers_by_itself(
    test_houses: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    bound = 3000
    with small_tmpfs("2m") as disk:
        path = disk / "log.sqlite3"
        log = PredictionLog(
            str(path),
            disk / "spool",
            flush_seconds=0.05,
            timeout=0.5,
            retry_seconds=0.05,
            max_backoff_seconds=0.4,
            batch_records=500,
            max_queued_records=bound,
        )
        log.sweep_seconds = 0.5  # replay what was spooled soon after the disk grows
        dropped_before = metric("prediction_log_records_total", outcome="dropped")
        spool_failures_before = metric("prediction_log_failures_total", stage="spool")
        database_failures_before = metric("prediction_log_failures_total", stage="database")
        result = ([1.0] * 20, None, model_version)
        # The writer (drops) and its storage (database, spool) log the errors.
        caplog.set_level(logging.ERROR, logger="api.app.operations")
        sent = 0
        # In memory at most: before the writer finds the spool failing (it
        # spools the excess then, as when the database is merely slow; the
        # request path drops beyond twice the bound), and after (the bound).
        peak_before = most_in_memory = 0
        started = time.monotonic()
        try:
            # Fill the disk: 20 houses a request until the spool fails, then
            # 1.5 s more (dozens of the writer's rounds, each failing).
            spool_failed_at: float | None = None
            while spool_failed_at is None or time.monotonic() - spool_failed_at < 1.5:
                assert time.monotonic() - started < 30, f"disk never full: {log.counts}"
                houses = [test_houses[(sent + j) % len(test_houses)] for j in range(20)]
                failing = spool_failed_at is not None
                log.record(f"full-{sent}", houses, *result)
                sent += 20
                if not failing and log.counts["failed_spool"]:
                    spool_failed_at = time.monotonic()
                if failing:
                    most_in_memory = max(most_in_memory, log.in_memory)
                else:
                    peak_before = max(peak_before, log.in_memory)
                if sent % 2000 == 0:
                    time.sleep(0.01)  # let the writer run a round now and then
            assert spool_failed_at is not None
            filled_in = spool_failed_at - started
            time.sleep(0.5)  # a few failing rounds
            thread = log._thread
            assert thread is not None and thread.is_alive()
            assert peak_before <= 2 * bound
            assert most_in_memory <= bound
            assert 0 < log.in_memory <= bound
            # The gauge tells the truth while everything fails, not 0.
            wait_for(
                lambda: metric("prediction_log_queue_records") == log.in_memory,
                5,
                "the queue gauge to match what is in memory",
            )
            dropped = log.counts["dropped"]
            assert (
                metric("prediction_log_records_total", outcome="dropped") - dropped_before
                == dropped
            )
            assert metric("prediction_log_failures_total", stage="spool") > spool_failures_before
            assert (
                metric("prediction_log_failures_total", stage="database")
                > database_failures_before
            )
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            drop_lines = [m for m in errors if "dropped" in m]
            assert any("spool failed" in m and "No space left" in m for m in errors), errors[:5]
            assert any("database failed" in m for m in errors), errors[:5]
            # Rate-limited: thousands of records dropped, a line per 10 s at most.
            assert 1 <= len(drop_lines) <= 1 + (time.monotonic() - started) / 10

            # More room: the same writer writes what it held, then new records.
            resize(disk, "64m")
            recovered_at = time.monotonic()
            wait_for(lambda: log.in_memory == 0, 15, "the writer to write what it held")
            # Records the spool took before the database's next attempt are
            # replayed at the next sweep: all of it, nothing left in the spool.
            wait_for(lambda: count_rows(path) == sent - dropped, 15, "the spool's replay")
            recovery_seconds = time.monotonic() - recovered_at
            assert log.counts["dropped"] == dropped  # what it held was kept, none dropped
            for i in range(10):
                log.record(f"after-{i}", test_houses[:20], *result)
                sent += 20
            wait_for(lambda: log.in_memory == 0, 15, "the writer to write new records")
            assert count_rows(path, request_prefix="after-") == 200
            assert log._thread is thread and thread.is_alive()
            wait_for(lambda: metric("prediction_log_queue_records") == 0, 5, "the gauge to say 0")
            assert log.counts["dropped"] == dropped
        finally:
            log.close()
        rows = count_rows(path)
        # Everything that was not dropped is in the database, once.
        assert rows == sent - dropped
        assert not list((disk / "spool").glob("spool-*.jsonl"))
    FIGURES["prediction log on a full 2 MB disk (in process)"] = (
        f"{sent} houses recorded; the spool failed after {filled_in:.1f} s; "
        f"at most {most_in_memory} in memory once the spool failed (bound {bound}; "
        f"{peak_before} before, while the writer still spooled the excess); "
        f"{dropped} dropped and counted, "
        f"{len(drop_lines)} ERROR lines about it; after enlarging: caught up in "
        f"{recovery_seconds:.1f} s, {rows} records in the database = recorded - dropped"
    )


@pytest.mark.server
@pytest.mark.timeout(120)
def test_a_real_worker_on_a_full_disk_answers_every_request_and_recovers(
    tmp_path: Path, test_houses: list[Any]
) -> None:
    """A uvicorn worker whose SQLite log and spool share a 2 MB tmpfs: every
    request is answered 200 while the disk is full; /metrics shows the drops,
    the failures and a bounded queue; after the tmpfs is enlarged the worker
    writes again, and after SIGTERM the database holds every house that was
    not dropped."""
    bound = 500
    with small_tmpfs("2m") as disk:
        path = disk / "log.sqlite3"
        env = {
            "PREDICTION_LOG_PATH": str(path),
            "PREDICTION_LOG_FLUSH_SECONDS": "0.05",
            "PREDICTION_LOG_TIMEOUT_SECONDS": "0.5",
            "PREDICTION_LOG_MAX_QUEUED_RECORDS": str(bound),
            "PREDICTION_LOG_MAX_BACKOFF_SECONDS": "0.5",
        }
        body = {"inputs": test_houses[:50]}
        answered = 0
        with (
            running_server(tmp_path / "server.log", env=env) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):

            def post(request_id: str) -> None:
                nonlocal answered
                response = client.post(
                    "/api/v1/predict", json=body, headers={"X-Request-ID": request_id}
                )
                assert response.status_code == 200, response.text
                answered += 50

            started = time.monotonic()
            samples = scrape(client)
            while value(samples, "prediction_log_records_total", outcome="dropped") < 2000:
                assert time.monotonic() - started < 40, "the disk never filled"
                for _ in range(20):
                    post(f"full-{answered}")
                samples = scrape(client)
            queued = value(samples, "prediction_log_queue_records")
            assert 0 < queued <= bound
            assert value(samples, "prediction_log_failures_total", stage="spool") > 0
            assert value(samples, "prediction_log_failures_total", stage="database") > 0
            assert value(samples, "prediction_log_database_up") == 0

            resize(disk, "64m")
            # The backlog goes in first (while a batch of up to the bound is in
            # flight, a request beyond the bound is dropped: the spool failed).
            wait_for(
                lambda: (
                    value(scrape(client), "prediction_log_database_up") == 1
                    and value(scrape(client), "prediction_log_queue_records") == 0
                ),
                20,
                "the worker to write its backlog after the disk grew",
            )
            for i in range(5):
                post(f"after-{i}")

            def caught_up() -> bool:
                return bool(
                    value(scrape(client), "prediction_log_queue_records") == 0
                    and count_rows(path, request_prefix="after-") == 250
                )

            wait_for(caught_up, 20, "the worker to write again after the disk grew")
            samples = scrape(client)
            dropped = value(samples, "prediction_log_records_total", outcome="dropped")
            assert value(samples, "prediction_log_database_up") == 1
        rows = count_rows(path)
        output = server.output()
        assert rows == answered - dropped
        assert '"level": "error"' in output and "No space left on device" in output
        assert "prediction log writer failed" not in output  # no unexpected exception
    FIGURES["prediction log on a full 2 MB disk (a uvicorn worker)"] = (
        f"{answered // 50} requests of 50 houses, all answered 200; queue {queued:.0f} "
        f"(bound {bound}) while full; {dropped:.0f} dropped and counted; "
        f"{rows} records written = answered - dropped"
    )


def test_a_writer_hung_in_a_write_never_holds_more_than_twice_the_bound(
    tmp_path: Path, test_houses: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that hangs beyond every timeout: the writer cannot spool the
    excess meanwhile, so the request path drops the oldest beyond twice
    ``max_queued_records`` (counted, logged at ERROR); once the write returns
    the rest is written, and the database holds every house not dropped."""
    from regression_model.monitoring.log_store import insert_records

    bound = 50
    log = PredictionLog(
        str(tmp_path / "log.sqlite3"),
        tmp_path / "spool",
        flush_seconds=0.05,
        batch_records=20,
        max_queued_records=bound,
    )
    log.sweep_seconds = 0.2
    writing, release = threading.Event(), threading.Event()

    def hung_insert(connection: Any, records: list[Any]) -> None:
        writing.set()
        release.wait(30)
        insert_records(connection, records)

    monkeypatch.setattr("api.app.operations.log_storage.insert_records", hung_insert)
    result = ([1.0], None, model_version)
    log.record("r0", test_houses[:1], *result)
    assert writing.wait(30)
    most = 0
    for i in range(1, 400):
        log.record(f"r{i}", test_houses[i : i + 1], *result)
        most = max(most, log.in_memory)
    assert most == 2 * bound
    assert log.counts["dropped"] == 400 - 2 * bound
    release.set()
    wait_for(lambda: log.in_memory == 0 and log.counts["replayed"] > 0, 30, "the writer")
    log.close()
    rows = count_rows(tmp_path / "log.sqlite3")
    assert rows == 2 * bound
    # r0 was in flight (never dropped); the oldest queued were dropped first.
    engine = create_log_engine(str(tmp_path / "log.sqlite3"))
    with engine.connect() as connection:
        ids = sorted(int(r[0][1:]) for r in connection.execute(select(predictions.c.request_id)))
    engine.dispose()
    assert ids == [0, *range(400 - 2 * bound + 1, 400)]
