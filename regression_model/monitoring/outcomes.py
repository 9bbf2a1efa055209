"""Outcomes: the sale prices of houses priced earlier, checked and stored
beside the prediction log (the ``outcomes`` table of migration 0004).

An outcome quotes the house it is about in one of two ways, and that
quotation is its identity (the table's primary key, ``reference``):

- ``request_id`` and ``row``: what ``POST /api/v1/predict`` answered (its
  ``X-Request-ID`` header) and the house's position in that request, from 0
  (``"request:<request_id>:<row>"``);
- ``key``: the id the client sent with the house (its ``Id``),
  ``"key:<key>"``.

Each row is checked on its own (:func:`validate_outcome`): one bad row never
fails the others, and each problem names the row and the field, as
``make_prediction`` does. A field an outcome does not have is refused, never
ignored: a misspelt ``sale_price`` must not pass for an outcome without one.

Storing (:func:`store_outcomes`) is idempotent: the same outcome again is
counted as already recorded and nothing is written; the same reference with
another price or date is refused (a conflict) and the recorded values stay —
a correction is the operator's, in the database, not a client's. A request
reference whose house is not in the log (the log was pruned, or the house
was never logged) is stored all the same and reported as unmatched; a key is
not looked up here (the log does not index the ids inside the houses it
keeps: finding one would read every logged house), but where realised
performance joins outcomes to the log.

Needs the ``[log]`` extra (SQLAlchemy).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from regression_model.config.core import ModelConfig, get_config
from regression_model.monitoring.log_store import outcomes, predictions
from regression_model.scoring.house_key import house_key, plain_text_problem, whole_number
from regression_model.scoring.rules import as_float, format_number, json_type
from regression_model.scoring.unknown_fields import UnknownFieldMessages, shown_name
from regression_model.scoring.validation_result import WHOLE_ROW

#: The fields of an outcome, as a client sends them.
REQUEST_ID, ROW, KEY, SALE_PRICE, SALE_DATE = "request_id", "row", "key", "sale_price", "sale_date"
OUTCOME_FIELDS = (REQUEST_ID, ROW, KEY, SALE_PRICE, SALE_DATE)
#: The largest row a request reference may quote (the table's integer).
MAX_ROW = 2**31 - 1
#: Sales before this date are typing mistakes (the model's data are sales of
#: 2006-2010; 0206-05-01 is a valid ISO date).
EARLIEST_SALE_DATE = date(1900, 1, 1)
#: A sale dated today somewhere on Earth is not in the future: the earliest
#: time zone is 14 hours ahead of UTC.
_EARLIEST_ZONE = timedelta(hours=14)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: Rows per statement: SQLite before 3.32 allowed 999 parameters (7 a row).
_ROWS_PER_STATEMENT = 100

_REFERENCE_FORMS = (
    "give request_id and row (the X-Request-ID of the /predict response and the house's "
    "position in that request, from 0) or key (the id sent with the house, such as Id)"
)
_FIELD_NAMES = UnknownFieldMessages(OUTCOME_FIELDS, target="")
_FIELDS_ARE = f"(an outcome has {', '.join(OUTCOME_FIELDS)})"


@dataclass(frozen=True)
class Outcome:
    """A realised sale, checked: either ``request_id`` and ``row`` or ``house_key``."""

    request_id: str | None
    row: int | None
    house_key: str | None
    sale_price: float
    sale_date: date

    @property
    def reference(self) -> str:
        """Its identity: "key:<key>" or "request:<request_id>:<row>" (migration 0004)."""
        if self.house_key is not None:
            return f"key:{self.house_key}"
        return f"request:{self.request_id}:{self.row}"


def error(row: int | None, field: str, message: str) -> dict[str, Any]:
    """A problem in the one error shape (``{"row", "field", "message"}``)."""
    return {"row": row, "field": field, "message": message}


def latest_sale_date(now: datetime | None = None) -> date:
    """The latest sale date that is not in the future: today in UTC+14."""
    return ((now or datetime.now(UTC)).astimezone(UTC) + _EARLIEST_ZONE).date()


def _given(item: Mapping[Any, Any], name: str) -> bool:
    return item.get(name) is not None


def _check_reference(item: Mapping[Any, Any], problems: list[tuple[str, str]]) -> tuple[Any, ...]:
    """(request_id, row, key) of a row, after noting what is wrong with them."""
    by_request = _given(item, REQUEST_ID) or _given(item, ROW)
    if by_request and _given(item, KEY):
        problems.append((KEY, f"give key or request_id and row, not both: {_REFERENCE_FORMS}"))
        return None, None, None
    if not by_request and not _given(item, KEY):
        problems.append((WHOLE_ROW, f"no reference to a priced house: {_REFERENCE_FORMS}"))
        return None, None, None
    if _given(item, KEY):
        key, why = house_key(item[KEY])
        if why is None:
            return None, None, key
        problems.append((KEY, why))
        return None, None, None
    request_id, row = item.get(REQUEST_ID), whole_number(item.get(ROW))
    if request_id is None:
        problems.append((REQUEST_ID, "missing: a row needs the request_id it is a house of"))
    elif why := plain_text_problem(request_id, "the X-Request-ID of the /predict response"):
        problems.append((REQUEST_ID, why))
    if row is None:
        problems.append((ROW, "missing: the house's position in the request (from 0)"))
    elif not isinstance(row, int) or isinstance(row, bool):
        problems.append((ROW, f"expected a whole number (from 0), got {json_type(row)}"))
    elif not 0 <= row <= MAX_ROW:
        problems.append(
            (ROW, f"{format_number(row)} is out of range: the house's position, from 0")
        )
    return request_id, row, None


def _check_price(value: Any, config: ModelConfig, problems: list[tuple[str, str]]) -> float:
    low, high = config.plausible_price_range
    # A JSON number as a float (an integer too long for one: infinite).
    number = as_float(value) if isinstance(value, int | float) else None
    if value is None:
        problems.append((SALE_PRICE, "missing: the sale price in dollars"))
    elif number is None or isinstance(value, bool):
        problems.append((SALE_PRICE, f"expected a number of dollars, got {json_type(value)}"))
    elif not math.isfinite(number):
        problems.append((SALE_PRICE, f"{number} is not a finite number"))
    elif not low <= number <= high:
        problems.append(
            (
                SALE_PRICE,
                f"{format_number(number)} is out of range: must be between {low:,.0f} and "
                f"{high:,.0f} dollars",
            )
        )
    else:
        return number
    return math.nan


def _check_date(value: Any, latest: date, problems: list[tuple[str, str]]) -> date:
    if value is None:
        problems.append((SALE_DATE, "missing: the day the sale closed, as YYYY-MM-DD"))
        return EARLIEST_SALE_DATE
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        shown = repr(value[:40]) if isinstance(value, str) else json_type(value)
        problems.append((SALE_DATE, f"expected a date as YYYY-MM-DD (ISO 8601), got {shown}"))
        return EARLIEST_SALE_DATE
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        problems.append((SALE_DATE, f"{value} is not a date: {exc}"))
        return EARLIEST_SALE_DATE
    if day < EARLIEST_SALE_DATE:
        problems.append((SALE_DATE, f"{value} is before {EARLIEST_SALE_DATE}: a typing mistake?"))
    elif day > latest:
        problems.append((SALE_DATE, f"{value} is in the future (today is {latest} at the latest)"))
    return day


def validate_outcome(
    item: Any, *, config: ModelConfig | None = None, now: datetime | None = None
) -> tuple[Outcome | None, list[tuple[str, str]]]:
    """One outcome as sent (a JSON object), checked: the :class:`Outcome`, or
    None with each problem as ``(field, message)``."""
    if not isinstance(item, Mapping):
        return None, [(WHOLE_ROW, f"expected an object (an outcome), got {json_type(item)}")]
    problems: list[tuple[str, str]] = []
    for name in item:
        if name not in OUTCOME_FIELDS:
            closest = _FIELD_NAMES.suggestion(str(name))
            hint = f" — did you mean {closest}?" if closest else ""
            problems.append((shown_name(name), f"unknown field, refused{hint} {_FIELDS_ARE}"))
    request_id, row, key = _check_reference(item, problems)
    price = _check_price(item.get(SALE_PRICE), config or get_config().model, problems)
    day = _check_date(item.get(SALE_DATE), latest_sale_date(now), problems)
    if problems:
        return None, problems
    return Outcome(request_id, row, key, price, day), []


def validate_outcomes(
    items: Sequence[Any], *, config: ModelConfig | None = None, now: datetime | None = None
) -> tuple[list[tuple[int, Outcome]], list[dict[str, Any]]]:
    """Each item checked: the good ones with their positions, and an error
    (row, field, message) for each problem of the others."""
    config = config or get_config().model
    good, errors = [], []
    for position, item in enumerate(items):
        outcome, problems = validate_outcome(item, config=config, now=now)
        if outcome is not None:
            good.append((position, outcome))
        errors += [error(position, name, message) for name, message in problems]
    return good, errors


@dataclass
class StoredOutcomes:
    """What became of the checked outcomes of one batch, by their positions."""

    stored: list[int] = field(default_factory=list)
    already_recorded: list[int] = field(default_factory=list)
    #: a reference recorded with other values: ``{"row", "field", "message"}``
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    #: a request reference no logged, priced house answers: ``{"row", "reference", "message"}``
    unmatched: list[dict[str, Any]] = field(default_factory=list)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _ROWS_PER_STATEMENT):
        yield items[start : start + _ROWS_PER_STATEMENT]


def _insert_new(connection: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the rows whose reference is not recorded yet; the references inserted."""
    inserted: set[str] = set()
    dialect = connection.dialect.name
    if not rows:
        return inserted
    if dialect in ("sqlite", "postgresql"):
        # Atomic per row: two clients posting the same outcome at once store
        # it once, and neither fails. One statement, compiled once and cached;
        # SQLAlchemy batches the rows into multi-row VALUES ("insertmanyvalues").
        insert = (sqlite if dialect == "sqlite" else postgresql).insert(outcomes)
        statement = insert.on_conflict_do_nothing().returning(outcomes.c.reference)
        inserted.update(connection.scalars(statement, rows))
        return inserted
    for chunk in _chunks(rows):  # another database: look first (not atomic)
        present = set(_recorded(connection, [r["reference"] for r in chunk]))
        new = [r for r in chunk if r["reference"] not in present]
        if new:
            connection.execute(outcomes.insert(), new)
        inserted.update(r["reference"] for r in new)
    return inserted


