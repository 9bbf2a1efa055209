"""Input validation: the one place that decides whether a row can be priced.

Every rule and every message lives in the scalar checks of :class:`FieldRule`,
derived from ``config.yml`` (feature lists, ranges, allowed codes). Two
drivers apply them, with the same result (a property test holds them equal):

- rows of Python values (lists of dicts, the API's JSON, small frames) are
  checked value by value, which for a handful of houses costs microseconds;
- larger DataFrames are checked a column at a time: numbers that are plainly
  fine are recognised by NumPy in bulk and only the others reach the scalar
  check; labels are factorised, so each distinct value is checked once.

Each rejection is reported as ``{"row", "field", "message"}`` with the field
named as the client sent it. A field that is not a model input is never
dropped silently: it is named back as ignored (with the known name it is
closest to), or, in strict mode, refused like a bad value. A row's verdict
never depends on the other rows in the batch, so chunks of a large file
validate exactly as the whole file would. pandas is imported only when a
DataFrame is given or asked for: the serving path does not need it.
"""

from __future__ import annotations

import decimal
import difflib
import functools
import math
import numbers
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

from regression_model.config.core import ModelConfig, get_config

if TYPE_CHECKING:
    import pandas as pd

#: What ``make_prediction`` and ``validate_inputs`` accept.
InputData: TypeAlias = "pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any]"

#: Field name used for errors about a whole row rather than one field.
WHOLE_ROW = "*"

#: Labels meaning "not recorded" in the Kaggle files.
_MISSING_LABELS = frozenset({"NA"})

#: Frames up to this many rows are checked value by value: for a few houses
#: that is cheaper than pandas' and NumPy's per-column overhead (the result
#: is the same).
_ROW_BY_ROW_MAX = 4

#: Type names of pandas' missing-value markers (pd.NA, pd.NaT), recognised
#: without importing pandas.
_PANDAS_MISSING = frozenset({"NAType", "NaTType"})


@dataclass(frozen=True, order=True)
class InputError:
    """Why one row cannot be priced."""

    row: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IgnoredField:
    """A field that is not a model input, named back to the caller.

    ``row`` is ``None`` when the field is a column of a frame or file, and so
    of every row."""

    row: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Problem(NamedTuple):
    """A value that cannot be used, and why."""

    message: str


def is_missing(value: object) -> bool:
    """None, NaN (any float type), pd.NA and pd.NaT mean "not given"."""
    if value is None:
        return True
    kind = type(value)
    if kind is str or kind is int:
        return False
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return type(value).__name__ in _PANDAS_MISSING


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


def _format_number(value: float) -> str:
    value = float(value)
    if abs(value) >= 1e15:
        return f"{value:g}"
    return str(int(value)) if value.is_integer() else repr(value)


def _describe(value: object) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


def _as_float(value: object) -> float | None:
    """A real number as a float (huge integers become ±inf); None otherwise."""
    if not isinstance(value, numbers.Real | decimal.Decimal):
        return None
    try:
        return float(value)
    except OverflowError:
        # Not math.copysign(math.inf, value): it converts value to a float too.
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]


#: Accepted labels remembered per variable (Ames has at most 25 per variable).
_KNOWN_LABELS_MAX = 256


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
        #: The names a client may use for this variable, preferred first: the
        #: model's, Kaggle's raw one, then other clients' spellings.
        self.sources = (
            name,
            *[raw for raw, safe in config.variables_to_rename.items() if safe == name],
            *[alias for alias, safe in config.input_aliases.items() if safe == name],
        )
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
                return self.check_float(float(value))  # type: ignore[arg-type]
            except OverflowError:
                pass
        if is_missing(value):
            return None
        if _is_bool(value):
            return Problem("expected a number, got a boolean")
        if isinstance(value, str | bytes):
            return Problem(f"expected a number, got text {_describe(value)}")
        number = _as_float(value)
        if number is None:
            return Problem(f"expected a number, got {json_type(value)}")
        return self.check_float(number)

    def check_float(self, number: float) -> float | Problem | None:
        if math.isnan(number):
            return None
        if math.isinf(number):
            return Problem("must be a finite number")
        if not self.low <= number <= self.high:
            return Problem(
                f"{_format_number(number)} is out of range: must be between "
                f"{_format_number(self.low)} and {_format_number(self.high)}"
            )
        if self.integer and not number.is_integer():
            return Problem(f"must be a whole number, got {_format_number(number)}")
        return number

    def plainly_fine(self, numbers: np.ndarray) -> np.ndarray:
        """Where ``check_float`` would return the number unchanged (vectorised)."""
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
            expected = ", ".join(map(str, self.codes or ()))
            # A whole float (a column with gaps holds 999 as 999.0) is named as the code.
            shown = key if isinstance(key, int) and not _is_bool(value) else value
            return Problem(f"unknown code {_describe(shown)}; expected one of {expected}")
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
            expected = ", ".join(self.quality_codes)
            return Problem(f"unknown code {_describe(value)}; expected one of {expected}")
        if len(self.known_labels) < _KNOWN_LABELS_MAX:
            self.known_labels[value] = value
        return value


