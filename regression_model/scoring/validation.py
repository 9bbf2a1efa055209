"""Input validation: the one place that decides whether a row can be priced.

Every rule and every message lives in the checks of
:class:`~regression_model.scoring.rules.FieldRule`, derived from
``config.yml``. Two drivers apply them, with the same result (a property test
holds them equal):

- rows of Python values (lists of dicts, the API's JSON, small frames) are
  checked value by value, which for a handful of houses costs microseconds;
- larger DataFrames are checked a column at a time
  (:mod:`regression_model.scoring.column_validation`).

Each rejection is reported as ``{"row", "field", "message"}`` with the field
named as the client sent it. A field that is not a model input is never
dropped silently (:mod:`regression_model.scoring.unknown_fields`), nor is a
value of a field the row gives twice (under two of its names: the row is
refused, naming them; ``Schema.given_twice``). A row's
verdict never depends on the other rows in the batch, so chunks of a large
file validate exactly as the whole file would. pandas is imported only when a
DataFrame is given or asked for: the serving path does not need it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import numpy as np

from regression_model.config.core import ModelConfig, get_config
from regression_model.scoring.column_validation import KEY_POSITION, validate_columns
from regression_model.scoring.house_key import house_key
from regression_model.scoring.rules import NEVER_MISSING, Problem, is_missing, json_type
from regression_model.scoring.schema import Schema, given_twice_message, schema_for
from regression_model.scoring.tables import ROW_BY_ROW_MAX
from regression_model.scoring.unknown_fields import (
    NAMED_FIELDS_MAX,
    BatchMessages,
    IgnoredField,
    more_fields,
    shown_name,
)
from regression_model.scoring.validation_result import (
    NO_FEATURES,
    WHOLE_ROW,
    InputError,
    RowErrors,
    ValidationResult,
)

if TYPE_CHECKING:
    import pandas as pd

#: Integers nearer 0 than this are keys as they are (the common case, checked
#: without a call): fewer digits than a key may have.
_PLAIN_KEY = 10**18

#: What ``make_prediction`` and ``validate_inputs`` accept.
InputData: TypeAlias = "pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any]"


def validate_inputs(
    input_data: InputData,
    config: ModelConfig | None = None,
    *,
    strict: bool = False,
    refuse_non_objects: bool = False,
) -> ValidationResult:
    """Check every row against the input schema.

    Accepts a DataFrame, a list of dicts or one dict, with Kaggle's raw column
    names, their Python-safe names or the aliases in ``config.yml``; missing
    fields are allowed (the model imputes them). A field the model does not
    know is ignored and named in ``ignored`` (per row; for a frame, per
    column), or, with ``strict``, is an error of its row. A row of a list that
    is not a mapping is a ``TypeError``, or, with ``refuse_non_objects`` (parsed
    JSON, where it may be any value), an error of its row. The caller's data
    is never modified.
    """
    schema = schema_for(config or get_config().model)
    if not _is_frame(input_data):
        rows = _rows_of(input_data)
        return validate_rows(rows, schema, strict=strict, refuse_non_objects=refuse_non_objects)
    frame = cast("pd.DataFrame", input_data)
    if frame.columns.nlevels > 1:  # "GrLivArea" in it is True, frame["GrLivArea"] a frame
        raise ValueError(
            f"input_data has MultiIndex columns ({frame.columns.nlevels} levels): give "
            "one name per column (flatten them, e.g. with frame.droplevel)"
        )
    if not frame.columns.is_unique:
        repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise ValueError(f"input_data has repeated column names: {', '.join(repeated)}")
    unknown = schema.unknown_fields(frame.columns.tolist())  # iterating an Index: 60 µs
    # For a few houses, checking value by value is cheaper than pandas' and
    # NumPy's per-column overhead (the result is the same): the same bound as
    # scoring's, since both serve the API's one house.
    if len(frame) > ROW_BY_ROW_MAX:
        checked = validate_columns(frame, schema)  # reads the model's columns only
    else:
        # Dropping copies the frame (hundreds of µs for one house): only when needed.
        checked = validate_rows(
            frame_rows(frame.drop(columns=unknown) if unknown else frame), schema
        )
    if not unknown:
        return checked
    # A frame's columns are the same for every row: named once, or, in strict
    # mode, an error of every row (after the row's other errors, as for dicts).
    names = BatchMessages(schema.unknown, strict)
    messages = {shown_name(c): names.message(c) for c in unknown[:NAMED_FIELDS_MAX]}
    if len(unknown) > NAMED_FIELDS_MAX:
        messages[WHOLE_ROW] = more_fields(len(unknown) - NAMED_FIELDS_MAX, strict=strict)
    if not strict:
        checked.ignored = [IgnoredField(None, c, m) for c, m in messages.items()]
        return checked
    refused = [InputError(row, c, m) for row in range(len(frame)) for c, m in messages.items()]
    return ValidationResult(
        schema.config,
        checked.numbers,
        checked.codes,
        checked.categories,
        sorted([*checked.errors, *refused], key=lambda error: error.row),
    )


def _is_frame(value: object) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _rows_of(input_data: object) -> Sequence[object]:
    if isinstance(input_data, Mapping):
        return [input_data]
    if isinstance(input_data, Sequence) and not isinstance(input_data, str | bytes):
        return input_data
    raise TypeError(
        "input_data must be a pandas DataFrame, a list of dicts or one dict, "
        f"got {type(input_data).__name__}"
    )


def frame_rows(frame: pd.DataFrame) -> list[dict[Any, Any]]:
    """A small frame's rows as dicts, each value as its column holds it (a
    row of an all-numeric frame would otherwise turn 5 into 5.0)."""
    if all(dtype.kind in "iufb" for dtype in frame.dtypes):
        columns = [str(c) for c in frame.columns]
        return [dict(zip(columns, r, strict=True)) for r in frame.to_numpy(dtype=object)]
    return [frame.iloc[i].to_dict() for i in range(len(frame))]


def validate_rows(
    rows: Sequence[object],
    schema: Schema,
    *,
    strict: bool = False,
    refuse_non_objects: bool = False,
) -> ValidationResult:
    """Value by value: for Python rows (JSON, dicts) and small frames. A row
    that is not a mapping is a ``TypeError`` (an error of its row with
    ``refuse_non_objects``)."""
    n_numerical, n_rules = len(schema.numerical), len(schema.rules)
    found_errors = RowErrors()
    known_fields = schema.known_fields
    id_column = schema.config.id_column
    ignored: list[IgnoredField] = []
    names: BatchMessages | None = None
    numbers = [[math.nan] * n_numerical for _ in rows]
    codes = [[-1] * len(schema.categorical) for _ in rows]
    categories: list[dict[str, int]] = [{} for _ in schema.categorical]
    for row, house in enumerate(rows):
        if not isinstance(house, Mapping):
            if not refuse_non_objects:
                raise TypeError(
                    f"row {row}: expected a mapping of field names to values, "
                    f"got {type(house).__name__}"
                )
            message = f"expected a JSON object (one house), got {json_type(house)}"
            found_errors.add(row, 0, WHOLE_ROW, message)
            continue
        found = 0  # fields given a value (NA too: it is a key of the house)
        given = False  # whether a value that does not mean "missing" was found
        numbers_of_row, codes_of_row = numbers[row], codes[row]
        for position, name, other_names, check, known_labels in schema.row_plan:
            field = name  # the name the value came under, for its message
            value: Any = house.get(name)
            kind = type(value)
            # The types that are never missing skip the call (most values).
            if value is None or (kind not in NEVER_MISSING and is_missing(value)):
                for other in other_names:
                    value = house.get(other)
                    if not is_missing(value):
                        field = other
                        break
                else:
                    continue
                kind = type(value)
            found += 1
            # A label the rule has accepted before is looked up, not checked again.
            verdict = (known_labels.get(value) if kind is str else None) or check(value)
            if verdict is None:  # a value meaning "missing" ("NA" for a label)
                continue
            given = True
            if isinstance(verdict, Problem):
                found_errors.add(row, position, field, verdict.message)
            elif position < n_numerical:
                numbers_of_row[position] = verdict  # type: ignore[assignment]
            else:
                known = categories[position - n_numerical]
                codes_of_row[position - n_numerical] = known.setdefault(verdict, len(known))  # type: ignore[arg-type]
        key = house.get(id_column)
        if key is not None and not (type(key) is int and -_PLAIN_KEY < key < _PLAIN_KEY):
            why = None if is_missing(key) else house_key(key)[1]
            if why is not None:
                found_errors.add(row, KEY_POSITION, id_column, why)
        if not given:
            found_errors.add(row, n_rules, WHOLE_ROW, NO_FEATURES)
        # A field given under two names has two keys for one value found (its
        # rule read the first): only a row with more keys than values (the id
        # is a key, no value) can.
        elif found < len(house) - (id_column in house):
            for position, sent in schema.given_twice(house):
                found_errors.replace(row, position, sent[0], given_twice_message(sent))
        if not known_fields.issuperset(house):  # one C-level pass when all are known
            names = names or BatchMessages(schema.unknown, strict)
            unknown_fields = schema.unknown_fields(house)
            named = [
                (shown_name(unknown), names.message(unknown))
                for unknown in unknown_fields[:NAMED_FIELDS_MAX]
            ]
            if len(unknown_fields) > NAMED_FIELDS_MAX:
                count = len(unknown_fields) - NAMED_FIELDS_MAX
                named.append((WHOLE_ROW, more_fields(count, strict=strict)))
            for field, message in named:
                if strict:
                    found_errors.add(row, n_rules + 1, field, message)
                else:
                    ignored.append(IgnoredField(row, field, message))
    return ValidationResult(
        schema.config,
        np.array(numbers, dtype="float64").reshape(len(rows), n_numerical),
        np.array(codes, dtype=np.intp).reshape(len(rows), len(schema.categorical)),
        list(map(list, categories)),
        found_errors.errors(),
        ignored=ignored,
    )