def _recorded(connection: Connection, references: Sequence[str]) -> dict[str, tuple[float, date]]:
    """The recorded (sale_price, sale_date) of each of ``references`` present."""
    found: dict[str, tuple[float, date]] = {}
    for chunk in _chunks(references):
        query = select(outcomes.c.reference, outcomes.c.sale_price, outcomes.c.sale_date).where(
            outcomes.c.reference.in_(chunk)
        )
        for reference, price, day in connection.execute(query):
            found[reference] = (float(price), day)
    return found


def logged_houses(connection: Connection, quoted: Sequence[tuple[str, int]]) -> dict[Any, bool]:
    """Which of the (request_id, row) pairs are logged houses, and whether
    each was priced (found through the log's index on request ids)."""
    found: dict[Any, bool] = {}
    wanted = set(quoted)
    for chunk in _chunks(sorted({request_id for request_id, _ in wanted})):
        query = select(predictions.c.request_id, predictions.c.row, predictions.c.price).where(
            predictions.c.request_id.in_(chunk)
        )
        for request_id, row, price in connection.execute(query):
            if (request_id, row) in wanted:
                # A client-chosen request id may have been used twice.
                found[request_id, row] = found.get((request_id, row), False) or price is not None
    return found


def _differences(
    position: int, outcome: Outcome, recorded: tuple[float, date], where: str
) -> list[dict[str, Any]]:
    price, day = recorded
    conflicts = []
    for name, sent, kept in (
        (SALE_PRICE, outcome.sale_price, price),
        (SALE_DATE, outcome.sale_date, day),
    ):
        if sent != kept:
            conflicts.append(
                error(
                    position,
                    name,
                    f"{outcome.reference} is already recorded{where} with {name} {kept} (this "
                    f"row: {sent}); a recorded outcome is not changed (ask the operator to "
                    "correct it)",
                )
            )
    return conflicts


