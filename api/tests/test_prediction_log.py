"""The prediction log: every house priced or rejected is recorded, in SQLite
and in PostgreSQL, with the model's fields intact (under the model's names),
the names of the fields it ignored and the price ranges answered; nothing is
lost when the database is locked or down, nothing is written twice, and
SIGTERM flushes.

PostgreSQL tests use the server ``.ci/run`` starts (``TEST_DATABASE_URL``;
each test gets its own database) and, for the outage, a server of their own
that they stop and restart. They skip without PostgreSQL, and fail instead
with ``REQUIRE_POSTGRES=1`` (as in CI).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from api.app.operations.log_records import (
    LOGGED_VALUE_LENGTH,
    house_json,
    queued_json,
    records_of,
)
from api.app.operations.log_spool import spool_line
from api.app.operations.log_writer import PredictionLog
from api.tests.conftest import FIGURES
from api.tests.helpers import running_server
from api.tests.postgres import Cluster, binaries
from api.tests.test_metrics import scrape, value
from regression_model import PriceRange, get_config
from regression_model import __version__ as model_version
from regression_model.monitoring.log_store import (
    create_log_engine,
    database_url,
    insert_records,
    migrate,
    predictions,
)
from regression_model.scoring.schema import model_fields

REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"


def _no_postgres(reason: str) -> None:
    if REQUIRE_POSTGRES:
        pytest.fail(f"{reason} (REQUIRE_POSTGRES=1)")
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the server named by TEST_DATABASE_URL."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        _no_postgres("TEST_DATABASE_URL is not set (.ci/run starts a server)")
    assert base is not None
    name = f"log_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(database_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def own_postgres() -> Iterator[Cluster]:
    """A PostgreSQL server of this test's own (it will be stopped and restarted)."""
    if binaries() is None:
        _no_postgres("PostgreSQL is not installed (Debian package postgresql)")
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="pg-outage-", dir="/tmp")))
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def logged_rows(url: str) -> list[dict[str, Any]]:
    engine = create_log_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(select(predictions))]
    finally:
        engine.dispose()


#: Every fourth request asks for one coverage's ranges only.
ONE_COVERAGE = 0.9


def _send(url: str, bodies: list[dict[str, Any]]) -> list[tuple[str, Any, dict[str, Any]]]:
    """POST each body; (request id, houses sent, answer) per request."""
    sent = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i, body in enumerate(bodies):
            params = {"coverage": ONE_COVERAGE} if i % 4 == 1 else {}
            response = client.post("/api/v1/predict", json=body, params=params)
            assert response.status_code in (200, 422), response.text
            sent.append((response.headers["X-Request-ID"], body["inputs"], response.json()))
    return sent


def _requests(test_houses: list[dict[str, Any]], n: int, k: int) -> list[dict[str, Any]]:
    """n requests of k houses; every fifth has a house that is rejected; every
    third a house with fields the model does not know, and one that uses the
    course's spelling of a field (an alias)."""
    bodies = []
    for i in range(n):
        houses = [dict(test_houses[(i * k + j) % len(test_houses)]) for j in range(k)]
        if i % 5 == 0:
            houses[-1] = {**houses[-1], "OverallQual": 11}
        if i % 3 == 0:
            houses[0] = {**houses[0], "Colour": "blue", "SalePrice": 1, "x" * 500: 0}
            houses[0]["ThreeSsnPortch"] = houses[0].pop("3SsnPorch")
        bodies.append({"inputs": houses})
    bodies.append({"inputs": [{"GrLivArea": -5}, [42]]})  # type: ignore[list-item]  # nothing priced: 422, still logged
    return bodies


