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
counts it). Outcomes stream in chunks; each chunk's houses are found with
one query per rule (the key's: a pass over the logged ids of that version,
which no index covers), so memory is bounded by the chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, tuple_

from regression_model.config.core import Config
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


_LOGGED = (
    predictions.c.log_id,
    predictions.c.row,
    predictions.c.logged_at,
    predictions.c.price,
    predictions.c.price_ranges,
    predictions.c.inputs,
)


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
) -> Iterator[tuple[int, list[MatchedSale]]]:
    """The outcomes sold on or after ``since`` (the ``latest`` sold, if
    given), joined to the priced houses of ``model_version`` they refer to
    (the rule: module docstring), in chunks: ``(outcomes read, their matches)``."""
    query = select(
        outcomes.c.reference,
        outcomes.c.request_id,
        outcomes.c.row,
        outcomes.c.house_key,
        outcomes.c.sale_price,
        outcomes.c.sale_date,
    )
    if since is not None:
        query = query.where(outcomes.c.sale_date >= since)
    if latest is not None:
        query = query.order_by(outcomes.c.sale_date.desc(), outcomes.c.reference).limit(latest)
    with engine.connect() as connection:
        found = connection.execution_options(stream_results=True, yield_per=chunk_rows).execute(
            query
        )
        # Each chunk's houses are read on a connection of their own while the
        # outcomes stream on this one.
        for partition in found.partitions(chunk_rows):
            chunk = list(partition)
            by_request = [o for o in chunk if o.request_id is not None and o.row is not None]
            by_key = [o for o in chunk if o.house_key is not None and o.request_id is None]
            matched = _by_request(engine, by_request, model_version)
            matched += _by_key(engine, config, by_key, model_version, chunk_rows)
            yield len(chunk), matched


def _by_request(engine: Engine, chunk: list[Any], model_version: str) -> list[MatchedSale]:
    if not chunk:
        return []
    wanted = {(o.request_id, o.row): o for o in chunk}
    query = (
        select(predictions.c.request_id, *_LOGGED)
        .where(tuple_(predictions.c.request_id, predictions.c.row).in_(list(wanted)))
        .where(predictions.c.price.is_not(None))
        .where(predictions.c.model_version == model_version)
    )
    latest: dict[tuple[str, int], Any] = {}
    with engine.connect() as connection:
        for logged in connection.execute(query):
            key = (logged.request_id, logged.row)
            if key not in latest or utc(logged.logged_at) > utc(latest[key].logged_at):
                latest[key] = logged
    return [_sale(wanted[key], logged) for key, logged in latest.items()]


def _by_key(
    engine: Engine, config: Config, chunk: list[Any], model_version: str, chunk_rows: int
) -> list[MatchedSale]:
    """The key rule: one pass over the candidates' ids (logged houses carry no
    index on their id), keeping per outcome the latest logged on or before
    its sale day and the latest overall; then those houses' records."""
    if not chunk:
        return []
    logged_id = predictions.c.inputs[config.model.id_column].as_string()
    pending: dict[str, list[Any]] = {}
    for outcome in chunk:
        pending.setdefault(outcome.house_key, []).append(outcome)
    best_before: dict[str, tuple[datetime, str, int]] = {}
    best_any: dict[str, tuple[datetime, str, int]] = {}
    candidates = (
        select(logged_id, predictions.c.logged_at, predictions.c.log_id, predictions.c.row)
        .where(logged_id.in_(list(pending)))
        .where(predictions.c.price.is_not(None))
        .where(predictions.c.model_version == model_version)
    )
    with engine.connect() as connection:
        for key, logged_at, log_id, row in connection.execute(candidates):
            found = (utc(logged_at), log_id, row)
            for outcome in pending.get(key, ()):
                ref = outcome.reference
                if found[0] < _day_after(outcome.sale_date) and (
                    ref not in best_before or found > best_before[ref]
                ):
                    best_before[ref] = found
                if ref not in best_any or found > best_any[ref]:
                    best_any[ref] = found
        chosen = {
            o.reference: best_before.get(o.reference) or best_any.get(o.reference) for o in chunk
        }
        keys = sorted({(c[1], c[2]) for c in chosen.values() if c is not None})
        records = {}
        for start in range(0, len(keys), chunk_rows):
            part = keys[start : start + chunk_rows]
            query = select(*_LOGGED).where(
                tuple_(predictions.c.log_id, predictions.c.row).in_(part)
            )
            records.update({(r.log_id, r.row): r for r in connection.execute(query)})
    return [
        _sale(o, records[chosen[o.reference][1:]])  # type: ignore[index]
        for o in chunk
        if chosen[o.reference] is not None and chosen[o.reference][1:] in records  # type: ignore[index]
    ]


def _day_after(day: date) -> datetime:
    return utc(datetime.combine(day + timedelta(days=1), datetime.min.time()))
