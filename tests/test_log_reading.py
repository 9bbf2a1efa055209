"""The commands that only read the prediction log (``drift``, ``performance``,
``compare``, ``market-data``) and ``log-prune`` never create, alter or crash on
it: a log that is not there (a mistyped path, an empty file, a file that is not
a log) is one line "no prediction log at PATH", exit 2, nothing created; a
SQLite log is opened read-only (its journal mode and bytes unchanged); a
malformed record is skipped and counted, never a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from regression_model import __version__, make_prediction
from regression_model.cli import main
from regression_model.monitoring.log_rows import Unreadable
from regression_model.monitoring.log_store import (
    create_log_engine,
    migrate,
    outcomes,
    predictions,
    read_log,
)

#: Each command that reads the log, with what it needs besides the log.
READERS = {
    "drift": ["--plot", "none"],
    "performance": ["--plot", "none"],
    "compare": [],
    "market-data": ["--output", "market.csv"],
}
COMMANDS = {**READERS, "log-prune": ["--older-than", "90d"]}


def _run(command: str, log: Path | str, tmp_path: Path) -> int:
    extra = [str(tmp_path / a) if a.endswith(".csv") else a for a in COMMANDS[command]]
    return main([command, "--database-url", str(log), *extra])


def _log(path: Path) -> Path:
    engine = create_log_engine(str(path))
    migrate(engine)
    engine.dispose()
    return path


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_mistyped_path_creates_nothing(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "typo" / "dir" / "log.sqlite3"
    assert _run(command, log, tmp_path) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: no prediction log at {log}: no such file (create it with "
        "`regression-model log-migrate`, or check --database-url)\n"
    )
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"not a database at all, just text\n" * 200, "the file is not a SQLite database"),
    ],
)
def test_an_empty_file_or_one_that_is_no_database_is_left_as_it_is(
    command: str, content: bytes, reason: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    log = tmp_path / "log.sqlite3"
    log.write_bytes(content)
    assert _run(command, log, tmp_path) == 2
    assert f"error: no prediction log at {log}: {reason} (" in capsys.readouterr().err
    assert log.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.sqlite3"]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_database_without_the_log_is_no_log(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    before = other.read_bytes()
    assert _run(command, other, tmp_path) == 2
    assert "it has no predictions table (create it with" in capsys.readouterr().err
    assert other.read_bytes() == before
    with sqlite3.connect(other) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    connection.close()


@pytest.mark.parametrize("command", sorted(READERS))
def test_reading_a_log_changes_nothing_in_it(command: str, tmp_path: Path) -> None:
    log = _log(tmp_path / "log.sqlite3")
    with sqlite3.connect(log) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")  # as a copy or a backup may be
    connection.close()
    digest = hashlib.sha256(log.read_bytes()).hexdigest()
    _run(command, log, tmp_path)
    assert hashlib.sha256(log.read_bytes()).hexdigest() == digest
    assert not (tmp_path / "log.sqlite3-wal").exists()


@pytest.mark.parametrize("command", sorted(READERS))
def test_a_log_that_cannot_be_written_is_read(command: str, tmp_path: Path) -> None:
    """A read-only file (a snapshot, a read-only mount: SQLite refuses a
    write either way), once refused by the WAL pragma."""
    log = _log(tmp_path / "log.sqlite3")
    with sqlite3.connect(log) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    engine = create_log_engine(str(log), access="read")
    with engine.connect() as connection, pytest.raises(Exception, match="readonly"):
        connection.exec_driver_sql("DELETE FROM predictions")
    engine.dispose()
    code = _run(command, log, tmp_path)
    assert code in (0, 1) if command != "compare" else code == 1  # compare: no shadow prices


def test_log_prune_prunes_an_existing_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(tmp_path / "log.sqlite3")
    assert _run("log-prune", log, tmp_path) == 0
    assert "deleted 0 records" in capsys.readouterr().out


#: The malformed records of the log made by ``corrupt_log``, as SQLite keeps them.
CORRUPTIONS = (
    "UPDATE predictions SET logged_at = 'garbage-time' WHERE \"row\" = 1",
    "UPDATE predictions SET price = 'abc' WHERE \"row\" = 2",
    "UPDATE predictions SET inputs = '{not json' WHERE \"row\" = 3",
    "UPDATE outcomes SET sale_date = 'notadate' WHERE \"row\" = 4",
)


@pytest.fixture
def corrupt_log(tmp_path: Path, test_data: pd.DataFrame) -> Path:
    """30 logged houses of one request, outcomes for its rows 0 to 5 and (by
    its Id: the outcome join reads every logged house's Id) row 6; then
    row 1's time, row 2's price, row 3's inputs and row 4's sale date made
    unreadable."""
    log = _log(tmp_path / "log.sqlite3")
    frame = test_data.head(30)
    houses: list[dict[str, Any]] = (
        frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    )  # type: ignore[assignment]
    prices = make_prediction(input_data=houses)["predictions"]
    assert None not in prices
    now = datetime.now(UTC)
    engine = create_log_engine(str(log))
    with engine.begin() as connection:
        connection.execute(
            predictions.insert(),
            [
                {"log_id": "a" * 32, "row": row, "request_id": "r1", "logged_at": now,
                 "model_version": __version__, "inputs": house, "price": price}
                for row, (house, price) in enumerate(zip(houses, prices, strict=True))
            ],
        )  # fmt: skip
        connection.execute(
            outcomes.insert(),
            [
                {"reference": f"request:r1:{row}", "request_id": "r1", "row": row,
                 "house_key": None, "sale_price": 150_000.0, "sale_date": date.today(),
                 "received_at": now}
                for row in range(6)
            ]
            + [
                {"reference": f"key:{houses[6]['Id']}", "request_id": None, "row": None,
                 "house_key": str(houses[6]["Id"]),
                 "sale_price": 150_000.0, "sale_date": date.today(), "received_at": now}
            ],
        )  # fmt: skip
    engine.dispose()
    with sqlite3.connect(log) as connection:
        for statement in CORRUPTIONS:
            connection.execute(statement)
    connection.close()
    return log


def test_read_log_skips_and_counts_the_unreadable_records(corrupt_log: Path) -> None:
    engine = create_log_engine(str(corrupt_log), access="read")
    skipped = Unreadable()
    rows = [
        row
        for chunk in read_log(engine, columns=("logged_at", "inputs", "price"), unreadable=skipped)
        for row in chunk
    ]
    engine.dispose()
    assert len(rows) == 27
    assert skipped.records == 3


def test_drift_skips_and_counts_the_unreadable_records(
    corrupt_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Drift reads the houses and prices (row 1's time is not read)."""
    args = ["drift", "--database-url", str(corrupt_log), "--plot", "none", "--json", "-"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "unreadable records skipped: 2 (" in out
    report = json.loads(out[out.index("\n{") :])
    assert report["unreadable"] == 2
    assert report["houses"] + report["rejected"] == 28


def test_performance_skips_and_counts_the_unreadable_records(
    corrupt_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["performance", "--database-url", str(corrupt_log), "--plot", "none", "--json", "-"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "unreadable records skipped: 4 (" in out
    report = json.loads(out[out.index("\n{") :])
    assert report["unreadable"] == 4  # rows 1, 2, 3 and row 4's outcome
    assert (report["outcomes"], report["matched"]) == (6, 3)  # rows 0, 5 and 6


def test_market_data_skips_and_counts_the_unreadable_records(
    corrupt_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "market.csv"
    assert main(["market-data", "--database-url", str(corrupt_log), "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote 3 sold house(s) to")
    assert "from 7 outcome(s): 3 match no priced house of the log" in out
    assert "unreadable records skipped: 4 (" in out
    assert len(output.read_text().splitlines()) == 4


def test_a_wal_log_in_a_directory_that_cannot_be_written_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only mount (os.access says so, even to root): SQLite cannot make
    the -shm file a WAL-mode log needs, so the log is read as immutable."""
    log = _log(tmp_path / "log.sqlite3")  # the writers' WAL mode
    assert log.read_bytes()[18:20] == b"\x02\x02"
    access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != tmp_path and access(path, mode)
    )
    engine = create_log_engine(str(log), access="read")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM predictions").scalar() == 0
    engine.dispose()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "log.sqlite3",
        "log.sqlite3.migrate-lock",
    ]
    assert main(["drift", "--database-url", str(log), "--plot", "none"]) == 0


def test_log_prune_on_a_log_that_cannot_be_written_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only log (here: opened read-only, as a read-only mount opens it)."""
    log = _log(tmp_path / "log.sqlite3")
    opened = create_log_engine

    def read_only(url: str, **options: object) -> object:
        return opened(url, access="read")

    monkeypatch.setattr("regression_model.monitoring.log_store.create_log_engine", read_only)
    assert _run("log-prune", log, tmp_path) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: cannot prune the prediction log sqlite:///{log}: (sqlite3.OperationalError) "
        "attempt to write a readonly database\n"
    )
