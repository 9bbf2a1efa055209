"""The terms of the compiled model, as plain data: a spline curve, the term
of a numerical variable, the lookup of a categorical one. The price's model
(``scoring/tables.py``) and the model of a price range's width
(``PriceIntervals.difficulty``) are both sums of these terms."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any


class TablesFormatError(ValueError):
    """The tables file does not have the layout this package reads."""


@dataclass(frozen=True)
class Spline:
    """A curve of one number ``t``, in log-price: a polynomial piece on each
    interval between consecutive ``knots``, a straight line beyond them.

    On ``knots[i] <= t <= knots[i + 1]`` it is
    ``sum(c * (t - knots[i]) ** k for k, c in enumerate(coefficients[i]))``
    (at an inner knot both pieces agree; the later one is used). Below
    ``knots[0]`` it is ``below[0] + below[1] * (t - knots[0])``, above
    ``knots[-1]`` it is ``above[0] + above[1] * (t - knots[-1])``: the training
    range ends at the outer knots, and beyond them the curve goes on straight.
    """

    knots: list[float]
    coefficients: list[list[float]]
    below: tuple[float, float]
    above: tuple[float, float]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Spline:
        spline = cls(
            knots=[float(k) for k in data["knots"]],
            coefficients=[[float(c) for c in piece] for piece in data["coefficients"]],
            below=(float(data["below"][0]), float(data["below"][1])),
            above=(float(data["above"][0]), float(data["above"][1])),
        )
        if len(data["below"]) != 2 or len(data["above"]) != 2:
            raise TablesFormatError("malformed spline: below/above are [value, slope]")
        knots = spline.knots
        if len(knots) < 2 or any(b <= a for a, b in itertools.pairwise(knots)):
            raise TablesFormatError("malformed spline: knots must increase strictly")
        if len(spline.coefficients) != len(knots) - 1 or not all(spline.coefficients):
            raise TablesFormatError("malformed spline: one polynomial per interval")
        return spline

    @property
    def numbers(self) -> list[float]:
        return [*self.knots, *(c for p in self.coefficients for c in p), *self.below, *self.above]


@dataclass(frozen=True)
class NumericTerm:
    """The term of a numerical variable, in log-price:

    ``weight * (t - center) + spline(t) + (missing_effect if missing else present_effect)``

    where ``t`` is the value (``fill`` when missing), turned into
    ``reference - t`` when ``reference`` is set (years before the sale; the
    reference filled with ``reference_fill``), then ``log(t + log_offset)``
    when ``log_offset`` is set; ``spline(t)`` is 0 when there is no spline.
    """

    variable: str
    fill: float
    center: float
    weight: float
    missing_effect: float = 0.0
    present_effect: float = 0.0
    reference: str | None = None
    reference_fill: float | None = None
    log_offset: float | None = None
    spline: Spline | None = None

    @property
    def inputs(self) -> list[str]:
        return [self.variable] if self.reference is None else [self.variable, self.reference]


@dataclass(frozen=True)
class LookupTerm:
    """The term of a categorical variable, in log-price: ``table[label]``;
    ``missing`` when no label is given; ``other`` for a label the table does
    not list (grouped with the rare labels in training), or None when such a
    label cannot be scored (validation refuses it first)."""

    variable: str
    table: dict[str, float]
    missing: float
    other: float | None

    @property
    def inputs(self) -> list[str]:
        return [self.variable]

    def value(self, label: str) -> float:
        """The term for a (present) label."""
        value = self.table.get(label, self.other)
        if value is None:
            raise TablesFormatError(f"{self.variable}: no table entry for {label!r}")
        return value
