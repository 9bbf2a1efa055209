"""A sum of the tables' terms in SQL, written once for the two sums the query
takes: the price's, and the difficulty that scales its ranges
(``PriceIntervals.difficulty``), both of :class:`LookupTerm` and
:class:`NumericTerm` (``scoring/terms.py``), as ``TableScorer`` sums them.

Each stage of the query (``export/sql.py``) reads the one before's columns by
name: ``v_<variable>`` (a label as given), ``x_<variable>`` (a value the
arithmetic may take, NULL when missing), then per sum a lookup's value for
the labels its table lists, each numerical term's ``t``, and each term's
value in log-price. The price's columns are those ``explain`` shows
(``log_effect_<variable>``); the difficulty's carry a prefix. A difficulty
term whose ``t`` is made as the price's term of its variable makes it (fill,
years before, log) reads the price's ``t`` instead of computing it again.
"""

from __future__ import annotations

from sqlglot import exp

from regression_model.export.sql_arithmetic import (
    add,
    mul,
    number,
    pairwise_sum,
    spline_curve,
    sub,
)
from regression_model.scoring.rules import FieldRule
from regression_model.scoring.tables import ModelTables
from regression_model.scoring.terms import LookupTerm, NumericTerm


def column(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def text(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def _made_alike(term: NumericTerm, other: NumericTerm) -> bool:
    """Whether two terms of a variable compute the same ``t``."""
    return (term.fill, term.reference, term.reference_fill, term.log_offset) == (
        other.fill,
        other.reference,
        other.reference_fill,
        other.log_offset,
    )


#: A ``t`` nearer 0 than this is 0 where an underflow is an error (see
#: ``TermSum.transformed``).
_TINY = 1e-100


class TermSum:
    """One sum of terms in the query: ``exp(intercept + the terms)`` is the
    price, or a range's scale; its columns' names start with ``prefix``."""

    def __init__(
        self,
        tables: ModelTables,
        prefix: str = "",
        *,
        shares_with: ModelTables | None = None,
        underflow_is_an_error: bool = False,
    ) -> None:
        self.tables, self.prefix = tables, prefix
        self.underflow_is_an_error = underflow_is_an_error
        theirs = {term.variable: term for term in shares_with.numeric} if shares_with else {}
        #: variables whose ``t`` is the other sum's
        self.shared = {
            term.variable
            for term in tables.numeric
            if term.variable in theirs and _made_alike(term, theirs[term.variable])
        }

    def listed_name(self, term: LookupTerm) -> str:
        return f"{self.prefix}k_{term.variable}"

    def t_name(self, term: NumericTerm) -> str:
        shared = term.variable in self.shared
        return f"{'' if shared else self.prefix}t_{term.variable}"

    @property
    def term_names(self) -> list[str]:
        return [f"{self.prefix}log_effect_{term.variable}" for term in self.tables.terms]

    def listed(self, rules: dict[str, FieldRule]) -> list[exp.Expr]:
        """Each lookup's value for the labels its table lists that the rule
        takes as they are (NULL for any other label, or none): for the price,
        one pass of comparisons serves both the check and the term."""
        values = []
        for term in self.tables.lookup:
            rule, label = rules[term.variable], column(f"v_{term.variable}")
            value = exp.Case()
            for known, effect in term.table.items():
                if rule.check(known) == known:
                    value = value.when(exp.EQ(this=label, expression=text(known)), number(effect))
            values.append(value.as_(self.listed_name(term), quoted=True))
        return values

    def transformed(self) -> list[exp.Expr]:
        """``t`` of each numerical term not shared: filled, years before, logged."""
        values = []
        for term in self.tables.numeric:
            if term.variable in self.shared:
                continue
            t: exp.Expr = exp.Coalesce(
                this=column(f"x_{term.variable}"), expressions=[number(term.fill)]
            )
            if term.reference is not None:
                year = exp.Coalesce(
                    this=column(f"x_{term.reference}"),
                    expressions=[number(term.reference_fill)],  # type: ignore[arg-type]
                )
                t = sub(year, t)
            if term.log_offset is not None:
                t = exp.Ln(this=add(t, number(term.log_offset)))
            if self.underflow_is_an_error:
                t = self._flushed(t)
            values.append(t.as_(self.t_name(term), quoted=True))
        return values

    @staticmethod
    def _flushed(t: exp.Expr) -> exp.Expr:
        """``t``, 0 when within :data:`_TINY` of it. PostgreSQL raises an error
        where a product underflows to zero (IEEE gives 0): a spline's
        ``(t - knot) ** 3`` at ``t = 1e-188`` does. Flushing changes no
        price's bits: in ``weight * (t - center)`` and a piece's
        ``c0 + offset * (...)`` such a ``t`` is far below the last bit of
        the other numbers added (the intercept's at least)."""
        tiny = exp.LT(this=exp.Abs(this=t), expression=number(_TINY))
        return exp.Case().when(tiny, number(0.0)).else_(t)

    def terms(self) -> list[exp.Expr]:
        """Each term's value in log-price, in the tables' order."""
        values = [*map(self._numeric, self.tables.numeric), *map(self._lookup, self.tables.lookup)]
        return [v.as_(n, quoted=True) for v, n in zip(values, self.term_names, strict=True)]

    def _numeric(self, term: NumericTerm) -> exp.Expr:
        t = column(self.t_name(term))
        value = mul(sub(t, number(term.center)), number(term.weight))
        if term.missing_effect or term.present_effect:
            missing = column(f"x_{term.variable}").is_(exp.null())
            effect = exp.Case().when(missing, number(term.missing_effect))
            value = add(value, effect.else_(number(term.present_effect)))
        if term.spline is not None:
            value = add(value, spline_curve(term.spline, t))
        return value

    def _lookup(self, term: LookupTerm) -> exp.Expr:
        listed = column(self.listed_name(term))
        value = exp.Case().when(column(f"x_{term.variable}").is_(exp.null()), number(term.missing))
        value = value.when(listed.is_(exp.null()).not_(), listed)
        return value.else_(exp.null() if term.other is None else number(term.other))

    def total(self) -> exp.Expr:
        """The terms summed in NumPy's order, plus the intercept: the log of
        the price, or of the scale."""
        terms = [column(name) for name in self.term_names]
        return add(pairwise_sum(terms), number(self.tables.intercept))
