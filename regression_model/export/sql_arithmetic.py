"""The tables' arithmetic as SQL expressions (sqlglot), in as few operations
per row as keep a price within 1e-12 relative of the package's: the query's
speed is its number of operations per row, and its exactness needs the
tables' numbers, not NumPy's order of operations. Every constant is written
with 17 significant digits (read back as the same double) and every binary
operation is parenthesised (no engine may regroup it); a numerical term's
straight line and spline are folded into one polynomial per piece
(:func:`curve`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

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


def curve(t: exp.Expr, center: float, weight: float, spline: Spline | None) -> exp.Expr:
    """``weight * (t - center) + spline(t)``, a numerical term's value at
    ``t`` (NULL for a NULL ``t``). With a spline, the line is folded into each
    piece's polynomial in ``t - start`` (its constant gains ``weight * (start
    - center)``, its slope ``weight``), so a row evaluates one polynomial:
    beyond the outer knots, the spline's straight extensions; between them,
    the piece holding ``t`` (the number of inner knots at or below it, as
    ``SplineCurves`` counts)."""
    if spline is None:
        return mul(sub(t, number(center)), number(weight))

    def piece(lowest_first: Sequence[float], start: float) -> exp.Expr:
        folded = [*lowest_first, *[0.0] * (2 - len(lowest_first))]
        folded[0] += weight * (start - center)
        folded[1] += weight
        return _horner(folded, sub(t, number(start)))

    low, high = spline.knots[0], spline.knots[-1]
    pieces = [piece(c, start) for start, c in zip(spline.knots, spline.coefficients, strict=False)]
    value = exp.Case().when(exp.LT(this=t, expression=number(low)), piece(spline.below, low))
    for knot, inner in zip(spline.knots[1:-1], pieces, strict=False):
        value = value.when(exp.LT(this=t, expression=number(knot)), inner)
    value = value.when(exp.LTE(this=t, expression=number(high)), pieces[-1])
    # beyond the last knot, and a NULL t (which no condition holds for)
    return value.else_(piece(spline.above, high))
