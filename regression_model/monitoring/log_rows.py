"""Reading the log's records when some cannot be read: skipped and counted,
never a crash.

SQLite keeps any value in any column, so a log that has run for months may
hold a record whose ``inputs`` are not JSON, whose ``price`` is text or whose
``logged_at`` is not a time (a hand edit, a bad restore, another program), or
an outcome whose ``sale_date`` is not a date. Read through :func:`tolerant`, a
column's value that its type cannot read becomes :data:`UNREADABLE` instead
of raising in the middle of a result; :func:`readable` says whether a value
is one a record of the log can hold; the readers (``read_log``, the outcome
join) skip such records and count them in an :class:`Unreadable`, which the
reports show (``unreadable``). PostgreSQL's typed columns never hold such
values; reading through :func:`tolerant` changes nothing there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Dialect, type_coerce
from sqlalchemy.types import NullType, TypeDecorator, TypeEngine

#: A value the column's type could not read.
UNREADABLE: Any = type("Unreadable", (), {"__repr__": lambda self: "UNREADABLE"})()


class _Tolerant(TypeDecorator[Any]):
    """The wrapped type's values; one it cannot read is UNREADABLE."""

    impl = NullType
    cache_ok = True

    def __init__(self, inner: TypeEngine[Any]) -> None:
        super().__init__()
        self.inner = inner

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return self.inner.dialect_impl(dialect)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        process = self.inner.dialect_impl(dialect).result_processor(dialect, coltype)
        if process is None:
            return None

        def read(value: Any) -> Any:
            try:
                return process(value)
            except (ValueError, TypeError, OverflowError, RecursionError):
                return UNREADABLE

        return read


def tolerant(column: ColumnElement[Any], name: str | None = None) -> ColumnElement[Any]:
    """``column`` read through its type, a value it cannot read UNREADABLE;
    labelled ``name`` (default: the column's)."""
    return type_coerce(column, _Tolerant(column.type)).label(name or column.key)


def _number(value: Any, nullable: bool) -> bool:
    if value is None:
        return nullable
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


#: Per column: what a readable value is (others, such as ``inputs``, which
#: holds a rejected house as sent, whatever JSON it was: anything but UNREADABLE).
_RULES: dict[str, Callable[[Any], bool]] = {
    "price": lambda value: _number(value, nullable=True),
    "shadow_price": lambda value: _number(value, nullable=True),
    "sale_price": lambda value: _number(value, nullable=False),
    "logged_at": lambda value: isinstance(value, datetime),
    "sale_date": lambda value: isinstance(value, date) and not isinstance(value, datetime),
}


def readable(name: str, value: Any) -> bool:
    """Whether ``value`` is one the log's column ``name`` holds."""
    if value is UNREADABLE:
        return False
    rule = _RULES.get(name)
    return rule is None or rule(value)


def readable_row(row: Any, names: tuple[str, ...]) -> bool:
    """Whether every value of ``row`` (a tuple of the columns ``names``) is readable."""
    return all(readable(name, value) for name, value in zip(names, row, strict=True))


#: The key an unreadable outcome is counted under (with its reference).
OUTCOME = "outcome"


@dataclass
class Unreadable:
    """The records skipped as unreadable: each counted once (by its key, when
    known: ``(log_id, row)`` for a logged house, ``(OUTCOME, reference)``)."""

    unkeyed: int = 0
    keys: set[Hashable] = field(default_factory=set)

    def add(self, key: Hashable | None = None) -> None:
        if key is None:
            self.unkeyed += 1
        else:
            self.keys.add(key)

    @property
    def records(self) -> int:
        return self.unkeyed + len(self.keys)

    @property
    def outcomes(self) -> int:
        """Of which outcomes."""
        return sum(1 for key in self.keys if isinstance(key, tuple) and key[0] == OUTCOME)
