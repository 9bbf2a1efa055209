"""The scorer's arithmetic as SQL expressions (sqlglot), operation for
operation as ``scoring/arithmetic.py`` and ``TableScorer`` do it in NumPy, so
an engine computing in IEEE doubles gets the package's bits: every binary
operation parenthesised (no engine may regroup it), every constant the
tables' very double, the terms summed in NumPy's pairwise order."""

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
    """The terms summed in the order of NumPy's pairwise summation of a
    contiguous row (``contributions.sum(axis=1)``: eight running sums for up
    to 128 terms, halves beyond), so the sum has NumPy's bits."""
    n = len(terms)
    if n < 8:
        total: exp.Expr = number(-0.0)
        for term in terms:
            total = add(total, term)
        return total
    if n > 128:
        half = n // 2
        half -= half % 8
        return add(pairwise_sum(terms[:half]), pairwise_sum(terms[half:]))
    sums = list(terms[:8])
    whole = n - n % 8
    for start in range(8, whole, 8):
        sums = [add(sums[j], terms[start + j]) for j in range(8)]
    total = add(
        add(add(sums[0], sums[1]), add(sums[2], sums[3])),
        add(add(sums[4], sums[5]), add(sums[6], sums[7])),
    )
    for term in terms[whole:]:
        total = add(total, term)
    return total


def spline_curve(spline: Spline, t: exp.Expr) -> exp.Expr:
    """``SplineCurves``' value of one curve at ``t``: a line beyond the outer
    knots, else the piece holding ``t`` by Horner's rule (leading zero
    coefficients skipped: ``0 * offset + c`` is ``c`` exactly)."""
    low, high = spline.knots[0], spline.knots[-1]
    curve = exp.Case()
    curve = curve.when(
        exp.LT(this=t, expression=number(low)),
        add(number(spline.below[0]), mul(number(spline.below[1]), sub(t, number(low)))),
    )
    curve = curve.when(
        exp.GT(this=t, expression=number(high)),
        add(number(spline.above[0]), mul(number(spline.above[1]), sub(t, number(high)))),
    )
    pieces = []
    for start, coefficients in zip(spline.knots, spline.coefficients, strict=False):
        highest_first = list(reversed(coefficients))
        while len(highest_first) > 1 and highest_first[0] == 0.0:
            highest_first.pop(0)
        offset = sub(t, number(start))
        value = number(highest_first[0])
        for coefficient in highest_first[1:]:
            value = add(mul(value, offset), number(coefficient))
        pieces.append(value)
    # the piece of t: the number of inner knots at or below it
    for knot, piece in zip(spline.knots[1:-1], pieces, strict=False):
        curve = curve.when(exp.LT(this=t, expression=number(knot)), piece)
    return curve.else_(pieces[-1])
