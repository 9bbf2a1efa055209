"""The prediction log's table, its database connection and its migrations.

One row per house the API priced or rejected: which request (``request_id``,
as returned in ``X-Request-ID``) and which house of it (``row``), when, which
model version, the house's model fields (``inputs``: its inputs under the
model's names, and its id), the names of the fields it sent that the model
ignored (``ignored_fields``), and the price with its ranges
(``price_ranges``: ``[{"coverage", "low", "high"}]`` at the coverages the
response gave) or the errors.
``(log_id, row)`` is the primary key: ``log_id`` is made once per request by
the writer, so writing a record again (after an outage, from the spool file)
is recognised and skipped — nothing is written twice.

The schema is created and migrated by Alembic (``migrations/``), under a lock
(PostgreSQL: an advisory lock; SQLite: a lock file), so several workers
starting at once migrate it once. ``regression-model log-migrate`` does the
same by hand. :func:`prune_log` deletes old records in bounded batches
(retention; ``regression-model log-prune``).

Any SQLAlchemy URL works. ``postgres://`` and ``postgresql://`` mean
PostgreSQL through psycopg 3; a plain file path means a SQLite file.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic_core import from_json, to_json
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Date,
    DateTime,
    Double,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB

# Re-exported: how the log is opened lives in log_engine.
from regression_model.monitoring.log_engine import LogNotFoundError as LogNotFoundError  # noqa: PLC0414
from regression_model.monitoring.log_engine import check_log as check_log  # noqa: PLC0414
from regression_model.monitoring.log_engine import create_log_engine as create_log_engine  # noqa: PLC0414
from regression_model.monitoring.log_engine import database_url as database_url  # noqa: PLC0414
from regression_model.monitoring.log_rows import Unreadable, readable_row, tolerant

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: PostgreSQL advisory lock key held while migrating (any fixed number).
_MIGRATION_LOCK_KEY = 7_194_300_911

metadata = MetaData()

predictions = Table(
    "predictions",
    metadata,
    Column("log_id", String(32), primary_key=True, comment="one per request, made by the writer"),
    Column("row", Integer, primary_key=True, comment="the house's position in the request"),
    Column("request_id", String(64), nullable=False, index=True),
    Column("logged_at", DateTime(timezone=True), nullable=False, index=True),
    Column("model_version", String(32), nullable=False),
    Column("inputs", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("price", Double(), nullable=True, comment="dollars; null when rejected"),
    Column("errors", JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")),
    Column(
        "ignored_fields",
        JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql"),
        comment="names of the fields sent that the model ignored (null: none)",
    ),
    Column(
        "price_ranges",
        JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql"),
        comment="[{coverage, low, high}] in dollars, as answered (null: not priced)",
    ),
)

#: Realised sale prices, referenced by a logged request's house or by the key
#: the client sent with the house (see migration 0004).
outcomes = Table(
    "outcomes",
    metadata,
    Column("reference", String(200), primary_key=True),
    Column("request_id", String(64), nullable=True, index=True),
    Column("row", Integer, nullable=True),
    Column("house_key", String(64), nullable=True, index=True),
    Column("sale_price", Double(), nullable=False, comment="dollars"),
    Column("sale_date", Date(), nullable=False, index=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

#: A challenger model's prices of the logged houses it shadowed.
shadow_prices = Table(
    "shadow_prices",
    metadata,
    Column("log_id", String(32), primary_key=True),
    Column("row", Integer, primary_key=True),
    Column("challenger_version", String(64), primary_key=True),
    Column("logged_at", DateTime(timezone=True), nullable=False, index=True),
    Column("price", Double(), nullable=True, comment="dollars; null when refused"),
)

#: The record fields, in table order (what the writer and the spool file hold).
FIELDS = tuple(column.name for column in predictions.columns)

#: SQLite: many records per statement (multi-row VALUES), the JSON columns
#: serialised by the writer (pydantic-core), so SQLAlchemy does no per-row
#: processing. Not ``executemany``: the driver releases the GIL around each
#: statement it steps, and a thread taking the GIL back waits out the
#: interpreter's switch interval (5 ms) while the event loop is busy, so at
#: saturation a row per statement capped the writer near 200 rows a second and
#: the queue grew without end. Statements of 64 rows (640 parameters, under
#: the 999 that SQLite before 3.32 allowed), the rest in powers of two: seven
#: statement shapes in all, so the driver's cache of prepared statements
#: stays small (one shape per batch size made the worker's memory creep).
_SQLITE_MAX_ROWS_PER_STATEMENT = 64
_SQLITE_INSERT = """
    INSERT INTO predictions
        (log_id, "row", request_id, logged_at, model_version, inputs, price, errors,
         ignored_fields, price_ranges)
    VALUES {rows}
    ON CONFLICT DO NOTHING