def check_every_field(rows: list[dict[str, Any]], sent: list[Any], started: float) -> None:
    by_key = {(row["request_id"], row["row"]): row for row in rows}
    expected = sum(len(houses) for _, houses, _ in sent)
    assert len(rows) == expected == len(by_key)  # N x k records, none twice
    coverages_logged = set()
    for position, (request_id, houses, answer) in enumerate(sent):
        log_ids = {by_key[(request_id, i)]["log_id"] for i in range(len(houses))}
        assert len(log_ids) == 1  # one id per request
        for i, house in enumerate(houses):
            row = by_key[(request_id, i)]
            if isinstance(house, dict):
                # The model's fields only, under its names (ThreeSsnPortch and
                # 3SsnPorch are both ThreeSsnPorch), and the id.
                fields, ignored = model_fields(house)
                assert row["inputs"] == fields
                assert "ThreeSsnPortch" not in row["inputs"] and "3SsnPorch" not in row["inputs"]
                assert "Id" not in house or row["inputs"]["Id"] == house["Id"]
                assert row["ignored_fields"] == ([name[:64] for name in ignored] or None)
            else:  # not a house at all: kept as sent
                assert row["inputs"] == house
                assert row["ignored_fields"] is None
            assert row["price"] == answer["predictions"][i]  # the same float, to the bit
            # The ranges as answered, every float to the bit; a priced house has
            # some. (A 422, nothing priced, may answer none at all.)
            assert row["price_ranges"] == (answer.get("intervals") or [None] * len(houses))[i]
            assert (row["price"] is None) == (row["price_ranges"] is None)
            if row["price_ranges"] is not None:
                coverages = tuple(r["coverage"] for r in row["price_ranges"])
                assert position % 4 != 1 or coverages == (ONE_COVERAGE,)  # those asked only
                coverages_logged.add(coverages)
            errors = [
                {"field": e["field"], "message": e["message"]}
                for e in answer["errors"] or []
                if e["row"] == i
            ]
            assert row["errors"] == (errors or None)
            assert row["model_version"] == model_version
            logged_at = row["logged_at"].replace(tzinfo=None).timestamp() - time.timezone
            assert started - 1 <= logged_at <= time.time() + 1
    every = tuple(get_config().model.intervals.coverages)
    assert coverages_logged == {every, (ONE_COVERAGE,)}  # the model's coverages, or the one asked


@pytest.mark.server
@pytest.mark.timeout(180)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_n_requests_of_k_houses_give_n_times_k_records_with_every_field_intact(
    database: str, request: pytest.FixtureRequest, tmp_path: Path, test_houses: list[Any]
) -> None:
    if database == "sqlite":
        url = str(tmp_path / "predictions.sqlite3")
        env = {"PREDICTION_LOG_PATH": url}
    else:
        url = request.getfixturevalue("postgres_url")
        env = {"DATABASE_URL": url, "PREDICTION_LOG_SPOOL_DIR": str(tmp_path / "spool")}
    bodies = _requests(test_houses, n=30, k=4)
    started = time.time()
    with running_server(tmp_path / "server.log", env=env) as server:
        sent = _send(server.url, bodies)
    check_every_field(logged_rows(url), sent, started)


@pytest.mark.server
@pytest.mark.timeout(120)
def test_sigterm_writes_what_is_queued(tmp_path: Path, test_houses: list[Any]) -> None:
    """With a flush interval longer than the test, only the shutdown writes
    (151 houses in one transaction: SQLite inserts them 64, 64, 16, 4, 2 and 1 a statement)."""
    url = str(tmp_path / "predictions.sqlite3")
    env = {"PREDICTION_LOG_PATH": url, "PREDICTION_LOG_FLUSH_SECONDS": "60"}
    started = time.time()
    with running_server(tmp_path / "server.log", env=env) as server:
        sent = _send(server.url, _requests(test_houses, n=50, k=3))
        time.sleep(0.5)
        engine = create_log_engine(url)
        with engine.connect() as connection:
            before = connection.execute(select(func.count()).select_from(predictions)).scalar()
        engine.dispose()
    assert before == 0  # nothing was written before SIGTERM...
    check_every_field(logged_rows(url), sent, started)  # ...and everything after it


