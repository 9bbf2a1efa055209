"""Input validation: the one place that decides whether a row can be priced.

The rules are derived from ``config.yml`` (feature lists, ranges, allowed
codes), checked column by column over the whole batch, and every rejection is
reported as ``{"row", "field", "message"}``. A row's verdict never depends on
the other rows in the batch, so chunks of a large file validate exactly as the
whole file would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

from regression_model.config.core import ModelConfig, get_config

#: What ``make_prediction`` and ``validate_inputs`` accept.
InputData = pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any]

#: Field name used for errors about a whole row rather than one field.
WHOLE_ROW = "*"

#: Marks a value that is not one of the allowed codes.
_INVALID = object()

#: Labels meaning "not recorded" in the Kaggle files.
_MISSING_LABELS = frozenset({"NA"})


@dataclass(frozen=True, order=True)
class InputError:
    """Why one row cannot be priced."""

    row: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ValidationResult(NamedTuple):
    """Rows that passed, as model-ready features indexed by input position, and
    the errors of those that did not."""

    features: pd.DataFrame
    errors: list[InputError]
    n_rows: int


def to_frame(input_data: InputData) -> pd.DataFrame:
    """A new frame with one row per input row, positions as index."""
    if isinstance(input_data, pd.DataFrame):
        frame = input_data.copy()
    elif isinstance(input_data, Mapping):
        frame = pd.DataFrame([dict(input_data)])
    elif isinstance(input_data, Sequence) and not isinstance(input_data, str | bytes):
        rows = list(input_data)
        for position, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise TypeError(
                    f"row {position}: expected a mapping of field names to values, "
                    f"got {type(row).__name__}"
                )
        frame = pd.DataFrame([dict(r) for r in rows])
    else:
        raise TypeError(
            "input_data must be a pandas DataFrame, a list of dicts or one dict, "
            f"got {type(input_data).__name__}"
        )
    return frame.reset_index(drop=True)


def _format_number(value: float) -> str:
    value = float(value)
    if abs(value) >= 1e15:
        return f"{value:g}"
    return str(int(value)) if value.is_integer() else repr(value)


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


def _describe(value: object) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


class _Collector:
    def __init__(self) -> None:
        self.errors: list[InputError] = []

    def add(self, mask: pd.Series, field: str, message: Any) -> None:
        """Record an error for every row where ``mask`` is true; ``message`` is
        a string or a function of the offending value."""
        rows = mask.index[mask.to_numpy(dtype=bool)]
        for row in rows:
            text = message if isinstance(message, str) else message(row)
            self.errors.append(InputError(int(row), field, text))


def _check_numerical(
    name: str, values: pd.Series, config: ModelConfig, report: _Collector, field: str
) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        numbers = pd.Series(np.nan, index=values.index)
        report.add(values.notna(), field, "expected a number, got a boolean")
        return numbers
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.astype("float64")
    else:
        present = values.notna()
        is_text = values.map(lambda v: isinstance(v, str | bytes))
        is_boolean = values.map(_is_bool)
        numbers = pd.to_numeric(values.where(~(is_text | is_boolean)), errors="coerce").astype(
            "float64"
        )
        report.add(
            is_text,
            field,
            lambda row: f"expected a number, got text {_describe(values[row])}",
        )
        report.add(is_boolean, field, "expected a number, got a boolean")
        unparsable = present & ~is_text & ~is_boolean & numbers.isna()
        report.add(
            unparsable,
            field,
            lambda row: f"expected a number, got {json_type(values[row])}",
        )
        numbers = numbers.where(~unparsable)
    infinite = numbers.abs() == np.inf
    report.add(infinite, field, "must be a finite number")
    numbers = numbers.where(~infinite)
    low, high = config.numerical_ranges[name]
    out_of_range = (numbers < low) | (numbers > high)
    report.add(
        out_of_range,
        field,
        lambda row: (
            f"{_format_number(numbers[row])} is out of range: must be between "
            f"{_format_number(low)} and {_format_number(high)}"
        ),
    )
    if name in config.integer_vars:
        fractional = numbers.notna() & ~out_of_range & (numbers % 1 != 0)
        report.add(
            fractional,
            field,
            lambda row: f"must be a whole number, got {_format_number(numbers[row])}",
        )
    return numbers


def _check_coded(
    name: str, values: pd.Series, config: ModelConfig, report: _Collector, field: str
) -> pd.Series:
    codes = config.coded_vars[name]
    # JSON clients send 60, CSV readers may give "60": both mean label "60".
    allowed: dict[object, str] = {str(code): str(code) for code in codes}
    allowed.update({code: str(code) for code in codes})

    def label(value: object) -> object:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return np.nan
        if _is_bool(value):
            return _INVALID
        if isinstance(value, float | np.floating) and float(value).is_integer():
            value = int(value)
        if isinstance(value, np.integer):
            value = int(value)
        try:
            return allowed.get(value, _INVALID)
        except TypeError:  # unhashable
            return _INVALID

    labels = values.map(label).astype(object)
    unknown = labels.map(lambda v: v is _INVALID)
    report.add(
        unknown,
        field,
        lambda row: (
            f"unknown code {_describe(values[row])}; expected one of {', '.join(map(str, codes))}"
        ),
    )
    return labels.where(~unknown, np.nan)


def _check_categorical(
    name: str, values: pd.Series, config: ModelConfig, report: _Collector, field: str
) -> pd.Series:
    if name in config.coded_vars:
        return _check_coded(name, values, config, report, field)
    labels = values.astype(object).where(values.notna(), np.nan)
    is_text = labels.map(lambda v: isinstance(v, str))
    not_text = labels.notna() & ~is_text
    report.add(
        not_text,
        field,
        lambda row: f"expected a text label, got {_describe(values[row])}",
    )
    labels = labels.where(is_text, np.nan)
    labels = labels.where(~labels.isin(_MISSING_LABELS), np.nan)
    text = labels.dropna()
    too_long = (text.str.len() > config.max_label_length).reindex(labels.index, fill_value=False)
    report.add(
        too_long,
        field,
        f"label is longer than {config.max_label_length} characters",
    )
    empty = (text.str.strip() == "").reindex(labels.index, fill_value=False)
    report.add(empty, field, "label must not be empty (leave the field out if unknown)")
    bad = too_long | empty
    if name in config.quality_vars:
        codes = config.quality_codes
        unknown = labels.notna() & ~bad & ~labels.isin(codes)
        report.add(
            unknown,
            field,
            lambda row: (
                f"unknown code {_describe(values[row])}; expected one of {', '.join(codes)}"
            ),
        )
        bad = bad | unknown
    return labels.where(~bad, np.nan)


def validate_inputs(input_data: InputData, config: ModelConfig | None = None) -> ValidationResult:
    """Check every row against the input schema.

    Accepts Kaggle's raw column names and their Python-safe names; missing
    fields are allowed (the model imputes them) and extra fields ignored. The
    caller's data is never modified.
    """
    config = config or get_config().model
    frame = to_frame(input_data)
    n_rows = len(frame)
    report = _Collector()

    columns: dict[str, pd.Series] = {}
    field_names: dict[str, str] = {}
    for name in config.features:
        raw_names = [raw for raw, safe in config.variables_to_rename.items() if safe == name]
        sources = [c for c in (name, *raw_names) if c in frame.columns]
        if not sources:
            columns[name] = pd.Series(np.nan, index=frame.index, dtype=object)
            field_names[name] = name
            continue
        values = frame[sources[0]]
        for other in sources[1:]:
            values = values.where(values.notna(), frame[other])
        columns[name] = values
        field_names[name] = sources[0]

    features: dict[str, pd.Series] = {}
    for name in config.numerical_vars:
        features[name] = _check_numerical(name, columns[name], config, report, field_names[name])
    for name in config.categorical_vars:
        features[name] = _check_categorical(name, columns[name], config, report, field_names[name])
    result = pd.DataFrame(features, index=frame.index)

    given = pd.concat(columns, axis=1).notna().any(axis=1) if columns else None
    if given is not None:
        report.add(
            ~given,
            WHOLE_ROW,
            "no feature values: send at least one of the model's input fields "
            "(see the input schema)",
        )
    errors = sorted(report.errors, key=lambda e: e.row)
    bad_rows = sorted({e.row for e in errors})
    return ValidationResult(features=result.drop(index=bad_rows), errors=errors, n_rows=n_rows)


def _field_description(name: str, config: ModelConfig) -> dict[str, Any]:
    if name in config.numerical_vars:
        low, high = config.numerical_ranges[name]
        kind: Any = int if name in config.integer_vars else float
        return {"annotation": kind | None, "ge": low, "le": high}
    if name in config.coded_vars:
        return {"annotation": Literal[tuple(config.coded_vars[name])] | None}
    if name in config.quality_vars:
        return {"annotation": Literal[tuple(config.quality_codes)] | None}
    return {"annotation": str | None, "max_length": config.max_label_length}


def house_input_model(config: ModelConfig | None = None) -> type[BaseModel]:
    """A pydantic model describing one house, generated from the same config
    as :func:`validate_inputs` — for documentation (OpenAPI) and typed
    clients. Every field is optional; Kaggle's raw names are the aliases."""
    config = config or get_config().model
    aliases = {safe: raw for raw, safe in config.variables_to_rename.items()}
    fields: dict[str, Any] = {}
    for name in config.features:
        spec = _field_description(name, config)
        annotation = spec.pop("annotation")
        fields[name] = (
            annotation,
            Field(default=None, alias=aliases.get(name), **spec),
        )
    return create_model(
        "HouseInput",
        __config__=ConfigDict(populate_by_name=True, extra="ignore"),
        **fields,
    )
