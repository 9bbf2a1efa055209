"""A house's key: the id a client sends with it (the config's ``id_column``,
Kaggle's ``Id``), which comes back with its price, is kept in the prediction
log and lets an outcome quote the house later (``{"key": ...}``).

One rule for both (:func:`house_key`): a whole number or a string of at most
:data:`MAX_KEY_LENGTH` characters without whitespace or control characters,
compared as text. A house whose id breaks it is refused (the id is the
client's handle on the price: one no outcome could quote, or of megabytes,
is a mistake to name, not to store).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from regression_model.scoring.rules import format_number, json_type

#: The longest key and request id: the outcomes table's columns (and the
#: service's request ids are at most this long).
MAX_KEY_LENGTH = 64
#: Control characters and whitespace: a key is quoted text, and PostgreSQL
#: stores no NUL.
NOT_PLAIN = r"[\x00-\x20\x7f]"
_NOT_PLAIN = re.compile(NOT_PLAIN)
#: Integers beyond this are too long to be a key whatever their digits (and
#: Python will not write one of over 4300 digits as text).
_KEY_BITS_MAX = 4 * MAX_KEY_LENGTH


def plain_text_problem(value: Any, what: str, kinds: str = "a string") -> str | None:
    """Why ``value`` is no key or request id (None when it is one)."""
    if not isinstance(value, str):
        return f"expected {what} as {kinds}, got {json_type(value)}"
    if not value:
        return f"empty: send {what}"
    if len(value) > MAX_KEY_LENGTH:
        return f"{len(value)} characters long; at most {MAX_KEY_LENGTH}"
    if _NOT_PLAIN.search(value):
        return "has whitespace or a control character: a key is one word, sent as it was given"
    return None


def whole_number(value: Any) -> Any:
    """A JSON number without a fraction (5 or 5.0: JSON has one kind of
    number) as an int, up to 2**53 (beyond, a float is not that whole number
    exactly: a 30-digit key would become another); anything else as it is."""
    if isinstance(value, np.generic):  # a frame's values
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def house_key(value: Any) -> tuple[str | None, str | None]:
    """``(key, None)``: the value as a key (text); or ``(None, why)``."""
    key = whole_number(value)
    if isinstance(key, int) and not isinstance(key, bool):
        if key.bit_length() > _KEY_BITS_MAX:
            too_long = f"a whole number of over {MAX_KEY_LENGTH} digits"
            return None, f"{too_long}; at most {MAX_KEY_LENGTH}"
        key = str(key)
    if isinstance(key, float):  # a fraction, infinite, or too large to be whole exactly
        return None, f"expected a string or whole number, got {format_number(key)}"
    why = plain_text_problem(key, "the house's id", "a string or whole number")
    return (key, None) if why is None else (None, why)
