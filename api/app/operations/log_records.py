"""The prediction log's records, as the service makes them: one per house of
a request, built by the log writer (``log_writer.py``) from what the request
path queued. The table they go to is ``regression_model.monitoring.log_store``.

A record holds the model's fields only: the house's inputs under the model's
names (aliases resolved, by ``regression_model.scoring.validation``'s
``model_fields``, the rule validation reads them by) and its id, plus the
names of the fields the model ignored (at most ``IGNORED_FIELDS_MAX``, each
cut to ``IGNORED_FIELD_LENGTH`` characters), so what a client sends beyond
the model is never stored. The filtering happens in the writer thread, not
on the request path (it costs about 40 µs a house). A priced house's record
keeps its price ranges as the response gave them (``price_ranges``:
``[{"coverage", "low", "high"}]``, the coverages the request asked for).

Records are keyed by ``(log_id, row)``, made once per request when it is
queued (before the first attempt to write it, so that a batch written twice,
committed although the acknowledgement was lost, then replayed, is recognised
by the database; and returned to the request path, which names the records
by it: a challenger's shadow prices).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic_core import from_json, to_json

from regression_model import PriceRange, model_fields
from regression_model.monitoring.log_store import record_time

#: A queued request: (request id, Unix time, each house as JSON, predictions,
#: errors, model version, each house's price ranges or None for none at all).
Entry = tuple[
    str,
    float,
    list[bytes],
    Sequence[float | None],
    list[dict[str, Any]] | None,
    str,
    Sequence[Sequence[PriceRange] | None] | None,
]
#: One house's record: ``FIELDS`` of the log's table, with ``inputs`` as JSON bytes.
Record = dict[str, Any]

#: At most this many ignored field names are kept per house, each cut to
#: this many characters: a client sending thousands of made-up keys, or one
#: very long one, cannot make the log expensive.
IGNORED_FIELDS_MAX = 50
IGNORED_FIELD_LENGTH = 64
#: A logged value (a house's id too) is kept up to this many characters of
#: text: the longest label a rule takes is far shorter, so only a refused
#: value is ever cut. What a record can weigh is then bounded, and so is
#: every reader of the log that reads it in chunks of rows (drift, realised
#: performance): a client cannot make them hold megabytes per house.
LOGGED_VALUE_LENGTH = 256
#: A house whose JSON is longer than this is reduced when queued (``queued_json``).
HOUSE_JSON_MAX = 16 * 1024
#: Integers are kept whole within 64 bits (a longer one, which JSON allows,
#: is kept as the float it is near, or as infinity).
_WHOLE_BOUND = 2**63


def house_json(house: Any) -> bytes:
    """A house as sent, as JSON (a number too long for a float, read as
    infinity, is written as the string "Infinity")."""
    return to_json(house, inf_nan_mode="strings")


def queued_json(house: Any) -> bytes:
    """A house as the request path queues it for the writer: as sent (JSON),
    unless longer than ``HOUSE_JSON_MAX`` (a normal house is about 1.5 kB),
    then already reduced to what the log keeps, so that the queue's bound in
    records is one in bytes too: a 4 MB house waits as kilobytes."""
    text = house_json(house)
    if len(text) <= HOUSE_JSON_MAX:
        return text
    if not isinstance(house, Mapping):
        return house_json(_kept(house))
    fields, ignored = model_fields(house)
    reduced = {name: _kept(value) for name, value in fields.items()}
    # The ignored names as keys (without their values): the writer names them.
    reduced.update((name[:IGNORED_FIELD_LENGTH], None) for name in ignored[:IGNORED_FIELDS_MAX])
    return house_json(reduced)


def new_log_id() -> str:
    """32 hex digits: the time in nanoseconds, then 64 random bits. Unique
    across workers, and increasing, so inserts append to the primary key's
    index instead of landing at random places in it."""
    return f"{time.time_ns():016x}{random.getrandbits(64):016x}"


def logged_fields(house_as_json: bytes) -> tuple[bytes, list[str] | None]:
    """What the log keeps of a house: its model fields (JSON, each value
    within ``LOGGED_VALUE_LENGTH``) and the names of the fields the model
    ignored (None when there were none). A house that is not a JSON object
    (it was rejected as such) is kept as sent, or as the start of its JSON
    text when longer."""
    house = from_json(house_as_json)
    if not isinstance(house, Mapping):
        return house_json(_kept(house)), None
    fields, ignored = model_fields(house)
    return (
        house_json({name: _kept(value) for name, value in fields.items()}),
        [name[:IGNORED_FIELD_LENGTH] for name in ignored[:IGNORED_FIELDS_MAX]] or None,
    )


def _kept(value: Any) -> Any:
    """A value as the log keeps it: as sent when short; a longer text, array
    or object as the start of its text; an integer beyond 64 bits as a float."""
    if type(value) is int and not -_WHOLE_BOUND <= value < _WHOLE_BOUND:
        return _as_float(value)
    if isinstance(value, str):
        return value[:LOGGED_VALUE_LENGTH]
    if isinstance(value, list | dict):
        text = house_json(value)
        if len(text) > LOGGED_VALUE_LENGTH:
            return text[:LOGGED_VALUE_LENGTH].decode("utf-8", "ignore")
    return value


def _as_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def records_of(entry: Entry, log_id: str | None = None) -> list[Record]:
    """One record per house of a queued request, keyed by ``log_id`` (default:
    a new one)."""
    request_id, moment, houses, prices, errors, version, ranges = entry
    log_id = log_id or new_log_id()
    logged_at = record_time(datetime.fromtimestamp(moment, UTC))
    by_row: dict[int, list[dict[str, Any]]] = {}
    for error in errors or ():
        by_row.setdefault(int(error["row"]), []).append(
            {"field": error["field"], "message": error["message"]}
        )
    records = []
    for row, house in enumerate(houses):
        inputs, ignored = logged_fields(house)
        records.append(
            {
                "log_id": log_id,
                "row": row,
                "request_id": request_id,
                "logged_at": logged_at,
                "model_version": version,
                "inputs": inputs,
                "price": prices[row],
                "errors": by_row.get(row),
                "ignored_fields": ignored,
                "price_ranges": None if ranges is None else ranges[row],
            }
        )
    return records