def store_outcomes(
    engine: Engine, checked: Sequence[tuple[int, Outcome]], *, now: datetime | None = None
) -> StoredOutcomes:
    """Store checked outcomes (position, outcome) in one transaction: each
    new reference once; an identical one already there (or earlier in the
    batch) counted as already recorded; another price or date for a recorded
    reference a conflict. Raises SQLAlchemy's errors when the database fails
    (then nothing is stored)."""
    received_at = (now or datetime.now(UTC)).astimezone(UTC)
    first: dict[str, tuple[int, Outcome]] = {}
    repeats: list[tuple[int, Outcome]] = []
    for position, outcome in checked:
        if outcome.reference in first:
            repeats.append((position, outcome))
        else:
            first[outcome.reference] = (position, outcome)
    rows = [
        {
            "reference": reference,
            "request_id": outcome.request_id,
            "row": outcome.row,
            "house_key": outcome.house_key,
            "sale_price": outcome.sale_price,
            "sale_date": outcome.sale_date,
            "received_at": received_at,
        }
        for reference, (_, outcome) in first.items()
    ]
    with engine.begin() as connection:
        inserted = _insert_new(connection, rows)
        recorded = _recorded(connection, [ref for ref in first if ref not in inserted])
        quoted = [(o.request_id, o.row) for _, o in first.values() if o.request_id is not None]
        logged = logged_houses(connection, quoted)  # type: ignore[arg-type]
    result = StoredOutcomes()
    accepted: list[tuple[int, Outcome]] = []
    for reference, (position, outcome) in [
        *first.items(),
        *((o.reference, (p, o)) for p, o in repeats),
    ]:
        earlier, same = first[reference]
        if reference in recorded:  # recorded before this batch
            conflicts = _differences(position, outcome, recorded[reference], "")
        else:  # recorded by this batch (a repeat compares with the row that did)
            kept = (same.sale_price, same.sale_date)
            conflicts = _differences(position, outcome, kept, f" by row {earlier}")
        if conflicts:
            result.conflicts += conflicts
        elif position == earlier and reference in inserted:
            result.stored.append(position)
            accepted.append((position, outcome))
        else:
            result.already_recorded.append(position)
            if position == earlier:
                accepted.append((position, outcome))
    for position, outcome in accepted:
        if outcome.request_id is None:
            continue
        priced = logged.get((outcome.request_id, outcome.row))
        if priced is None:
            why = "no logged house has this request id and row (the log may have been pruned)"
        elif not priced:
            why = "the logged house was not priced (it was rejected)"
        else:
            continue
        result.unmatched.append(
            {"row": position, "reference": outcome.reference, "message": f"stored; {why}"}
        )
    result.conflicts.sort(key=lambda e: e["row"])
    result.already_recorded.sort()
    return result
