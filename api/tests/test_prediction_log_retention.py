"""The prediction log's retention and its schema, in SQLite and PostgreSQL:
old records are deleted in bounded batches (by the writer, with
``retention_days``, and by ``regression-model log-prune``), recent ones are
kept; each migration (``ignored_fields``, ``price_ranges``) upgrades a log
that already holds records.

PostgreSQL tests use ``TEST_DATABASE_URL`` (skipped without it, failing
with ``REQUIRE_POSTGRES=1``), as in test_prediction_log.py.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from prometheus_client import REGISTRY
from sqlalchemy import inspect, select, text

from api.app.operations.log_records import house_json, records_of
from api.app.operations.log_writer import PredictionLog
from api.tests.test_prediction_log import postgres_url  # noqa: F401  (a fixture)
from regression_model import PriceRange
from regression_model import __version__ as model_version
from regression_model.cli import main as cli_main
from regression_model.monitoring.log_store import (
    MIGRATIONS_DIR,
    count_log,
    create_log_engine,
    insert_records,
    migrate,
    outcomes,
    predictions,
    prune_log,
    read_log,
    shadow_prices,
)

DAY = 86400.0


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "log.sqlite3")
    return str(request.getfixturevalue("postgres_url"))


def _records(prefix: str, n: int, age_days: float, houses: list[Any]) -> list[dict[str, Any]]:
    """``n`` requests of two houses each, logged ``age_days`` ago."""
    moment = time.time() - age_days * DAY
    return [
        record
        for i in range(n)
        for record in records_of(
            (
                f"{prefix}-{i}",
                moment + i * 0.001,
                [house_json(house) for house in houses[:2]],
                [1.0, 2.0],
                None,
                model_version,
                None,
            )
        )
    ]


def _fill(url: str, houses: list[Any], *, old: int, recent: int) -> None:
    engine = create_log_engine(url)
    try:
        migrate(engine)
        with engine.begin() as connection:
            insert_records(connection, _records("old", old, 100, houses))
            insert_records(connection, _records("recent", recent, 1, houses))
    finally:
        engine.dispose()


def _request_ids(url: str) -> set[str]:
    engine = create_log_engine(url)
    try:
        with engine.connect() as connection:
            return {row[0] for row in connection.execute(select(predictions.c.request_id))}
    finally:
        engine.dispose()


def test_prune_deletes_the_old_records_in_bounded_batches(
    log_url: str, test_houses: list[Any]
) -> None:
    _fill(log_url, test_houses, old=30, recent=5)  # 60 old records, 10 recent
    engine = create_log_engine(log_url)
    before = datetime.now(UTC) - timedelta(days=90)
    try:
        assert count_log(engine, before=before) == 60
        # Two transactions of 7: 14 deleted, the oldest first.
        assert prune_log(engine, before, batch_rows=7, max_batches=2) == 14
        assert count_log(engine, before=before) == 46
        assert prune_log(engine, before, batch_rows=7) == 46  # the rest, 7 at a time
        assert prune_log(engine, before, batch_rows=7) == 0
        assert count_log(engine) == 10
    finally:
        engine.dispose()
    assert _request_ids(log_url) == {f"recent-{i}" for i in range(5)}


def test_the_writer_applies_the_retention_and_goes_on_writing(
    log_url: str, tmp_path: Path, test_houses: list[Any]
) -> None:
    """With ``retention_days``, the writer deletes older records (a few
    batches per round, here of 10) and keeps writing new ones meanwhile."""
    _fill(log_url, test_houses, old=100, recent=5)  # 200 old records
    pruned_before = REGISTRY.get_sample_value(
        "prediction_log_records_total", {"outcome": "pruned"}
    )
    log = PredictionLog(
        log_url,
        tmp_path / "spool",
        flush_seconds=0.05,
        retention_days=90,
        prune_batch_rows=10,
    )
    try:
        for i in range(20):
            log.record(f"new-{i}", test_houses[:2], [1.0, 2.0], None, model_version)
        deadline = time.monotonic() + 30
        while log.counts["pruned"] < 200 or log.counts["written"] < 40:
            assert time.monotonic() < deadline, log.counts
            time.sleep(0.05)
    finally:
        log.close()
    assert log.counts["pruned"] == 200
    after = REGISTRY.get_sample_value("prediction_log_records_total", {"outcome": "pruned"})
    assert (after or 0) - (pruned_before or 0) == 200
    assert _request_ids(log_url) == {f"recent-{i}" for i in range(5)} | {
        f"new-{i}" for i in range(20)
    }


def test_a_failing_retention_is_counted_logged_and_retried(
    tmp_path: Path, test_houses: list[Any], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A delete that fails (the database refuses it: here a trigger) is an
    ERROR and a count in prediction_log_failures_total{stage="retention"};
    the writer goes on writing, and retries the delete with backoff until
    it works."""
    url = str(tmp_path / "log.sqlite3")
    _fill(url, test_houses, old=10, recent=0)
    engine = create_log_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER no_deletes BEFORE DELETE ON predictions "
                "BEGIN SELECT RAISE(ABORT, 'deletes refused'); END"
            )
        )
    failures_before = REGISTRY.get_sample_value(
        "prediction_log_failures_total", {"stage": "retention"}
    )
    caplog.set_level(logging.ERROR, logger="api.app.operations.log_storage")
    log = PredictionLog(
        url,
        tmp_path / "spool",
        flush_seconds=0.05,
        retry_seconds=0.05,
        max_backoff_seconds=0.2,
        retention_days=90,
    )
    try:
        log.record("new", test_houses[:2], [1.0, 2.0], None, model_version)
        deadline = time.monotonic() + 30
        while log.counts["failed_retention"] < 2 or log.counts["written"] < 2:
            assert time.monotonic() < deadline, log.counts
            time.sleep(0.05)
        with engine.begin() as connection:
            connection.execute(text("DROP TRIGGER no_deletes"))
        while log.counts["pruned"] < 20:
            assert time.monotonic() < deadline, log.counts
            time.sleep(0.05)
    finally:
        log.close()
        engine.dispose()
    failures = REGISTRY.get_sample_value("prediction_log_failures_total", {"stage": "retention"})
    assert (failures or 0) - (failures_before or 0) == log.counts["failed_retention"] >= 2
    assert any("retention failed" in r.getMessage() for r in caplog.records)
    assert _request_ids(url) == {"new"}


