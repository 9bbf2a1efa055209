"""Validation a column at a time, for frames of many rows: numbers that are
plainly fine are recognised by NumPy in bulk (the rule's own range test,
element-wise) and only the others reach the rule's scalar check; labels are
factorised, so each distinct value is checked once. The verdicts are those of
the row-by-row driver (a property test holds them equal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from regression_model.scoring.house_key import MAX_KEY_LENGTH, NOT_PLAIN, house_key
from regression_model.scoring.rules import FieldRule, Problem, is_missing
from regression_model.scoring.schema import Schema, given_twice_message
from regression_model.scoring.validation_result import (
    NO_FEATURES,
    WHOLE_ROW,
    RowErrors,
    ValidationResult,
)

if TYPE_CHECKING:
    import pandas as pd

#: What pandas' type inference says of a column whose values can be hashed
#: together: in a mixed column 1, 1.0 and True are equal keys, yet each gets
#: its own message.
_UNIFORM_KINDS = frozenset({"string", "integer", "floating", "boolean", "empty"})
#: A house's id is checked before its fields: its errors come first in its row.
KEY_POSITION = -1


def validate_columns(frame: pd.DataFrame, schema: Schema) -> ValidationResult:
    """A column at a time: for frames of many rows."""
    import pandas as pd

    n_rows, n_numerical = len(frame), len(schema.numerical)
    found_errors = RowErrors()
    given = np.zeros(n_rows, dtype=bool)
    # Column-major: each variable is written (and later read) contiguously.
    numbers = np.full((n_rows, n_numerical), np.nan, order="F")
    codes = np.full((n_rows, len(schema.categorical)), -1, dtype=np.intp, order="F")
    categories: list[list[str]] = [[] for _ in schema.categorical]
    for position, rule in enumerate(schema.rules):
        found = _column(frame, rule)
        if found is None:
            continue
        values, fields = found
        for twice, sent in _given_twice(frame, rule):  # refused, whatever the values
            found_errors.add(twice, position, sent[0], given_twice_message(sent))
            values[twice], given[twice] = None, True  # values: _column's own array here
        if rule.numerical and values.dtype.kind in "iuf":
            numbers[:, position], present = _check_number_array(
                rule, np.asarray(values), position, fields, found_errors
            )
        else:
            if pd.api.types.infer_dtype(values, skipna=True) in _UNIFORM_KINDS:
                found_codes, uniques = pd.factorize(values, use_na_sentinel=True)
            else:
                found_codes, uniques = _factorize_by_type(np.array(values, dtype=object))
            if isinstance(uniques, pd.api.extensions.ExtensionArray) and (
                pd.api.types.is_string_dtype(uniques.dtype)  # as str objects: iterating an
            ):  # Arrow array costs 1.5 µs a cell
                uniques = np.asarray(uniques, dtype=object)
            verdicts = [rule.check(value) for value in uniques]
            # A value the rule reads as missing ("NA" for a label) gives nothing.
            present = np.array([v is not None for v in verdicts] + [False])[found_codes]
            bad = [i for i, v in enumerate(verdicts) if isinstance(v, Problem)]
            for row in np.flatnonzero(np.isin(found_codes, bad)) if bad else ():
                problem = verdicts[found_codes[row]]
                found_errors.add(int(row), position, fields(int(row)), problem.message)
            if rule.numerical:
                table = [v if isinstance(v, float) else np.nan for v in verdicts]
                numbers[:, position] = np.array([*table, np.nan])[found_codes]
            else:
                label_codes, labels = _accepted_labels(found_codes, verdicts)
                codes[:, position - n_numerical] = label_codes
                categories[position - n_numerical] = labels
        given |= present
    id_column = schema.config.id_column
    if id_column in frame.columns:
        _check_keys(frame[id_column].array, id_column, found_errors)
    for row in np.flatnonzero(~given):
        found_errors.add(int(row), len(schema.rules), WHOLE_ROW, NO_FEATURES)
    return ValidationResult(schema.config, numbers, codes, categories, found_errors.errors())


def _check_keys(values: Any, column: str, found_errors: RowErrors) -> None:
    """The houses' ids (``house_key``'s rule), checked in bulk where the
    column's type allows: integers are all keys; of floats and strings only
    the suspect ones are asked about."""
    import pandas as pd

    kind = values.dtype.kind
    if kind in "iu":
        return  # at most 20 digits: always a key
    if kind == "f":
        numbers = np.asarray(values, dtype="float64")
        with np.errstate(invalid="ignore"):
            suspect = (numbers != np.floor(numbers)) | (np.abs(numbers) > 2**53)
        rows: Any = np.flatnonzero(suspect & ~np.isnan(numbers))
    elif pd.api.types.infer_dtype(values, skipna=True) == "string":
        text = pd.Series(values, dtype="string")
        lengths = text.str.len()
        suspects = (lengths > MAX_KEY_LENGTH, lengths == 0, text.str.contains(NOT_PLAIN))
        # Each a nullable boolean, NA where the id is missing: no suspect there.
        found = [s.fillna(False).to_numpy(dtype=bool) for s in suspects]
        rows = np.flatnonzero(found[0] | found[1] | found[2])
    else:
        rows = range(len(values))
    for row in rows:
        value = values[row]
        why = None if is_missing(value) else house_key(value)[1]
        if why is not None:
            found_errors.add(int(row), KEY_POSITION, column, why)


def _column(frame: pd.DataFrame, rule: FieldRule) -> tuple[Any, Callable[[int], str]] | None:
    """A variable's values (an array: per row, the first of its names that is
    given) and a function naming, for a row, the column its value came from."""
    import pandas as pd

    sources = [s for s in rule.sources if s in frame.columns]
    if not sources:
        return None
    values = frame[sources[0]].array
    if len(sources) == 1:
        return values, lambda row: sources[0]
    used = np.zeros(len(frame), dtype=np.intp)
    values = np.array(values, dtype=object)
    for number, other in enumerate(sources[1:], start=1):
        alternative = np.array(frame[other].array, dtype=object)
        fallback = pd.isna(values) & ~pd.isna(alternative)
        values[fallback] = alternative[fallback]
        used[fallback] = number
    return values, lambda row: sources[used[row]]


def _given_twice(frame: pd.DataFrame, rule: FieldRule) -> list[tuple[int, list[str]]]:
    """The rows giving the variable a value under two or more of its names,
    each with those names in the order of the columns."""
    import pandas as pd

    columns = [c for c in frame.columns if c in rule.sources]
    if len(columns) < 2:
        return []
    given = {c: ~pd.isna(np.asarray(frame[c].array, dtype=object)) for c in columns}
    rows = np.flatnonzero(np.sum(list(given.values()), axis=0) > 1)
    return [(int(row), [c for c in columns if given[c][row]]) for row in rows]


def _check_number_array(
    rule: FieldRule,
    values: np.ndarray,
    position: int,
    fields: Callable[[int], str],
    found_errors: RowErrors,
) -> tuple[np.ndarray, np.ndarray]:
    column = values.astype("float64")
    present = ~np.isnan(column)
    if values.dtype.kind in "iu" and all(
        isinstance(rule.check_number(float(bound)), float)
        for bound in (values.min(), values.max())
    ):
        return column, present  # whole numbers, the least and the greatest taken: all are
    for row in np.flatnonzero(~rule.plainly_fine(column) & present):
        verdict = rule.check_number(float(column[row]))
        if isinstance(verdict, Problem):
            found_errors.add(int(row), position, fields(int(row)), verdict.message)
            column[row] = np.nan
    return column, present


def _factorize_by_type(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Codes into the distinct values (-1 where missing), values of different
    types kept apart; unhashable values each get their own entry."""
    codes = np.full(len(values), -1, dtype=np.intp)
    seen: dict[tuple[type, object], int] = {}
    uniques: list[Any] = []
    for row, value in enumerate(values):
        if is_missing(value):
            continue
        try:
            code = seen.setdefault((type(value), value), len(uniques))
        except TypeError:
            code = len(uniques)
        if code == len(uniques):
            uniques.append(value)
        codes[row] = code
    return codes, uniques


def _accepted_labels(codes: np.ndarray, verdicts: list[Any]) -> tuple[np.ndarray, list[str]]:
    """Codes into the distinct accepted labels (60 and "60" are one label)."""
    labels: dict[str, int] = {}
    remap = np.full(len(verdicts) + 1, -1, dtype=np.intp)
    for unique, verdict in enumerate(verdicts):
        if isinstance(verdict, str):
            remap[unique] = labels.setdefault(verdict, len(labels))
    return remap[codes], list(labels)
