"""What validation gives: each row's model-ready values, and the errors of
the rows that cannot be priced, in the order clients read them."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from regression_model.config.core import ModelConfig
from regression_model.scoring.unknown_fields import IgnoredField

if TYPE_CHECKING:
    import pandas as pd

#: Field name used for errors about a whole row rather than one field.
WHOLE_ROW = "*"

#: Why a row that gives none of the model's inputs is refused.
NO_FEATURES = (
    "no feature values: send at least one of the model's input fields (see the input schema)"
)


@dataclass(frozen=True, order=True)
class InputError:
    """Why one row cannot be priced."""

    row: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RowErrors:
    """The errors found in a batch, collected in any order and listed in
    (row, feature position) order, as clients read them."""

    def __init__(self) -> None:
        self._found: list[tuple[int, int, str, str]] = []

    def add(self, row: int, position: int, field: str, message: str) -> None:
        self._found.append((row, position, field, message))

    def replace(self, row: int, position: int, field: str, message: str) -> None:
        """``row``'s error at ``position`` instead of any found there before,
        the row being the last one errors were added for."""
        found, start = self._found, len(self._found)
        while start and found[start - 1][0] == row:
            start -= 1
        found[start:] = [e for e in found[start:] if e[1] != position]
        self.add(row, position, field, message)

    def errors(self) -> list[InputError]:
        return [InputError(r, f, m) for r, _, f, m in sorted(self._found, key=lambda e: e[:2])]


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
        if errors:  # indexing with an empty list costs a microsecond per house
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
