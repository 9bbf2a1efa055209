"""Outcomes joined to the logged predictions they refer to: the one place the rule is written.

An outcome (a row of the log's ``outcomes`` table) is a house's realised sale
price. :func:`matched_outcomes` pairs it with a logged prediction:

- ``request:<request_id>:<row>`` (its ``request_id`` and ``row`` columns):
  the house at ``row`` of the request answered with that ``X-Request-ID``. A
  client may reuse a request id; then the latest logged of those houses counts.
- ``key:<key>`` (its ``house_key`` column): the latest priced house whose
  ``inputs`` carry that id (the config's ``id_column``, compared as text:
  ``5`` and ``"5"`` are the same key) logged on or before the sale date (UTC
  days); when none was, the latest logged after it (a house priced only
  after it sold is still a price someone was given for it).

Only priced houses of the model version judged are candidates; an outcome
with none is unmatched (:mod:`~regression_model.monitoring.performance`
counts it). Outcomes stream in chunks; a chunk's request references are
found through the log's ``request_id`` index; the key references are kept
(a key, a date and a reference each) and matched at the end in one pass over
the ids of that version's priced houses, which no index covers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, or_, select, true

from regression_model.config.core import Config
from regression_model.monitoring.log_rows import OUTCOME, Unreadable, readable_row, tolerant
from regression_model.monitoring.log_store import outcomes, predictions, utc

#: Outcomes (and logged houses fetched) handled per query.
CHUNK_ROWS = 1000


@dataclass(frozen=True)
class MatchedSale:
    """An outcome with the logged prediction it refers to."""

    reference: str
    sale_date: date
    sale_price: float
    logged_at: datetime
    price: float
    price_ranges: Sequence[Mapping[str, float]] | None
    inputs: Mapping[str, Any]


_LOGGED = tuple(
    tolerant(predictions.c[name])
    for name in ("log_id", "row", "logged_at", "price", "price_ranges", "inputs")
)
_LOGGED_NAMES = tuple(column.name for column in _LOGGED)
_OUTCOME_NAMES = ("reference", "request_id", "row", "house_key", "sale_price", "sale_date")


def _sale(outcome: Any, logged: Any) -> MatchedSale:
    return MatchedSale(
        reference=outcome.reference,
        sale_date=outcome.sale_date,
        sale_price=float(outcome.sale_price),
        logged_at=utc(logged.logged_at),
        price=float(logged.price),
        price_ranges=logged.price_ranges,
        inputs=logged.inputs if isinstance(logged.inputs, Mapping) else {},
    )


def matched_outcomes(
    engine: Engine,
    config: Config,
    *,
    model_version: str,
    since: date | None = None,
    latest: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    unreadable: Unreadable | None = None,
) -> Iterator[tuple[int, list[MatchedSale]]]:
    """The outcomes sold on or after ``since`` (the ``latest`` sold, if
    given), joined to the priced houses of ``model_version`` they refer to
    (the rule: module docstring), in chunks: ``(outcomes read, their matches)``.
    An outcome or a logged house with a value its column cannot hold
    (:mod:`~regression_model.monitoring.log_rows`) is skipped, counted in
    ``unreadable`` (once each)."""
    skipped = Unreadable() if unreadable is None else unreadable
    query = select(*(tolerant(outcomes.c[name]) for name in _OUTCOME_NAMES))
    if since is not None:
        query = query.where(outcomes.c.sale_date >= since)
    if latest is not None:
        query = query.order_by(outcomes.c.sale_date.desc(), outcomes.c.reference).limit(latest)
    keyed: list[Any] = []
    with engine.connect() as connection:
        found = connection.execution_options(stream_results=True, yield_per=chunk_rows).execute(
            query
        )
        # Each chunk's houses are read on a connection of their own while the
        # outcomes stream on this one.
        for partition in found.partitions(chunk_rows):
            chunk = [o for o in partition if readable_row(o, _OUTCOME_NAMES)]
            for outcome in partition:
                if not readable_row(outcome, _OUTCOME_NAMES):
                    skipped.add((OUTCOME, outcome.reference))
            by_request = [o for o in chunk if o.request_id is not None and o.row is not None]
            keyed += [o for o in chunk if o.house_key is not None and o.request_id is None]
            yield len(chunk), _by_request(engine, by_request, model_version, skipped)
    # The keys at the end, all in one pass over the logged ids (see _by_key).
    for sales in _by_key(engine, config, keyed, model_version, chunk_rows, skipped=skipped):
        yield 0, sales


def _by_request(
    engine: Engine, chunk: list[Any], model_version: str, skipped: Unreadable
) -> list[MatchedSale]:
    if not chunk:
        return []
    wanted = {(o.request_id, o.row): o for o in chunk}
    # The request_id index finds the candidates (a row-value IN of
    # (request_id, row) is a scan of the log in SQLite); the rows are picked here.
    query = (
        select(predictions.c.request_id, predictions.c.row,
               tolerant(predictions.c.logged_at), predictions.c.log_id)
        .where(predictions.c.request_id.in_({o.request_id for o in chunk}))
        .where(predictions.c.row.in_({o.row for o in chunk}))
        .where(predictions.c.price.is_not(None))
        .where(predictions.c.model_version == model_version)
    )  # fmt: skip
    latest: dict[tuple[str, int], tuple[datetime, str, int]] = {}
    with engine.connect() as connection:
        for request_id, row, logged_at, log_id in connection.execute(query):
            if not readable_row((logged_at,), ("logged_at",)):
                skipped.add((log_id, row))
                continue
            key = (request_id, row)
            found = (utc(logged_at), log_id, row)
            if key in wanted and (key not in latest or found > latest[key]):
                latest[key] = found
        records = _records(connection, [found[1:] for found in latest.values()], skipped)
    return [
        _sale(wanted[key], records[found[1:]])
        for key, found in latest.items()
        if found[1:] in records
    ]


#: Houses fetched per statement by their primary key (two parameters each).
_RECORDS_PER_STATEMENT = 250


def _records(
    connection: Connection, keys: list[tuple[str, int]], skipped: Unreadable
) -> dict[tuple[str, int], Any]:
    """The logged houses of these ``(log_id, row)`` keys, each found through
    the primary key (``log_id = ? AND row = ?`` joined by OR: both SQLite and
    PostgreSQL search the index for each; a row-value IN is a scan in SQLite)."""
    records = {}
    for start in range(0, len(keys), _RECORDS_PER_STATEMENT):
        part = keys[start : start + _RECORDS_PER_STATEMENT]
        query = select(*_LOGGED).where(
            or_(*(and_(predictions.c.log_id == log_id, predictions.c.row == row)
                  for log_id, row in part))
        )  # fmt: skip
        for r in connection.execute(query):
            if readable_row(r, _LOGGED_NAMES):
                records[(r.log_id, r.row)] = r
            else:
                skipped.add((r.log_id, r.row))
    return records


def _by_key(
    engine: Engine,
    config: Config,
    keyed: list[Any],
    model_version: str,
    chunk_rows: int,
    *,
    skipped: Unreadable,
) -> Iterator[list[MatchedSale]]:
    """The key rule, for every keyed outcome at once: one pass over the ids of
    the version's priced houses (no index covers an id inside the logged
    JSON, so a pass per chunk of outcomes read the log again and again),
    keeping per outcome the latest logged on or before its sale day and the
    latest overall; then those houses' records, ``chunk_rows`` at a time."""
    if not keyed:
        return
    logged_id = predictions.c.inputs[config.model.id_column].as_string()
    pending: dict[str, list[Any]] = {}
    for outcome in keyed:
        pending.setdefault(outcome.house_key, []).append(outcome)
    best_before: dict[str, tuple[datetime, str, int]] = {}
    best_any: dict[str, tuple[datetime, str, int]] = {}
    # SQLite's json_extract fails the whole query on one record whose inputs
    # are not JSON: such a record's key is not read (it is skipped, counted).
    valid = (
        func.json_valid(predictions.c.inputs) == 1 if engine.dialect.name == "sqlite" else true()
    )
    candidates = (
        select(case((valid, logged_id), else_=None), valid,
               tolerant(predictions.c.logged_at), predictions.c.log_id, predictions.c.row)
        .where(predictions.c.price.is_not(None))
        .where(predictions.c.model_version == model_version)
    )  # fmt: skip
    with engine.connect() as connection:
        scan = connection.execution_options(stream_results=True, yield_per=chunk_rows).execute(
            candidates
        )
        for key, json_valid, logged_at, log_id, row in scan:
            if not (json_valid and readable_row((logged_at,), ("logged_at",))):
                skipped.add((log_id, row))
                continue
            for outcome in pending.get(key, ()):
                found = (utc(logged_at), log_id, row)
                ref = outcome.reference
                if found[0] < _day_after(outcome.sale_date) and (
                    ref not in best_before or found > best_before[ref]
                ):
                    best_before[ref] = found
                if ref not in best_any or found > best_any[ref]:
                    best_any[ref] = found
    chosen = [(o, best_before.get(o.reference) or best_any.get(o.reference)) for o in keyed]
    matched = [(outcome, best[1:]) for outcome, best in chosen if best is not None]
    for start in range(0, len(matched), chunk_rows):
        part = matched[start : start + chunk_rows]
        with engine.connect() as connection:
            records = _records(connection, [key for _, key in part], skipped)
        yield [_sale(outcome, records[key]) for outcome, key in part if key in records]


def _day_after(day: date) -> datetime:
    return utc(datetime.combine(day + timedelta(days=1), datetime.min.time()))