#: Unknown names longer than this get no suggestion (the matcher's cost grows
#: with the name), and a batch gets suggestions for this many distinct unknown
#: names at most: a body of thousands of made-up keys costs microseconds each.
_SUGGEST_MAX_LENGTH = 64
_SUGGEST_MAX_NAMES = 32
#: Messages remembered for unknown names (bounded: made-up names cannot grow it).
_IGNORED_MESSAGES_MAX = 1024


#: Unknown field names are named back up to this many characters (a made-up
#: name of 100 kB is not echoed whole).
_SHOWN_NAME_MAX = 100


def shown_name(field: object) -> str:
    """A field name as it is named back to the caller: as sent, unless huge."""
    text = str(field)
    return text if len(text) <= _SHOWN_NAME_MAX else text[: _SHOWN_NAME_MAX - 3] + "..."


def _folded(name: str) -> str:
    """A name without case and separators: grlivarea, Gr_Liv_Area and GRLIVAREA
    all mean GrLivArea."""
    return re.sub(r"[\W_]+", "", name).lower()


class Schema:
    """The rules of every input variable, derived once from a config, and the
    field names a client may send."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.numerical = [FieldRule(name, config) for name in config.numerical_vars]
        self.categorical = [FieldRule(name, config) for name in config.categorical_vars]
        self.rules = [*self.numerical, *self.categorical]
        #: Every field name a client may send, and what it is: the model's name
        #: of the variable it carries, or the id column (a house's key, which
        #: is not an input).
        self.variable_of: dict[str, str] = {
            source: rule.name for rule in self.rules for source in rule.sources
        }
        self.variable_of[config.id_column] = config.id_column
        self.known_fields = frozenset(self.variable_of)
        #: Each name's place among its variable's names (0: the model's own).
        self._preference = {
            source: place for rule in self.rules for place, source in enumerate(rule.sources)
        }
        self._preference[config.id_column] = 0
        self._by_folded = {_folded(name): name for name in self.variable_of}
        self._ignored_messages: dict[tuple[object, bool], str] = {}

    def unknown_fields(self, fields: Iterable[object]) -> list[object]:
        """The names among ``fields`` that are neither inputs nor the id column."""
        return [field for field in fields if field not in self.known_fields]

    def suggestion(self, field: str) -> str | None:
        """The known name ``field`` is most likely a misspelling of, if any."""
        if len(field) > _SUGGEST_MAX_LENGTH:
            return None
        folded = _folded(field)
        if folded in self._by_folded:
            return self._by_folded[folded]
        close = difflib.get_close_matches(folded, self._by_folded, n=1, cutoff=0.8)
        return self._by_folded[close[0]] if close else None

    def ignored_message(self, field: object, *, strict: bool, suggest: bool = True) -> str:
        """What the caller is told about a field the model does not know."""
        message = self._ignored_messages.get((field, strict))
        if message is not None:
            return message
        what = "unknown field, refused (strict mode)" if strict else "unknown field, ignored"
        if field == self.config.target:
            what += ": the sale price is what the model predicts, not an input"
        closest = self.suggestion(str(field)) if suggest else None
        message = f"{what} — did you mean {closest}?" if closest else what
        if suggest and len(self._ignored_messages) < _IGNORED_MESSAGES_MAX:
            self._ignored_messages[(field, strict)] = message
        return message

    def model_fields(self, house: Mapping[Any, Any]) -> tuple[dict[str, Any], list[str]]:
        """A house's fields under the model's names (the first of a variable's
        names that is given, as validation reads it; and the id column), and
        the names of the fields the model does not know, as sent."""
        # One pass over what was sent (a house sends few of the 85 names).
        fields: dict[str, Any] = {}
        places: dict[str, int] = {}
        unknown: list[str] = []
        for field, value in house.items():
            variable = self.variable_of.get(field)
            if variable is None:
                unknown.append(shown_name(field))
            elif not is_missing(value):
                place = self._preference[field]
                if places.get(variable, place + 1) > place:
                    fields[variable], places[variable] = value, place
        return fields, unknown


class _Suggestions:
    """Messages about unknown fields for one batch: suggestions for the first
    ``_SUGGEST_MAX_NAMES`` distinct names, plain messages after that."""

    def __init__(self, schema: Schema, strict: bool) -> None:
        self.schema, self.strict = schema, strict
        self.seen: set[object] = set()

    def message(self, field: object) -> str:
        if field not in self.seen and len(self.seen) < _SUGGEST_MAX_NAMES:
            self.seen.add(field)
        return self.schema.ignored_message(field, strict=self.strict, suggest=field in self.seen)


_schemas: dict[int, Schema] = {}


def schema_for(config: ModelConfig) -> Schema:
    """The (cached) schema of a config."""
    key = id(config)
    schema = _schemas.get(key)
    if schema is None or schema.config is not config:
        schema = _schemas[key] = Schema(config)
    return schema


class ValidationResult:
    """The verdict on a batch: the model-ready values of every row, which rows
    passed, and the errors of those that did not.

    ``numbers`` has one column per numerical variable (config order), NaN
    where missing; ``codes`` one column per categorical variable, indexing
    that variable's ``categories`` (accepted labels), -1 where missing. Rows
    that were rejected hold no meaningful values.
    """

    def __init__(
        self,
        config: ModelConfig,
        numbers: np.ndarray,
        codes: np.ndarray,
        categories: list[list[str]],
        errors: list[InputError],
        *,
        ignored: Sequence[IgnoredField] = (),
    ) -> None:
        self.config = config
        self.n_rows = len(numbers)
        self.numbers = numbers
        self.codes = codes
        self.categories = categories
        self.errors = errors
        #: fields that are not model inputs, ignored (empty in strict mode:
        #: they are errors there)
        self.ignored = list(ignored)
        self.valid = np.ones(self.n_rows, dtype=bool)
        self.valid[[e.row for e in errors]] = False

    def labels(self, position: int, missing: object = None) -> np.ndarray:
        """The labels of categorical variable ``position``, one per row."""
        lookup = np.array([*self.categories[position], missing], dtype=object)
        return lookup[self.codes[:, position]]  # type: ignore[no-any-return]

    @functools.cached_property
    def features(self) -> pd.DataFrame:
        """The rows that passed, as the fitted pipeline takes them: one column
        per feature (numerical float64, categorical object with NaN for
        missing), indexed by input position."""
        import pandas as pd

        index = np.flatnonzero(self.valid)
        columns: dict[str, pd.Series] = {}
        for position, name in enumerate(self.config.numerical_vars):
            columns[name] = pd.Series(self.numbers[index, position], index=index)
        for position, name in enumerate(self.config.categorical_vars):
            labels = self.labels(position, missing=np.nan)[index]
            columns[name] = pd.Series(labels, index=index, dtype=object)
        return pd.DataFrame(columns, index=pd.Index(index))


def _is_frame(value: object) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _rows_of(input_data: object) -> Sequence[Mapping[str, Any]]:
    if isinstance(input_data, Mapping):
        return [input_data]
    if isinstance(input_data, Sequence) and not isinstance(input_data, str | bytes):
        for position, row in enumerate(input_data):
            if not isinstance(row, Mapping):
                raise TypeError(
                    f"row {position}: expected a mapping of field names to values, "
                    f"got {type(row).__name__}"
                )
        return input_data
    raise TypeError(
        "input_data must be a pandas DataFrame, a list of dicts or one dict, "
        f"got {type(input_data).__name__}"
    )


class _Report:
    """Errors in (row, feature position) order, as clients read them."""

    def __init__(self) -> None:
        self._found: list[tuple[int, int, str, str]] = []

    def add(self, row: int, position: int, field: str, message: str) -> None:
        self._found.append((row, position, field, message))

    def errors(self) -> list[InputError]:
        return [InputError(r, f, m) for r, _, f, m in sorted(self._found, key=lambda e: e[:2])]


_NO_FEATURES = (
    "no feature values: send at least one of the model's input fields (see the input schema)"
)


def validate_inputs(
    input_data: InputData, config: ModelConfig | None = None, *, strict: bool = False
) -> ValidationResult:
    """Check every row against the input schema.

    Accepts a DataFrame, a list of dicts or one dict, with Kaggle's raw column
    names, their Python-safe names or the aliases in ``config.yml``; missing
    fields are allowed (the model imputes them). A field the model does not
    know is ignored and named in ``ignored`` (per row; for a frame, per
    column), or, with ``strict``, is an error of its row. The caller's data is
    never modified.
    """
    schema = schema_for(config or get_config().model)
    if not _is_frame(input_data):
        return validate_rows(_rows_of(input_data), schema, strict=strict)
    frame = cast("pd.DataFrame", input_data)
    if not frame.columns.is_unique:
        repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise ValueError(f"input_data has repeated column names: {', '.join(repeated)}")
    unknown = schema.unknown_fields(frame.columns.tolist())  # iterating an Index: 60 µs
    if len(frame) > _ROW_BY_ROW_MAX:
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
    names = _Suggestions(schema, strict)
    messages = {column: names.message(column) for column in unknown}
    if not strict:
        checked.ignored = [IgnoredField(None, shown_name(c), m) for c, m in messages.items()]
        return checked
    refused = [
        InputError(row, shown_name(c), m) for row in range(len(frame)) for c, m in messages.items()
    ]
    return ValidationResult(
        schema.config,
        checked.numbers,
        checked.codes,
        checked.categories,
        sorted([*checked.errors, *refused], key=lambda error: error.row),
    )


def frame_rows(frame: pd.DataFrame) -> list[dict[Any, Any]]:
    """A small frame's rows as dicts, each value as its column holds it (a
    row of an all-numeric frame would otherwise turn 5 into 5.0)."""
    if all(dtype.kind in "iufb" for dtype in frame.dtypes):
        columns = [str(c) for c in frame.columns]
        return [dict(zip(columns, r, strict=True)) for r in frame.to_numpy(dtype=object)]
    return [frame.iloc[i].to_dict() for i in range(len(frame))]


def validate_rows(
    rows: Sequence[Mapping[Any, Any]], schema: Schema, *, strict: bool = False
) -> ValidationResult:
    """Value by value: for Python rows (JSON, dicts) and small frames."""
    n_numerical, n_rules = len(schema.numerical), len(schema.rules)
    report = _Report()
    known_fields = schema.known_fields
    ignored: list[IgnoredField] = []
    names: _Suggestions | None = None
    numbers = [[math.nan] * n_numerical for _ in rows]
    codes = [[-1] * len(schema.categorical) for _ in rows]
    categories: list[dict[str, int]] = [{} for _ in schema.categorical]
    for row, house in enumerate(rows):
        given = False
        numbers_of_row, codes_of_row = numbers[row], codes[row]
        for position, rule in enumerate(schema.rules):
            field = rule.name
            value: Any = house.get(field)
            kind = type(value)
            # Text and integers are never missing: no call for them.
            if kind is not str and kind is not int and (value is None or is_missing(value)):
                for field in rule.sources[1:]:
                    value = house.get(field)
                    if not is_missing(value):
                        break
                else:
                    continue
                kind = type(value)
            given = True
            # The plain cases inline, with the verdicts rule.check would give
            # (a third of the time of validating a house); the rest asks it.
            verdict: float | str | Problem | None
            if kind is str and (label := rule.known_labels.get(value)) is not None:
                verdict = label
            elif (kind is float or kind is int) and rule.numerical:
                try:
                    number = float(value)
                except OverflowError:
                    number = math.nan  # rule.check says why
                if rule.low <= number <= rule.high and (not rule.integer or number.is_integer()):
                    verdict = number
                else:
                    verdict = rule.check(value)
            else:
                verdict = rule.check(value)
            if verdict is None:
                continue
            if isinstance(verdict, Problem):
                report.add(row, position, field, verdict.message)
            elif position < n_numerical:
                numbers_of_row[position] = verdict  # type: ignore[assignment]
            else:
                known = categories[position - n_numerical]
                codes_of_row[position - n_numerical] = known.setdefault(verdict, len(known))  # type: ignore[arg-type]
        if not given:
            report.add(row, n_rules, WHOLE_ROW, _NO_FEATURES)
        if not known_fields.issuperset(house):  # one C-level pass when all are known
            names = names or _Suggestions(schema, strict)
            for name in schema.unknown_fields(house):
                if strict:
                    report.add(row, n_rules + 1, shown_name(name), names.message(name))
                else:
                    ignored.append(IgnoredField(row, shown_name(name), names.message(name)))
    return ValidationResult(
        schema.config,
        np.array(numbers, dtype="float64").reshape(len(rows), n_numerical),
        np.array(codes, dtype=np.intp).reshape(len(rows), len(schema.categorical)),
        [list(c) for c in categories],
        report.errors(),
        ignored=ignored,
    )


def validate_columns(frame: pd.DataFrame, schema: Schema) -> ValidationResult:
    """A column at a time: for frames of many rows."""
    import pandas as pd

    n_rows, n_numerical = len(frame), len(schema.numerical)
    report = _Report()
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
        if rule.numerical and values.dtype.kind in "iuf":
            numbers[:, position], present = _check_number_array(
                rule, np.asarray(values), position, fields, report
            )
        else:
            if pd.api.types.infer_dtype(values, skipna=True) in _UNIFORM_KINDS:
                found_codes, uniques = pd.factorize(values, use_na_sentinel=True)
            else:
                found_codes, uniques = _factorize_by_type(np.array(values, dtype=object))
            verdicts = [rule.check(value) for value in uniques]
            present = found_codes >= 0
            bad = [i for i, v in enumerate(verdicts) if isinstance(v, Problem)]
            for row in np.flatnonzero(np.isin(found_codes, bad)) if bad else ():
                problem = verdicts[found_codes[row]]
                report.add(int(row), position, fields(int(row)), problem.message)
            if rule.numerical:
                table = [v if isinstance(v, float) else np.nan for v in verdicts]
                numbers[:, position] = np.array([*table, np.nan])[found_codes]
            else:
                label_codes, labels = _accepted_labels(found_codes, verdicts)
                codes[:, position - n_numerical] = label_codes
                categories[position - n_numerical] = labels
        given |= present
    for row in np.flatnonzero(~given):
        report.add(int(row), len(schema.rules), WHOLE_ROW, _NO_FEATURES)
    return ValidationResult(schema.config, numbers, codes, categories, report.errors())


def _column(frame: pd.DataFrame, rule: FieldRule) -> tuple[Any, Any] | None:
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


def _check_number_array(
    rule: FieldRule, values: np.ndarray, position: int, fields: Any, report: _Report
) -> tuple[np.ndarray, np.ndarray]:
    column = values.astype("float64")
    present = ~np.isnan(column)
    if values.dtype.kind in "iu" and rule.low <= values.min() and values.max() <= rule.high:
        return column, present  # whole numbers, all in range: nothing to report
    for row in np.flatnonzero(~rule.plainly_fine(column) & present):
        verdict = rule.check_float(float(column[row]))
        if isinstance(verdict, Problem):
            report.add(int(row), position, fields(int(row)), verdict.message)
            column[row] = np.nan
    return column, present


#: What pandas' type inference says of a column whose values can be hashed
#: together: in a mixed column 1, 1.0 and True are equal keys, yet each gets
#: its own message.
_UNIFORM_KINDS = frozenset({"string", "integer", "floating", "boolean", "empty"})


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


#: A label with at least one character that ``str.strip`` keeps, as a regular
#: expression that JSON Schema, Python and Rust read alike (every character
#: Python calls whitespace, listed): the documented form of "not empty".
LABEL_PATTERN = (
    "[^" + "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x10000)) if c.isspace()) + "]"
)


def _field_description(name: str, config: ModelConfig) -> dict[str, Any]:
    if name in config.numerical_vars:
        low, high = config.numerical_ranges[name]
        kind: Any = int if name in config.integer_vars else float
        return {"annotation": kind | None, "ge": low, "le": high}
    if name in config.coded_vars:
        return {"annotation": Literal[tuple(config.coded_vars[name])] | None}
    if name in config.quality_vars:
        return {"annotation": Literal[tuple(config.quality_codes)] | None}
    return {
        "annotation": str | None,
        "min_length": 1,
        "max_length": config.max_label_length,
        "pattern": LABEL_PATTERN,
    }


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


def model_fields(
    house: Mapping[Any, Any], config: ModelConfig | None = None
) -> tuple[dict[str, Any], list[str]]:
    """A house's fields under the model's names (aliases resolved, as
    validation reads them; plus the id column), and the names of the fields
    the model does not know, as sent: what the prediction log keeps."""
    return schema_for(config or get_config().model).model_fields(house)