"""
#: PostgreSQL: every record in one statement, from one JSON document that the
#: server unpacks (the work happens in the database's process, not the API's).
_POSTGRESQL_INSERT = """
    INSERT INTO predictions
        (log_id, "row", request_id, logged_at, model_version, inputs, price, errors,
         ignored_fields, price_ranges)
    SELECT r.log_id, r."row", r.request_id, r.logged_at, r.model_version,
           COALESCE(r.inputs, 'null'::jsonb), r.price, r.errors, r.ignored_fields,
           r.price_ranges
    FROM jsonb_to_recordset(CAST(:records AS jsonb)) AS r(
        log_id varchar, "row" integer, request_id varchar, logged_at timestamptz,
        model_version varchar, inputs jsonb, price double precision, errors jsonb,
        ignored_fields jsonb, price_ranges jsonb)
    ON CONFLICT DO NOTHING
"""


def record_time(moment: datetime) -> str:
    """How records carry their time: UTC, to the microsecond, with its offset
    (what SQLite stores as text and PostgreSQL reads as a timestamptz)."""
    return utc(moment).isoformat(sep=" ", timespec="microseconds")


def record_json(record: dict[str, Any]) -> bytes:
    """A record as one JSON object, its ``inputs`` (JSON already) spliced in."""
    inputs: bytes = record["inputs"]
    rest = {name: value for name, value in record.items() if name != "inputs"}
    return b'{"inputs":' + inputs + b"," + to_json(rest)[1:]


@functools.cache
def _sqlite_insert(rows: int) -> str:
    return _SQLITE_INSERT.format(rows=", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows))


def _sqlite_chunks(count: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of each statement's rows: full statements, then the rest
    as powers of two, largest first."""
    start = 0
    size = _SQLITE_MAX_ROWS_PER_STATEMENT
    while start < count:
        while size > count - start:
            size //= 2
        yield start, start + size
        start += size


def insert_records(connection: Connection, records: list[dict[str, Any]]) -> None:
    """Insert records (``FIELDS``, ``inputs`` as JSON bytes, time as
    :func:`record_time`), skipping keys already present (SQLite, PostgreSQL);
    other databases through SQLAlchemy's plain insert."""
    if not records:
        return
    dialect = connection.dialect.name
    if dialect == "sqlite":
        for start, stop in _sqlite_chunks(len(records)):
            chunk = records[start:stop]
            connection.exec_driver_sql(
                _sqlite_insert(len(chunk)),
                tuple(
                    value
                    for r in chunk
                    for value in (
                        r["log_id"],
                        r["row"],
                        r["request_id"],
                        r["logged_at"],
                        r["model_version"],
                        r["inputs"].decode(),
                        r["price"],
                        _json_or_null(r["errors"]),
                        _json_or_null(r.get("ignored_fields")),
                        _json_or_null(r.get("price_ranges")),
                    )
                ),
            )
    elif dialect == "postgresql":
        document = b"[" + b",".join(record_json(r) for r in records) + b"]"
        connection.execute(text(_POSTGRESQL_INSERT), {"records": document.decode()})
    else:
        rows = [
            {
                **r,
                "inputs": from_json(r["inputs"]),
                "logged_at": datetime.fromisoformat(r["logged_at"]),
            }
            for r in records
        ]
        connection.execute(predictions.insert(), rows)


