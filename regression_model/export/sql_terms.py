"""A sum of the tables' terms in SQL, written once for the two sums the query
takes: the price's, and the difficulty that scales its ranges
(``PriceIntervals.difficulty``), both of :class:`LookupTerm` and
:class:`NumericTerm` (``scoring/terms.py``), as ``TableScorer`` sums them.

A term is NULL when a value it reads breaks its rule, so a sum is NULL
exactly when the row must be refused: the query looks for the reason only
then (``export/sql.py``). The columns a sum reads come from :class:`Inputs`:
a number filled where missing (NULL when it breaks its rule), and the
conditions on a label. Each numerical term's ``t``, less its origin, is a
column of its own (splines read it in several places); the price's terms
are those ``explain`` shows (``log_effect_<variable>``); the difficulty's
carry a prefix. A difficulty term whose ``t`` is made as the price's term of
its variable makes it (fill, years before, log) reads the price's ``t``
instead of computing it again.
"""

from __future__ import annotations

from typing import Protocol

from sqlglot import exp

from regression_model.export.sql_arithmetic import (
    add,
    curve,
    number,
    origin,
    pairwise_sum,
    sub,
)
from regression_model.scoring.tables import ModelTables
from regression_model.scoring.terms import LookupTerm, NumericTerm


def column(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def text(value: str) -> exp.Literal:
    return exp.Literal.string(value)


class Inputs(Protocol):
    """What a sum of terms reads of a row, by variable (``export/sql.py``)."""

    def filled(self, variable: str, fill: float) -> exp.Expr:
        """The number, ``fill`` when missing, NULL when it breaks its rule."""
        ...

    def missing(self, variable: str) -> exp.Expr:
        """Whether no value is given."""
        ...

    def order(self, variable: str, labels: list[str]) -> list[str | None]:
        """The labels and None (no label given), the commonest first: a
        ``CASE`` tests its branches in turn, so a row meets its own after
        the fewest tests (DuckDB: 15 % of the query's time)."""
        ...

    def is_label(self, variable: str, label: str) -> exp.Expr | None:
        """Whether the value is this label of the tables (None: the rule
        would not take the label as it is, so no value is)."""
        ...

    def takes_other(self, variable: str) -> exp.Expr:
        """Whether the rule takes a given value that is no label of the tables."""
        ...

    def position(self, variable: str) -> tuple[exp.Expr, list[str | None]] | None:
        """The column of the label's place (from 1) in a list of labels, and
        the list (None and "NA": no label given); NULL for a label not in
        it. None where a lookup tests the labels in turn instead."""
        ...


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
        #: what each ``t`` column is measured from (``sql_arithmetic.origin``)
        self.origins = {
            term.variable: origin(made.center, made.weight, made.spline)
            for term in tables.numeric
            for made in [theirs[term.variable] if term.variable in self.shared else term]
        }

    def t_name(self, term: NumericTerm) -> str:
        shared = term.variable in self.shared
        return f"{'' if shared else self.prefix}t_{term.variable}"

    def term_name(self, term: LookupTerm | NumericTerm) -> str:
        return f"{self.prefix}log_effect_{term.variable}"

    @property
    def term_names(self) -> list[str]:
        return [self.term_name(term) for term in self.tables.terms]

    def fills(self) -> list[tuple[str, float]]:
        """(variable, fill) of each filled number the ``t`` columns read."""
        found = []
        for term in self.tables.numeric:
            if term.variable not in self.shared:
                found.append((term.variable, term.fill))
                if term.reference is not None:
                    assert term.reference_fill is not None  # NumericTerm's contract
                    found.append((term.reference, term.reference_fill))
        return found

    def transformed(self, inputs: Inputs) -> list[exp.Expr]:
        """``t`` of each numerical term not shared: filled, years before, logged."""
        values = []
        for term in self.tables.numeric:
            if term.variable in self.shared:
                continue
            t = inputs.filled(term.variable, term.fill)
            if term.reference is not None:
                assert term.reference_fill is not None  # NumericTerm's contract
                t = sub(inputs.filled(term.reference, term.reference_fill), t)
            if term.log_offset is not None:  # x + 0.0 is x for every x the rules take
                t = exp.Ln(this=add(t, number(term.log_offset)) if term.log_offset else t)
            if self.underflow_is_an_error:
                t = self._flushed(t)
            if self.origins[term.variable]:
                t = sub(t, number(self.origins[term.variable]))
            values.append(t.as_(self.t_name(term), quoted=True))
        return values

    @staticmethod
    def _flushed(t: exp.Expr) -> exp.Expr:
        """``t``, 0 when within :data:`_TINY` of it. PostgreSQL raises an error
        where a product underflows to zero (IEEE gives 0): a spline's
        ``(t - knot) ** 3`` at ``t = 1e-188`` does. Flushing changes no
        price: in ``weight * (t - center)`` and a piece's ``c0 + offset *
        (...)`` such a ``t`` is far below the last bit of the other numbers
        added (the intercept's at least)."""
        tiny = exp.LT(this=exp.Abs(this=t), expression=number(_TINY))
        return exp.Case().when(tiny, number(0.0)).else_(t)

    def terms(self, inputs: Inputs) -> list[exp.Expr]:
        """Each term's value in log-price, in the tables' order."""
        numeric = [self._numeric(term, inputs) for term in self.tables.numeric]
        lookup = [self._lookup(term, inputs) for term in self.tables.lookup]
        return [
            value.as_(name, quoted=True)
            for value, name in zip([*numeric, *lookup], self.term_names, strict=True)
        ]

    def _numeric(self, term: NumericTerm, inputs: Inputs) -> exp.Expr:
        u, at = column(self.t_name(term)), self.origins[term.variable]
        value = curve(u, at, term.center, term.weight, term.spline)
        if term.missing_effect or term.present_effect:
            effect = exp.Case().when(inputs.missing(term.variable), number(term.missing_effect))
            value = add(value, effect.else_(number(term.present_effect)))
        return value

    def _lookup(self, term: LookupTerm, inputs: Inputs) -> exp.Expr:
        """The table's value of the label; ``missing`` when none is given;
        ``other`` for one the table does not list that the rule takes (NULL
        when the rule refuses it, or the table has no ``other``). Read from
        the label's place in a list, it is NULL for a label the list lacks
        too: :meth:`total` completes such a row."""
        if (found := inputs.position(term.variable)) is not None:
            position, listed = found
            values = [self._listed_value(term, label) for label in listed]
            return exp.Bracket(this=exp.Array(expressions=values), expressions=[position])
        value = exp.Case()
        for label in inputs.order(term.variable, list(term.table)):
            if label is None:
                value = value.when(inputs.missing(term.variable), number(term.missing))
            elif (condition := inputs.is_label(term.variable, label)) is not None:
                value = value.when(condition, number(term.table[label]))
        if term.other is not None:
            value = value.when(inputs.takes_other(term.variable), number(term.other))
        return value

    @staticmethod
    def _listed_value(term: LookupTerm, label: str | None) -> exp.Expr:
        if label is None or label == "NA":
            return number(term.missing)
        if label in term.table:
            return number(term.table[label])
        return exp.null() if term.other is None else number(term.other)

    def completed(self, inputs: Inputs) -> dict[str, exp.Expr]:
        """By name, each term whose column may be NULL for a value the rule
        takes (a lookup by list, for a label the list lacks): its value,
        ``other`` where the column is NULL and the rule takes the label."""
        found: dict[str, exp.Expr] = {}
        for term in self.tables.lookup:
            if term.other is not None and inputs.position(term.variable) is not None:
                name = self.term_name(term)
                other = exp.Case().when(inputs.takes_other(term.variable), number(term.other))
                found[name] = exp.Coalesce(this=column(name), expressions=[other])
        return found

    def total(self, inputs: Inputs, *more: exp.Expr) -> exp.Expr:
        """The terms (and ``more``) summed, plus the intercept: the log of
        the price, or of the scale. Where some term is NULL, the sum is
        taken again over the :meth:`completed` terms: on those rows only
        (a label no list has, or a value the rules refuse)."""
        intercept = number(self.tables.intercept)
        summed = add(pairwise_sum([*(column(name) for name in self.term_names), *more]), intercept)
        completed = self.completed(inputs)
        if not completed:
            return summed
        terms = [completed.get(name, column(name)) for name in self.term_names]
        again = add(pairwise_sum([*terms, *more]), intercept)
        return exp.Case().when(summed.is_(exp.null()).not_(), summed).else_(again)
