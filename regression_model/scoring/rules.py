"""What each input variable accepts: one :class:`FieldRule` per variable,
derived from ``config.yml`` (feature lists, ranges, allowed codes), with the
single definition of its checks and of every message they give.

Everything that decides on a value asks these rules: the row-by-row and the
column-at-a-time drivers of :mod:`regression_model.scoring.validation`, and
the input schema published for clients (:mod:`regression_model.scoring.schema`).
"""

from __future__ import annotations

import decimal
import math
import numbers
from collections.abc import Callable, Iterable
from typing import NamedTuple, cast

import numpy as np

from regression_model.config.core import ModelConfig

#: Labels meaning "not recorded" in the Kaggle files.
_MISSING_LABELS = frozenset({"NA"})

#: Types whose values are never missing: the row driver skips the missing
#: check for them (what JSON and CSV give most).
NEVER_MISSING: frozenset[type] = frozenset({str, int})

#: Type names of pandas' missing-value markers (pd.NA, pd.NaT), recognised
#: without importing pandas.
_PANDAS_MISSING = frozenset({"NAType", "NaTType"})

#: Accepted labels remembered per variable (Ames has at most 25 per variable).
_KNOWN_LABELS_MAX = 256


class Problem(NamedTuple):
    """A value that cannot be used, and why."""

    message: str


def is_missing(value: object) -> bool:
    """None, NaN (any float type, and a quiet Decimal NaN), pd.NA and pd.NaT
    mean "not given". A signaling Decimal NaN is not missing: the checks refuse it."""
    if value is None:
        return True
    kind = type(value)
    if kind in NEVER_MISSING:
        return False
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if kind is decimal.Decimal:
        return cast(decimal.Decimal, value).is_qnan()
    return kind.__name__ in _PANDAS_MISSING


_JSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),
    ((int, float), "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages to JSON clients."""
    for kinds, name in _JSON_TYPES:
        if isinstance(value, kinds):
            return name
    return type(value).__name__


def format_number(value: float) -> str:
    """A number as a message shows it: whole numbers without ".0", huge ones
    (an integer of any length too) in exponent form, never thousands of digits."""
    number = as_float(value)
    if number is None:  # not a real number
        return repr(value)
    if abs(number) >= 1e15 or not math.isfinite(number):
        return f"{number:g}"
    return str(int(number)) if number.is_integer() else repr(number)


def _describe(value: object) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


def as_float(value: object) -> float | None:
    """A real number as a float (huge integers become ±inf: JSON keeps
    integers whole, of any length); None otherwise."""
    if not isinstance(value, numbers.Real | decimal.Decimal):
        return None
    if isinstance(value, decimal.Decimal) and value.is_snan():
        return None  # float() raises on it: "using it is an error"
    try:
        return float(value)
    except OverflowError:
        # Not math.copysign(math.inf, value): it converts value to a float too.
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]


def _unknown_code(value: object, codes: Iterable[object]) -> Problem:
    expected = ", ".join(map(str, codes))
    return Problem(f"unknown code {_describe(value)}; expected one of {expected}")