def _json_or_null(value: Any) -> str | None:
    return None if value is None else to_json(value).decode()


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine) -> None:
    """Create or upgrade the log's schema to the newest migration (idempotent,
    safe to run from several processes at once).

    A log already migrated by a newer release (a revision this package does
    not have: the service was rolled back) is left as it is: migrations only
    add nullable columns and tables, so this release's records still fit,
    and refusing would send every record to the spool until the newer
    release came back."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    lock = (
        _sqlite_file_lock(engine) if engine.dialect.name == "sqlite" else contextlib.nullcontext()
    )
    with lock, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        current = MigrationContext.configure(connection).get_current_heads()
        if newer := [revision for revision in current if revision not in known]:
            logger.warning(
                "the prediction log is at migration %s, newer than this release's (%s): "
                "left as it is, records written as this release knows them",
                ", ".join(newer),
                ", ".join(sorted(known)),
            )
            return
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC (naive values are taken as UTC, as SQLite returns them)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def read_log(
    engine: Engine,
    *,
    since: datetime | None = None,
    model_version: str | None = None,
    latest: int | None = None,
    chunk_rows: int = 10_000,
    columns: Sequence[str] = ("inputs", "price"),
    unreadable: Unreadable | None = None,
) -> Iterator[list[tuple[Any, ...]]]:
    """Logged records in chunks, each a tuple of ``columns`` (default: the
    ``(inputs, price)`` pairs drift reads; ``FIELDS`` names them all, such
    as ``price_ranges``): all since ``since``, or the ``latest`` ones, for
    one ``model_version`` (default: all versions). A record with a value its
    column cannot hold (:mod:`~regression_model.monitoring.log_rows`) is
    skipped, counted in ``unreadable``."""
    names = tuple(columns)
    query = select(*(tolerant(predictions.c[name]) for name in names))
    if since is not None:
        query = query.where(predictions.c.logged_at >= utc(since))
    if model_version is not None:
        query = query.where(predictions.c.model_version == model_version)
    if latest is not None:
        query = query.order_by(predictions.c.logged_at.desc()).limit(latest)
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=chunk_rows).execute(
            query
        )
        for partition in result.partitions(chunk_rows):
            rows = [tuple(row) for row in partition]
            kept = [row for row in rows if readable_row(row, names)]
            if unreadable is not None:
                unreadable.unkeyed += len(rows) - len(kept)
            yield kept


#: Rows deleted per transaction when pruning: short transactions, so the
#: writers of a busy log never wait long behind a large delete.
PRUNE_BATCH_ROWS = 5000


def prune_log(
    engine: Engine,
    before: datetime,
    *,
    batch_rows: int = PRUNE_BATCH_ROWS,
    max_batches: int | None = None,
) -> int:
    """Delete the records logged before ``before``, ``batch_rows`` per
    transaction (the oldest first, found through the ``logged_at`` index),
    until none is left or ``max_batches`` transactions have run. Returns how
    many were deleted."""
    oldest = (
        select(predictions.c.log_id, predictions.c.row)
        .where(predictions.c.logged_at < utc(before))
        .order_by(predictions.c.logged_at)
        .limit(batch_rows)
    )
    statement = delete(predictions).where(
        tuple_(predictions.c.log_id, predictions.c.row).in_(oldest.scalar_subquery())
    )
    deleted = batches = 0
    while max_batches is None or batches < max_batches:
        with engine.begin() as connection:
            count = connection.execute(statement).rowcount
        deleted += count
        batches += 1
        if count < batch_rows:
            break
    return deleted


def count_log(engine: Engine, *, before: datetime | None = None) -> int:
    """How many records the log holds (logged before ``before``, if given)."""
    query = select(func.count()).select_from(predictions)
    if before is not None:
        query = query.where(predictions.c.logged_at < utc(before))
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())