def _wait_for(condition: Any, timeout: float = 30.0, log: PredictionLog | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out ({log.counts if log else ''})")
        time.sleep(0.05)


def test_a_locked_database_spools_then_everything_is_written_once(
    tmp_path: Path, test_houses: list[Any]
) -> None:
    """SQLite locked by another writer (a slow database): records wait in the
    spool file and reach the database when the lock goes, once each."""
    path = tmp_path / "log.sqlite3"
    log = PredictionLog(str(path), tmp_path / "spool", flush_seconds=0.05, timeout=0.2)
    log.retry_seconds = 0.2
    ranges: list[list[PriceRange] | None] = [
        [{"coverage": 0.9, "low": 99.25, "high": 150.0000001}],
        None,
    ]
    result = ([123.0, None], [{"row": 1, "field": "LotArea", "message": "bad"}], model_version)
    log.record("before", test_houses[:2], *result, ranges=ranges)
    _wait_for(lambda: log.counts["written"] == 2)
    blocker = sqlite3.connect(path, timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    for i in range(50):
        log.record(f"during-{i}", test_houses[:2], *result, ranges=ranges)
    _wait_for(lambda: log.counts["spooled"] == 100, log=log)
    assert list((tmp_path / "spool").glob("spool-*.jsonl"))
    blocker.rollback()
    blocker.close()
    log.record("after", test_houses[:2], *result, ranges=ranges)
    # "after" is written, or spooled and replayed if it came before the retry.
    counts = log.counts
    _wait_for(lambda: counts["written"] + counts["replayed"] == 104, log=log)
    assert counts["replayed"] == counts["spooled"] >= 100
    log.close()
    rows = logged_rows(str(path))
    assert len(rows) == 104 == len({(r["request_id"], r["row"]) for r in rows})
    assert all(r["price_ranges"] == ranges[r["row"]] for r in rows)  # through the spool too
    assert not list((tmp_path / "spool").glob("spool-*.jsonl"))


def test_a_database_slower_than_the_traffic_spools_the_excess_memory_stays_bounded(
    tmp_path: Path, test_houses: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one write is held up, 99 requests queue behind it (up to twice
    ``max_queued_records``, where the request path would start dropping: see
    test_prediction_log_faults.py): the writer then keeps at most
    ``max_queued_records`` houses in memory and spools the oldest batches
    (never builds the records of the whole backlog); the spool is replayed
    later, and every house is in the database exactly once."""
    path = tmp_path / "log.sqlite3"
    log = PredictionLog(
        str(path), tmp_path / "spool", flush_seconds=0.05, batch_records=20, max_queued_records=50
    )
    log.sweep_seconds = 0.2
    writing, release = threading.Event(), threading.Event()
    batch_sizes: list[int] = []

    def slow_insert(connection: Any, records: list[Any]) -> None:
        batch_sizes.append(len(records))
        writing.set()
        release.wait(30)  # the database is slow once
        insert_records(connection, records)

    monkeypatch.setattr("api.app.operations.log_storage.insert_records", slow_insert)
    result = ([1.0], None, model_version)
    log.record("r0", test_houses[:1], *result)
    assert writing.wait(30)
    for i in range(1, 100):
        log.record(f"r{i}", test_houses[i : i + 1], *result)
    assert log.in_memory == 100
    release.set()
    _wait_for(lambda: log.counts["written"] + log.counts["replayed"] == 100, log=log)
    log.close()
    # 99 queued: batches of 20 spooled until no more than 50 remained.
    assert log.counts["overflowed"] == log.counts["spooled"] == 60
    assert log.counts["replayed"] == 60 and log.counts["written"] == 40
    assert log.counts["dropped"] == 0
    assert max(batch_sizes) <= 20
    rows = logged_rows(str(path))
    assert sorted(int(r["request_id"][1:]) for r in rows) == list(range(100))
    assert all(r["inputs"] == model_fields(test_houses[int(r["request_id"][1:])])[0] for r in rows)
    assert not list((tmp_path / "spool").glob("spool-*.jsonl"))


def test_a_record_weighs_kilobytes_whatever_the_client_sent(test_houses: list[Any]) -> None:
    """Megabytes in one value (a label, the id), a long array, a huge
    integer, or a house that is no object: kept cut, so that the readers of
    the log (drift, performance), which read it in chunks of rows, hold a
    bounded number of bytes."""
    huge = "x" * 4_000_000
    houses = [
        {**test_houses[0], "Neighborhood": huge, "Id": huge},
        {**test_houses[0], "GrLivArea": list(range(100_000)), "LotArea": 10**400},
        {**test_houses[0], "OverallQual": {"a": huge}},
        huge,
        [huge],
    ]
    entry = ("r", time.time(), [house_json(h) for h in houses], [None] * 5, None, "0", None)
    records = records_of(entry)
    sizes = [len(record["inputs"]) for record in records]
    assert max(sizes) < 20_000, sizes
    first = json.loads(records[0]["inputs"])
    assert first["Neighborhood"] == first["Id"] == "x" * LOGGED_VALUE_LENGTH
    assert first["GrLivArea"] == test_houses[0]["GrLivArea"]  # the rest as sent
    second = json.loads(records[1]["inputs"])
    assert second["GrLivArea"].startswith("[0,1,2,")
    assert second["LotArea"] == "Infinity"
    assert json.loads(records[3]["inputs"]) == "x" * LOGGED_VALUE_LENGTH
    # The request path queues such a house already reduced, to the same record.
    made_up = {**test_houses[0], **{f"k{i}": i for i in range(300_000)}}
    for house in [*houses, made_up]:
        queued = queued_json(house)
        assert len(queued) < 20_000
        entry = ("r", 0.0, [queued], [None], None, "0", None)
        (reduced,) = records_of(entry, "id")
        (whole,) = records_of(("r", 0.0, [house_json(house)], [None], None, "0", None), "id")
        assert reduced == whole


def test_replaying_a_spool_file_twice_writes_nothing_twice(
    tmp_path: Path, test_houses: list[Any]
) -> None:
    """A batch committed whose acknowledgement was lost is spooled as well: on
    replay its records are recognised by their key. A file a dead worker left
    is replayed by the next writer."""
    path, spool = tmp_path / "log.sqlite3", tmp_path / "spool"
    records = [
        record
        for i in range(10)
        for record in records_of(
            (
                f"r{i}",
                time.time(),
                [house_json(h) for h in test_houses[:3]],
                [1.0, 2.0, 3.0],
                None,
                model_version,
                None,
            )
        )
    ]
    engine = create_log_engine(str(path))
    migrate(engine)
    with engine.begin() as connection:
        insert_records(connection, records[:15])  # committed before the "crash"
    engine.dispose()
    spool.mkdir()
    (spool / "spool-99999-dead.jsonl").write_bytes(
        b"".join(spool_line(r) + b"\n" for r in records)  # all 30, the first 15 again
    )
    log = PredictionLog(str(path), spool, flush_seconds=0.05)
    log.start()
    _wait_for(lambda: log.counts["replayed"] == 30)
    log.close()
    rows = logged_rows(str(path))
    assert len(rows) == 30 == len({(r["log_id"], r["row"]) for r in rows})
    assert not list(spool.glob("spool-*.jsonl"))


def test_a_spool_file_from_before_the_ranges_replays_with_null_ranges(
    tmp_path: Path, test_houses: list[Any]
) -> None:
    """A worker of the previous release spooled lines without ``price_ranges``
    (and a current one lines with them): both replay into the migrated log,
    the old ones with null ranges."""
    path, spool = tmp_path / "log.sqlite3", tmp_path / "spool"
    ranges: list[list[PriceRange] | None] = [[{"coverage": 0.8, "low": 1.5, "high": 2.5}]]
    old, new = (
        records_of(
            (name, time.time(), [house_json(test_houses[0])], [2.0], None, model_version, ranges)
        )[0]
        for name in ("old", "new")
    )
    del old["price_ranges"]
    spool.mkdir()
    (spool / "spool-99999-dead.jsonl").write_bytes(
        spool_line(old) + b"\n" + spool_line(new) + b"\n"
    )
    log = PredictionLog(str(path), spool, flush_seconds=0.05)
    log.start()
    _wait_for(lambda: log.counts["replayed"] == 2, log=log)
    log.close()
    assert {r["request_id"]: r["price_ranges"] for r in logged_rows(str(path))} == {
        "old": None,
        "new": ranges[0],
    }


def test_a_record_postgresql_refuses_is_kept_aside_and_the_rest_written(
    postgres_url: str, tmp_path: Path, test_houses: list[Any]
) -> None:
    """PostgreSQL cannot store a NUL character in JSON text: that house's record
    goes to an ``unwritable`` file (logged, counted); the batch's others are written."""
    log = PredictionLog(postgres_url, tmp_path / "spool", flush_seconds=0.05)
    bad = {**test_houses[1], "Neighborhood": "NAmes\x00"}
    log.record("mixed", [test_houses[0], bad, test_houses[2]], [1.0, 2.0, 3.0], None, "0.1.0")
    _wait_for(lambda: log.counts["written"] + log.counts["unwritable"] == 3)
    log.close()
    assert log.counts["unwritable"] == 1
    assert sorted(r["row"] for r in logged_rows(postgres_url)) == [0, 2]
    kept = (tmp_path / "spool").glob("unwritable-*.jsonl")
    lines = [json.loads(line) for file in kept for line in file.read_text().splitlines()]
    assert [(r["request_id"], r["row"]) for r in lines] == [("mixed", 1)]


@pytest.mark.server
@pytest.mark.load
@pytest.mark.timeout(240)
def test_postgresql_stopped_during_load_loses_nothing_and_writes_nothing_twice(
    own_postgres: Cluster, tmp_path: Path, test_houses: list[Any]
) -> None:
    """Two workers under load from 4 connections; PostgreSQL is stopped (fast
    shutdown: every connection is cut) for 4 seconds in the middle. Every
    request still succeeds; after it returns, every house of every request is
    in the table exactly once, and the spool files are gone."""
    url = own_postgres.create_database()
    spool = tmp_path / "spool"
    env = {
        "DATABASE_URL": url,
        "PREDICTION_LOG_SPOOL_DIR": str(spool),
        "PREDICTION_LOG_TIMEOUT_SECONDS": "2",
    }
    bodies = [{"inputs": [test_houses[i % 1459], test_houses[(i + 7) % 1459]]} for i in range(4)]
    answered: list[tuple[str, int]] = []
    failures: list[str] = []
    latencies: list[float] = []
    lock = threading.Lock()
    stop_load = threading.Event()
    with running_server(tmp_path / "server.log", workers=2, env=env) as server:

        def load(position: int) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while not stop_load.is_set():
                    began = time.monotonic()
                    try:
                        response = client.post("/api/v1/predict", json=bodies[position])
                    except httpx.TransportError as exc:
                        with lock:
                            failures.append(repr(exc))
                        continue
                    with lock:
                        latencies.append(time.monotonic() - began)
                        if response.status_code == 200:
                            answered.append((response.headers["X-Request-ID"], 2))
                        else:
                            failures.append(f"{response.status_code} {response.text[:200]}")

        threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(2)
            own_postgres.stop("fast")
            own_postgres.wait_stopped()
            with lock:
                answered_at_stop = len(answered)
            time.sleep(4)
            with lock:
                answered_during_outage = len(answered) - answered_at_stop
            own_postgres.start()
            time.sleep(3)
        finally:
            stop_load.set()
            for thread in threads:
                thread.join(60)
        expected = sum(houses for _, houses in answered)

        def all_written() -> bool:
            engine = create_log_engine(url)
            try:
                with engine.connect() as connection:
                    query = select(func.count()).select_from(predictions)
                    return bool(connection.execute(query).scalar() == expected)
            finally:
                engine.dispose()

        _wait_for(all_written, timeout=60)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            samples = scrape(client)
    rows = logged_rows(url)
    keys = {(r["request_id"], r["row"]) for r in rows}
    spooled = value(samples, "prediction_log_records_total", outcome="spooled")
    replayed = value(samples, "prediction_log_records_total", outcome="replayed")
    FIGURES["prediction log across a PostgreSQL outage"] = (
        f"{len(answered)} requests answered 200 ({answered_during_outage} during the 4 s "
        f"outage), 0 failed; {expected} records expected, {len(rows)} written, "
        f"{len(rows) - len(keys)} twice; {spooled:.0f} spooled and {replayed:.0f} replayed; "
        f"max latency {max(latencies) * 1000:.0f} ms"
    )
    assert failures == []
    assert answered_during_outage > 20
    assert len(rows) == expected == len(keys)
    assert keys == {(request_id, row) for request_id, _ in answered for row in (0, 1)}
    assert spooled > 0 and replayed == spooled
    assert not list(spool.glob("spool-*"))
