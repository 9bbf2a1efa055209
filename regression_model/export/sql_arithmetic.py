"""The tables' arithmetic as SQL expressions (sqlglot), in as few operations
per row as keep a price within 1e-12 relative of the package's: the query's
speed is its number of operations per row, and its exactness needs the
tables' numbers, not NumPy's order of operations. Every constant is written
with 17 significant digits (read back as the same double) and every binary
operation is parenthesised (no engine may regroup it); a numerical term's
straight line and spline are folded into one polynomial per piece, in
``t`` less the term's :func:`origin` (:func:`curve`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from sqlglot import exp

from regression_model.scoring.terms import Spline


def number(value: float) -> exp.Expr:
    """A DOUBLE constant: 17 significant digits read back as the same double."""
    text = f"{abs(float(value)):.17e}"
    literal = exp.cast(exp.Literal.number(text), exp.DataType.Type.DOUBLE)
    return exp.Neg(this=literal) if math.copysign(1.0, value) < 0 else literal


def _grouped(node: exp.Expr) -> exp.Expr:
    return exp.Paren(this=node) if isinstance(node, exp.Binary | exp.Neg) else node


def add(left: exp.Expr, right: exp.Expr) -> exp.Expr:
    return exp.Add(this=_grouped(left), expression=_grouped(right))


def sub(left: exp.Expr, right: exp.Expr) -> exp.Expr:
    return exp.Sub(this=_grouped(left), expression=_grouped(right))


def mul(left: exp.Expr, right: exp.Expr) -> exp.Expr:
    return exp.Mul(this=_grouped(left), expression=_grouped(right))


def pairwise_sum(terms: Sequence[exp.Expr]) -> exp.Expr:
    """The terms summed as a balanced tree (rounding errors grow with its
    depth, not with the number of terms)."""
    if len(terms) == 1:
        return terms[0]
    half = len(terms) // 2
    return add(pairwise_sum(terms[:half]), pairwise_sum(terms[half:]))


def _horner(lowest_first: Sequence[float], offset: exp.Expr) -> exp.Expr:
    """A polynomial at ``offset`` by Horner's rule (leading zero coefficients
    skipped, so the highest one kept makes the result NULL with ``offset``)."""
    highest_first = list(reversed(lowest_first))
    while len(highest_first) > 2 and highest_first[0] == 0.0:
        highest_first.pop(0)
    value = number(highest_first[0])
    for coefficient in highest_first[1:]:
        value = add(mul(value, offset), number(coefficient))
    return value


def _recentred(
    lowest_first: Sequence[float], start: float, origin: float, center: float, weight: float
) -> list[Fraction]:
    """A piece ``sum(c * (t - start) ** k)`` plus the line ``weight * (t -
    center)`` as one polynomial in ``u = t - origin`` (``t - start`` is ``u +
    origin - start``), in exact arithmetic: only its coefficients' rounding
    to doubles is left."""
    shift = Fraction(origin) - Fraction(start)
    exact = [Fraction(c) for c in lowest_first] + [Fraction(0)] * (2 - len(lowest_first))
    degree = len(exact) - 1
    found = [
        sum(
            (exact[j] * math.comb(j, k) * shift ** (j - k) for j in range(k, degree + 1)),
            Fraction(0),
        )
        for k in range(degree + 1)
    ]
    found[0] += Fraction(weight) * (Fraction(origin) - Fraction(center))
    found[1] += Fraction(weight)
    return found


def _pieces(spline: Spline) -> list[tuple[Sequence[float], float, float, float]]:
    """(coefficients, start, low, high) of each piece, the straight lines
    beyond the outer knots taken one unit of ``t`` out."""
    knots = spline.knots
    inner = [
        (c, start, start, end)
        for c, start, end in zip(spline.coefficients, knots, knots[1:], strict=False)
    ]
    below = (spline.below, knots[0], knots[0] - 1.0, knots[0])
    above = (spline.above, knots[-1], knots[-1], knots[-1] + 1.0)
    return [below, *inner, above]


def origin(center: float, weight: float, spline: Spline | None) -> float:
    """Where the query measures a numerical term's ``t`` from: its column
    holds ``t - origin``, so each of the spline's pieces is a polynomial in
    that one column (two operations per degree, not three). The origin is
    the knot that keeps the pieces' terms smallest where they apply (a
    polynomial's rounding error grows with ``sum(|b_k| * |u| ** k)``): the
    bound stays within a few times the pieces' own (2.3 against 1.4 for
    ``TotalBsmtSF``, the largest; 1e-16 of it is far below 1e-12). 0 without
    a spline."""
    if spline is None:
        return 0.0

    def size(knot: float) -> float:
        largest = 0.0
        for lowest_first, start, low, high in _pieces(spline):
            far = max(abs(low - knot), abs(high - knot))
            found = _recentred(lowest_first, start, knot, center, weight)
            largest = max(largest, sum(abs(float(b)) * far**k for k, b in enumerate(found)))
        return largest

    return min(spline.knots, key=size)


def curve(
    u: exp.Expr, origin: float, center: float, weight: float, spline: Spline | None
) -> exp.Expr:
    """``weight * (t - center) + spline(t)``, a numerical term's value, from
    ``u = t - origin`` (NULL for a NULL ``u``). With a spline, each piece and
    the line are one polynomial in ``u`` (:func:`_recentred`), so a row
    evaluates one polynomial: beyond the outer knots, the spline's straight
    extensions; between them, the piece holding ``t`` (the number of inner
    knots at or below it, as ``SplineCurves`` counts)."""

    def at(value: float) -> exp.Expr:  # where ``u`` is when ``t`` is ``value``
        return number(float(Fraction(value) - Fraction(origin)))

    if spline is None:
        return mul(sub(u, at(center)), number(weight))

    def piece(lowest_first: Sequence[float], start: float) -> exp.Expr:
        found = _recentred(lowest_first, start, origin, center, weight)
        return _horner([float(b) for b in found], u)

    below, *inner, above = (piece(c, start) for c, start, _, _ in _pieces(spline))
    low, high = spline.knots[0], spline.knots[-1]
    value = exp.Case().when(exp.LT(this=u, expression=at(low)), below)
    for knot, polynomial in zip(spline.knots[1:-1], inner, strict=False):
        value = value.when(exp.LT(this=u, expression=at(knot)), polynomial)
    value = value.when(exp.LTE(this=u, expression=at(high)), inner[-1])
    # beyond the last knot, and a NULL u (which no condition holds for)
    return value.else_(above)