def test_log_prune_command(
    log_url: str, test_houses: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(log_url, test_houses, old=6, recent=4)
    assert cli_main(["log-prune", "--database-url", log_url, "--older-than", "90d"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("deleted 12 records logged before ")
    assert _request_ids(log_url) == {f"recent-{i}" for i in range(4)}
    # An ISO time works as well: everything before tomorrow.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert cli_main(["log-prune", "--database-url", log_url, "--older-than", tomorrow]) == 0
    assert capsys.readouterr().out.startswith("deleted 8 records")
    assert _request_ids(log_url) == set()


def test_log_prune_refuses_a_bad_span(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["log-prune", "--database-url", "x.sqlite3", "--older-than", "soon"])
    assert exit_info.value.code == 2
    assert "neither an ISO 8601 time nor a span" in capsys.readouterr().err


#: What each migration added, and what a record logged after it holds there.
_RANGES: list[PriceRange] = [{"coverage": 0.8, "low": 151234.56789, "high": 201234.5}]
_MIGRATIONS = {
    "0002": ("ignored_fields", ["Colour"]),
    "0003": ("price_ranges", _RANGES),
}
#: The newest revision (0004 adds tables, not a column: tested below).
_HEAD = "0004"


@pytest.mark.parametrize("revision", sorted(_MIGRATIONS))
def test_each_migration_upgrades_a_log_with_records(
    revision: str, log_url: str, test_houses: list[Any]
) -> None:
    """A log at the revision before ``revision``, holding a record: after the
    upgrade to the newest, the old record has nothing in the column
    ``revision`` added, and a new one keeps its value there (read back by
    the log's reader too)."""
    column, value = _MIGRATIONS[revision]
    engine = create_log_engine(log_url)
    try:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, f"{int(revision) - 1:04d}")
        with engine.begin() as connection:
            assert column not in {
                c["name"] for c in inspect(connection).get_columns("predictions")
            }
            connection.execute(
                text(
                    'INSERT INTO predictions (log_id, "row", request_id, logged_at, '
                    "model_version, inputs, price, errors) VALUES ('a', 0, 'before', "
                    "'2026-01-01 00:00:00+00:00', '0.1.0', '{\"LotArea\": 1}', 1.0, NULL)"
                )
            )
        migrate(engine)
        house = {**test_houses[0], "Colour": "blue"}
        records = records_of(
            ("after", time.time(), [house_json(house)], [2.0], None, model_version, [_RANGES])
        )
        with engine.begin() as connection:
            insert_records(connection, records)
        with engine.connect() as connection:
            rows = {
                row.request_id: row
                for row in connection.execute(
                    select(predictions.c.request_id, predictions.c[column])
                )
            }
            version = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        read_back = [
            row for chunk in read_log(engine, columns=("request_id", column)) for row in chunk
        ]
    finally:
        engine.dispose()
    assert version == [(_HEAD,)]
    assert getattr(rows["before"], column) is None
    assert getattr(rows["after"], column) == value
    assert sorted(read_back) == [("after", value), ("before", None)]


def test_the_outcome_and_shadow_tables_come_with_an_upgrade_keeping_the_log(
    log_url: str,
) -> None:
    """0004 adds the outcomes and shadow_prices tables to a log at 0003 that
    holds records; the records stay, and both tables take rows."""
    engine = create_log_engine(log_url)
    try:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0003")
            connection.execute(
                text(
                    'INSERT INTO predictions (log_id, "row", request_id, logged_at, '
                    "model_version, inputs, price, errors) VALUES ('a', 0, 'kept', "
                    "'2026-01-01 00:00:00+00:00', '0.2.0', '{\"LotArea\": 1}', 1.0, NULL)"
                )
            )
            assert not {"outcomes", "shadow_prices"} & set(inspect(connection).get_table_names())
        migrate(engine)
        with engine.begin() as connection:
            assert {"outcomes", "shadow_prices"} <= set(inspect(connection).get_table_names())
            connection.execute(
                outcomes.insert(),
                [
                    {
                        "reference": "key:1461",
                        "house_key": "1461",
                        "sale_price": 130_000.0,
                        "sale_date": date(2026, 11, 30),
                        "received_at": datetime(2026, 12, 1, tzinfo=UTC),
                    }
                ],
            )
            connection.execute(
                shadow_prices.insert(),
                [
                    {
                        "log_id": "a",
                        "row": 0,
                        "challenger_version": "0.3.1",
                        "logged_at": datetime(2026, 1, 1, tzinfo=UTC),
                        "price": 2.0,
                    }
                ],
            )
            kept = connection.execute(select(predictions.c.request_id)).scalars().all()
            stored = connection.execute(select(outcomes.c.sale_price)).scalars().all()
    finally:
        engine.dispose()
    assert kept == ["kept"]
    assert stored == [130_000.0]


def test_a_log_migrated_by_a_newer_release_is_left_as_it_is_and_still_written(
    log_url: str, test_houses: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """After a rollback the log may be at a migration this release does not
    have: migrating leaves it alone (says so), and records are still written."""
    engine = create_log_engine(log_url)
    try:
        migrate(engine)
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with caplog.at_level(logging.WARNING, logger="regression_model.monitoring.log_store"):
            migrate(engine)
        records = records_of(
            (
                "rolled-back",
                time.time(),
                [house_json(test_houses[0])],
                [2.0],
                None,
                model_version,
                None,
            )
        )
        with engine.begin() as connection:
            insert_records(connection, records)
            version = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        read_back = [row for chunk in read_log(engine, columns=("request_id",)) for row in chunk]
    finally:
        engine.dispose()
    assert version == [("9999",)]
    assert read_back == [("rolled-back",)]
    assert "at migration 9999, newer than this release's" in caplog.text
