"""Labels that are almost the model's: ``"rl"`` or ``"NAmes "`` for ``RL``
and ``NAmes``.

A label the tables do not list is priced as the rare labels were in training
(documented, and right for a label the model has never seen). But one that
differs from a listed label only by case or surrounding whitespace is far
more likely a slip than a new zoning class, and prices differently (MSZoning
``"rl"``: 24 % below ``"RL"``). The price stays the model's for the label
sent (the verdict is the rule's, alike in every engine and in SQL), and the
row gets a warning naming the label it probably meant, beside the unknown
fields' warnings.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from regression_model.scoring.schema import Schema
from regression_model.scoring.tables import ModelTables
from regression_model.scoring.unknown_fields import IgnoredField
from regression_model.scoring.validation_result import ValidationResult

#: Rows named one by one per label of a batch; the next such row's warning
#: counts the rest (a file of a million "rl" does not make a million warnings).
NAMED_ROWS_MAX = 20


def _folded(label: str) -> str:
    return label.strip().casefold()


class LabelHints:
    """The listed labels of each categorical variable, folded."""

    @classmethod
    def of(cls, schema: Schema, tables: ModelTables) -> LabelHints:
        """The hints of the labels the tables list (both engines price them alike)."""
        return cls(schema, {term.variable: list(term.table) for term in tables.lookup})

    def __init__(self, schema: Schema, listed: dict[str, Iterable[str]]) -> None:
        self.fields: list[str] = []
        self.listed: list[frozenset[str]] = []
        self.by_folded: list[dict[str, str]] = []
        for rule in schema.categorical:
            self.fields.append(rule.raw_names[-1] if rule.raw_names else rule.name)
            labels = list(listed.get(rule.name, ()))
            self.listed.append(frozenset(labels))
            self.by_folded.append({_folded(label): label for label in labels})

    def warnings(self, checked: ValidationResult) -> list[IgnoredField]:
        """A warning for each priced row whose label is a listed one's slip."""
        found: list[IgnoredField] = []
        for position, categories in enumerate(checked.categories):
            listed = self.listed[position]
            if listed.issuperset(categories):  # nearly always: one C-level pass
                continue
            by_folded = self.by_folded[position]
            for code, label in enumerate(categories):
                meant = None if label in listed else by_folded.get(_folded(label))
                if meant is None:
                    continue
                rows = np.flatnonzero((checked.codes[:, position] == code) & checked.valid)
                field = self.fields[position]
                message = (
                    f"label {label!r} is not one the model knows (priced as a rare {field}): "
                    f"did you mean {meant!r}? Labels are matched exactly, case and spaces"
                )
                found += [IgnoredField(int(row), field, message) for row in rows[:NAMED_ROWS_MAX]]
                if len(rows) > NAMED_ROWS_MAX:
                    rest = len(rows) - NAMED_ROWS_MAX
                    more = f"{message} (and so in {rest:,} more rows after this one)"
                    found[-1] = IgnoredField(found[-1].row, field, more)
        return found
