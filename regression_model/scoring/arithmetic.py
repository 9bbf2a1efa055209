"""The arithmetic of the model's terms, written once for both ways a house is
scored (see ``TableScorer`` in ``scoring/tables.py``).

A batch is scored with NumPy, a block of rows at a time (one column per
term); a lone house, or up to four, row by row in Python floats, because
NumPy's overhead per call is most of a lone house's time
(``benchmarks/README.md``, "One house, row by row"). Both ways call the
functions below, so every formula is written once:

- those on a ``Number`` take a Python float (one term of one house) or an
  array (a block's column or columns) alike: their operators (``+``, ``-``,
  ``*``) round alike on both (IEEE 754 double, one operation at a time, in
  the order written);
- ``logs`` and ``weighted`` take arrays in both ways (a row's few values
  then): the log is NumPy's on a contiguous array whatever the batch, and
  two NumPy calls over a whole row cost less than a Python call per term.

So a house gets the same bits whichever way it is scored. What differs
between the two ways is only how a value is picked (``np.where`` or ``if``)
or found (``np.searchsorted`` or ``bisect``), which does no arithmetic.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

#: A Python float (one house) or a float64 array (a block of houses).
Number = TypeVar("Number", float, npt.NDArray[np.float64])


def years_before(reference: Number, year: Number) -> Number:
    """A year as the years before the reference (the sale)."""
    return reference - year


def logs(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``log(value + offset)``. NumPy may pick another loop (and last bit) for
    strided data than for contiguous data, so the log always runs on a
    C-contiguous array: a house gets the same bits alone and in any batch."""
    logged: np.ndarray = np.log(np.ascontiguousarray(values + offsets))
    return logged


def weighted(t: np.ndarray, center: np.ndarray, weight: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The values' linear terms, centred then weighed, into ``out`` (``t`` is
    overwritten)."""
    np.subtract(t, center, out=t)
    np.multiply(t, weight, out=out)
    return out


def straight(value: Number, slope: Number, t: Number, at: Number) -> Number:
    """A curve beyond its outer knot ``at``: a line through ``value``."""
    return value + slope * (t - at)


def polynomial(highest_first: Iterable[Number], t: Number, start: Number) -> Number:
    """``sum(c * (t - start) ** k for k, c in enumerate(coefficients))`` by
    Horner's rule, given the coefficients from the highest power down (an
    iterator, so that a block's are gathered one at a time, as used)."""
    offset = t - start
    coefficients = iter(highest_first)
    value = next(coefficients)
    for coefficient in coefficients:
        value = value * offset + coefficient
    return value


#: A curve's numbers as Python floats: inner knots, piece starts,
#: coefficients [piece][highest power first], below, above, first and last knot.
_CurveFloats = tuple[
    list[float],
    list[float],
    list[list[float]],
    tuple[float, float],
    tuple[float, float],
    float,
    float,
]


class Curve(Protocol):
    """A spline curve as the tables hold it (``tables.Spline``)."""

    @property
    def knots(self) -> list[float]: ...
    @property
    def coefficients(self) -> list[list[float]]: ...
    @property
    def below(self) -> tuple[float, float]: ...
    @property
    def above(self) -> tuple[float, float]: ...


class SplineCurves:
    """The spline curves of some numerical terms, as arrays padded to the
    same number of pieces and powers (zeros, which add nothing), evaluated
    all at once on a block (:meth:`on_block`) or one at a time on a float
    (:meth:`at`)."""

    def __init__(self, splines: Sequence[Curve]) -> None:
        pieces = max(len(s.coefficients) for s in splines)
        degree = max(len(p) for s in splines for p in s.coefficients) - 1
        self.low = np.array([s.knots[0] for s in splines])
        self.high = np.array([s.knots[-1] for s in splines])
        # Inner knots, padded with +inf (never passed): the piece of t is the
        # number of inner knots at or below it.
        self.inner = np.full((len(splines), max(pieces - 1, 1)), np.inf)
        self.starts = np.zeros((len(splines), pieces))
        # coefficients[power][spline, piece], padded with zeros
        self.coefficients = np.zeros((degree + 1, len(splines), pieces))
        for i, spline in enumerate(splines):
            self.inner[i, : len(spline.knots) - 2] = spline.knots[1:-1]
            self.starts[i, : len(spline.knots) - 1] = spline.knots[:-1]
            for piece, polynomial_piece in enumerate(spline.coefficients):
                self.coefficients[: len(polynomial_piece), i, piece] = polynomial_piece
        # flat index of each curve's first piece in starts and coefficients[power]
        self.first_slot = np.arange(len(splines), dtype=np.intp) * pieces
        self.below = np.array([s.below for s in splines]).T
        self.above = np.array([s.above for s in splines]).T
        # The same padded numbers as Python floats, curve by curve, for `at`.
        self._floats: list[_CurveFloats] = [
            (
                self.inner[i].tolist(),
                self.starts[i].tolist(),
                self.coefficients[::-1, i, :].T.tolist(),  # [piece][highest power first]
                spline.below,
                spline.above,
                spline.knots[0],
                spline.knots[-1],
            )
            for i, spline in enumerate(splines)
        ]

    def on_block(self, t: np.ndarray) -> np.ndarray:
        """The curves at ``t`` (rows x curves)."""
        inside = np.clip(t, self.low, self.high)
        # The piece of each value, by a binary search per curve, then each
        # value's coefficients gathered by flat index (curve, piece): the
        # same pieces as counting the knots and fancy indexing, in a third
        # less time.
        piece = np.empty(t.shape, dtype=np.intp)
        for curve, knots in enumerate(self.inner):
            piece[:, curve] = np.searchsorted(knots, inside[:, curve], side="right")
        piece += self.first_slot
        highest_first = (np.take(by_power, piece) for by_power in self.coefficients[::-1])
        value = polynomial(highest_first, inside, np.take(self.starts, piece))
        below, above = self.below, self.above
        value = np.where(t < self.low, straight(below[0], below[1], t, self.low), value)
        curves: np.ndarray = np.where(
            t > self.high, straight(above[0], above[1], t, self.high), value
        )
        return curves

    def at(self, curve: int, t: float) -> float:
        """Curve number ``curve`` at ``t``."""
        inner, starts, pieces, below, above, low, high = self._floats[curve]
        if t < low:
            return straight(below[0], below[1], t, low)
        if t > high:
            return straight(above[0], above[1], t, high)
        piece = bisect.bisect_right(inner, t)  # the inner knots at or below t
        return polynomial(pieces[piece], t, starts[piece])