class FieldRule:
    """What one input variable accepts; the single definition of its checks.

    ``check`` takes any value a client may send and returns the value the
    model uses (a float for numerical variables, a label for categorical
    ones), ``None`` for a missing value (the model imputes it), or a
    :class:`Problem` saying why the value is refused.
    """

    def __init__(self, name: str, config: ModelConfig) -> None:
        self.name = name
        self.numerical = name in config.numerical_vars
        self.low, self.high = config.numerical_ranges.get(name, (-math.inf, math.inf))
        if self.numerical and not (math.isfinite(self.low) and math.isfinite(self.high)):
            # check_number takes any number in range: an infinite bound would let infinities in
            raise ValueError(f"numerical_ranges: the range of {name} must be finite")
        self.integer = name in config.integer_vars
        self.max_length = config.max_label_length
        self.quality_codes = config.quality_codes if name in config.quality_vars else None
        codes = config.coded_vars.get(name)
        self.codes = codes
        # JSON clients send 60, CSV readers may give "60": both mean label "60".
        self.code_labels: dict[object, str] = {}
        for code in codes or ():
            self.code_labels[code] = self.code_labels[str(code)] = str(code)
        #: Text that ``check`` returns unchanged, for a fast path: the codes as
        #: text, the quality codes, and the first ``_KNOWN_LABELS_MAX`` labels
        #: ``check_label`` has accepted (bounded: a flood of new labels cannot
        #: grow it; they are checked one by one).
        self.known_labels: dict[str, str] = {}
        #: Kaggle's raw names of this variable (``1stFlrSF``), and other
        #: clients' spellings (``config.input_aliases``).
        self.raw_names = tuple(
            raw for raw, safe in config.variables_to_rename.items() if safe == name
        )
        aliases = tuple(alias for alias, safe in config.input_aliases.items() if safe == name)
        #: The names a client may use for this variable, preferred first: the
        #: model's, Kaggle's raw one, then other clients' spellings.
        self.sources = (name, *self.raw_names, *aliases)
        self.check: Callable[[object], float | str | Problem | None] = (
            self.check_number
            if self.numerical
            else self.check_code
            if codes is not None
            else self.check_label
        )
        for label in [*map(str, codes or ()), *(self.quality_codes or ())]:
            if self.check(label) == label:  # by the rule itself, whatever the config
                self.known_labels[label] = label

    def check_number(self, value: object) -> float | Problem | None:
        kind = type(value)
        if kind is float or kind is int:  # what JSON and CSV give: the fast path
            try:
                number = float(value)  # type: ignore[arg-type]
            except OverflowError:  # a huge integer: refused below as not finite
                number = math.inf if value > 0 else -math.inf  # type: ignore[operator]
        elif isinstance(value, str | bytes):  # never missing, nor a boolean
            return Problem(f"expected a number, got text {_describe(value)}")
        elif is_missing(value):
            return None
        elif _is_bool(value):
            return Problem("expected a number, got a boolean")
        else:
            real = as_float(value)
            if real is None:
                # a Decimal here is a signaling NaN: named, not called a number
                kind_shown = isinstance(value, decimal.Decimal)
                shown = _describe(value) if kind_shown else json_type(value)
                return Problem(f"expected a number, got {shown}")
            number = real
        # The rule on a number, for one number (see plainly_fine for an array).
        in_range = self.low <= number <= self.high
        if in_range and (not self.integer or number.is_integer()):
            return number
        if math.isnan(number):
            return None
        if math.isinf(number):
            return Problem("must be a finite number")
        if not in_range:
            return Problem(
                f"{format_number(number)} is out of range: must be between "
                f"{format_number(self.low)} and {format_number(self.high)}"
            )
        return Problem(f"must be a whole number, got {format_number(number)}")

    def plainly_fine(self, numbers: np.ndarray) -> np.ndarray:
        """Where ``check_number`` takes an array's numbers as they are: its rule
        element-wise, from the same bounds (NaN is in no range)."""
        with np.errstate(invalid="ignore"):
            fine = (numbers >= self.low) & (numbers <= self.high)
            if self.integer:
                fine &= numbers == np.floor(numbers)
        return fine

    def check_code(self, value: object) -> str | Problem | None:
        if is_missing(value):
            return None
        key = value
        if (isinstance(key, float | np.floating) and float(key).is_integer()) or isinstance(
            key, np.integer
        ):
            key = int(key)
        label = None
        if not _is_bool(value):
            try:
                label = self.code_labels.get(key)
            except TypeError:  # unhashable
                label = None
        if label is None:
            # A whole float (a column with gaps holds 999 as 999.0) is named as the code.
            shown = key if isinstance(key, int) and not _is_bool(value) else value
            return _unknown_code(shown, self.codes or ())
        return label

    def check_label(self, value: object) -> str | Problem | None:
        if not isinstance(value, str):
            if is_missing(value):
                return None
            return Problem(f"expected a text label, got {_describe(value)}")
        if value in _MISSING_LABELS:
            return None
        if len(value) > self.max_length:
            return Problem(f"label is longer than {self.max_length} characters")
        if not value.strip():
            return Problem("label must not be empty (leave the field out if unknown)")
        if self.quality_codes is not None and value not in self.quality_codes:
            return _unknown_code(value, self.quality_codes)
        if len(self.known_labels) < _KNOWN_LABELS_MAX:
            self.known_labels[value] = value
        return value
