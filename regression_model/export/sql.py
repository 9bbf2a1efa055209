"""The compiled model as one SQL query: the tables' arithmetic and the input
rules, built with sqlglot's expression builder and written in any of its
dialects (:data:`DIALECTS`).

The query reads a table with the model's input columns under Kaggle's names
(``1stFlrSF``; numbers as numbers, labels as text, ``MSSubClass`` a number)
and the key column, and returns per row the key, ``price`` (NULL when the row
is refused), its range at each coverage (``SalePrice_low_80``,
``SalePrice_high_80``, ...: as ``regression-model predict`` names them, NULL
when refused) and ``reason`` (NULL when priced, else ``field: why``, the first
field that the package's validation names). ``explain=True`` adds one column
per term, ``log_effect_<variable>``, the term's value in log-price.

It computes ``TableScorer``'s terms (``scoring/tables.py``) in as few
operations per row as keep the price within 1e-12 relative of the package's
(DuckDB spends its time on the expressions, not on reading: the query's
speed is their number): fill, years before and log as the scorer does them;
each numerical term's line and spline folded into one polynomial per piece;
each label's value by one ``CASE`` over the table's labels or, in DuckDB, from
a constant list at the label's place in another (``RowRules.position``:
DuckDB finds it once per distinct label of a column read from Parquet, and
the price and the scale read the same place); the terms summed,
the intercept added and ``exp`` taken (``export/sql_arithmetic.py``). The
ranges' scale is a second such sum (``export/sql_terms.py`` writes both), and
a bound is ``EXP(log_price + scale * quantile)`` as ``IntervalScorer``
computes it. Constants are written with 17 significant digits and cast to
DOUBLE; only ``LN`` and ``EXP`` are the engine's own.

The rules cost almost nothing on a valid row: a value that breaks its rule
makes its term NULL (a number the rule refuses is no number to fill; a label
neither listed, missing nor taken as "other" matches no branch), so the
log-price is NULL exactly when the row must be refused, and only then are
the rules tested one by one for the first problem (``reason``). DuckDB's
lists hold every label known to be taken (the training data's too), so a
term is NULL for a label they lack; only such rows sum the terms again with
the table's "other" where the rule takes the label (``TermSum.total``). The
stages, one CTE each: ``filled`` (each number the rule takes, filled where
missing), ``transformed`` (each term's ``t``; DuckDB: each label's place),
``terms``, ``summed`` (the log-price and the scale), ``priced`` (the
reason, the price and the ranges); then the plausible-price check.

What SQL cannot see, or sees differently (README, "The model in SQL"): a
column's declared type replaces the type checks except in SQLite (``typeof``);
unknown columns are not named back (the query reads the model's columns only);
NaN counts as missing on engines where NaN equals NaN (DuckDB, PostgreSQL;
SQLite stores none); messages name the field and the rule, not the value.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from regression_model.config.core import ModelConfig
from regression_model.export.sql_arithmetic import add, mul, number
from regression_model.export.sql_rules import RowRules, column_name
from regression_model.export.sql_terms import TermSum, column, text
from regression_model.scoring.intervals import range_names
from regression_model.scoring.model import CompiledModel
from regression_model.scoring.schema import schema_for
from regression_model.scoring.validation_result import WHOLE_ROW

#: Dialects whose queries the tests execute against the package's prices.
EXECUTED_DIALECTS = ("sqlite", "duckdb", "postgres")
#: Every dialect the export writes (the others are generated and parsed back by the tests).
DIALECTS = (*EXECUTED_DIALECTS, "spark", "databricks", "trino", "bigquery", "snowflake")

#: ``exp`` of a log beyond this overflows or underflows (an error in
#: PostgreSQL): a log-price this far outside the plausible prices is refused,
#: a range bound or scale this far out is NULL.
_EXP_BOUND = 700.0
#: Whether each dialect's inner CTEs are MATERIALIZED (True), NOT MATERIALIZED
#: (False) or left to the engine (absent: the others have no such hint and
#: refuse it; Spark's parser fails on it). See ``_Query.fenced``.
_MATERIALIZED = {"postgres": True, "sqlite": True, "duckdb": False}


def input_columns(config: ModelConfig) -> list[tuple[str, str]]:
    """The table the query reads: the key column, then each input variable's
    Kaggle name, with its SQL type (``DOUBLE``, ``BIGINT`` or ``TEXT``)."""
    columns = [(config.id_column, "BIGINT")]
    for rule in schema_for(config).rules:
        kind = "DOUBLE" if rule.numerical else "BIGINT" if rule.codes else "TEXT"
        columns.append((column_name(rule), kind))
    return columns


def to_sql(
    model: CompiledModel,
    dialect: str = "duckdb",
    *,
    table: str = "houses",
    explain: bool = False,
    coverages: Sequence[float] | None = None,
    view: str | None = None,
    pretty: bool = True,
) -> str:
    """The query pricing every row of ``table`` (see the module's docstring),
    with the price's range at each of ``coverages`` (None: each the model
    has; another is an ``UnknownCoverageError``), or, with ``view``, a
    statement creating a view of that name. A name of more than three parts
    (``catalog.schema.table``) or with an empty one is a ``ValueError``."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
    source, target = _table(table), None if view is None else _table(view, "view")
    query: exp.Expr = _Query(model, dialect, coverages).build(source, explain=explain)
    if target is not None:
        query = exp.Create(this=target, kind="VIEW", expression=query)
    return query.sql(dialect=dialect, pretty=pretty) + ";\n"


def _table(name: str, what: str = "table") -> exp.Table:
    """A table's (or view's) name, ``schema.table`` or ``catalog.schema.table``
    allowed, each part quoted; more parts or an empty one is a ``ValueError``."""
    split = name.split(".")
    fault = (
        f"has {len(split)} parts"
        if len(split) > 3
        else "is empty"
        if not name.strip()
        else "has an empty part"
        if not all(part.strip() for part in split)
        else None
    )
    if fault is not None:
        raise ValueError(
            f"the {what} name {name!r} {fault}: give NAME, SCHEMA.NAME or CATALOG.SCHEMA.NAME"
        )
    parts = [exp.to_identifier(part, quoted=True) for part in split]
    return exp.Table(
        this=parts[-1],
        db=parts[-2] if len(parts) > 1 else None,
        catalog=parts[-3] if len(parts) > 2 else None,
    )


class _Query:
    """The query's parts for one model and dialect."""

    def __init__(
        self, model: CompiledModel, dialect: str, coverages: Sequence[float] | None
    ) -> None:
        self.tables = model.tables
        self.config = model.config.model
        intervals = model.tables.intervals
        assert intervals is not None  # a CompiledModel's tables have them
        underflow = dialect == "postgres"
        self.price = TermSum(model.tables, underflow_is_an_error=underflow)
        self.difficulty = (
            None
            if intervals.difficulty is None
            else TermSum(
                intervals.difficulty,
                "difficulty_",
                shares_with=model.tables,
                underflow_is_an_error=underflow,
            )
        )
        #: each range's (column name, conformal quantile), low then high per coverage
        self.ranges = [
            (name, quantile)
            for level in model.interval_scorer.levels(coverages)
            for name, quantile in zip(
                range_names(self.config.target, intervals.coverages[level]),
                intervals.quantiles[level],
                strict=True,
            )
        ]
        self.sums = [self.price, *([self.difficulty] if self.difficulty else [])]
        #: PostgreSQL and SQLite substitute a subquery's expressions into the
        #: query that reads it (each ``t`` a spline reads some 30 times, each
        #: term twice): MATERIALIZED keeps the values and terms computed once;
        #: DuckDB computes each once when inlined, and faster.
        self.fenced: bool | None = _MATERIALIZED.get(dialect)
        #: the column of each (variable, fill) the sums read
        self.fill_names = {
            pair: f"filled_{pair[0]}_{index}"
            for index, pair in enumerate(dict.fromkeys(f for s in self.sums for f in s.fills()))
        }
        tabled: dict[str, list[str]] = {}
        for term in (term for s in self.sums for term in s.tables.lookup):
            tabled.setdefault(term.variable, []).extend(term.table)
        self.row = RowRules(model.config, dialect, self.fill_names, tabled)

    def build(self, source: exp.Table, *, explain: bool) -> exp.Select:
        key = self.config.id_column
        raw = [column(column_name(rule)) for rule in self.row.schema.rules]
        sums = self.sums
        filled = exp.select(
            column(key),
            *raw,
            *(
                self.row.filled_value(self.row.rules[variable], fill).as_(name, quoted=True)
                for (variable, fill), name in self.fill_names.items()
            ),
        ).from_(source)
        transformed = exp.select(
            exp.Star(), *(t for s in sums for t in s.transformed(self.row)), *self.row.positions()
        )
        terms = exp.select(exp.Star(), *(t for s in sums for t in s.terms(self.row)))
        completed = self.price.completed(self.row)
        shown = [column(name) for name in self.price.term_names if explain]
        total = self.price.total(self.row, *self.row.guards(self.tables))
        summed = exp.select(
            column(key),
            *raw,
            *(completed.get(c.name, c).as_(c.name, quoted=True) for c in shown),
            total.as_("log_price", quoted=True),
            *(
                [_exp_within(self.difficulty.total(self.row)).as_("scale")]
                if self.difficulty
                else []
            ),
        ).from_("terms")
        log_price = column("log_price")
        ranges = [
            _exp_within(add(log_price, self.spread(quantile))).as_(name, quoted=True)
            for name, quantile in self.ranges
        ]
        priced = exp.select(
            column(key),
            self.row.reason(log_price).as_("reason", quoted=True),
            *shown,
            _exp_within(log_price).as_("price", quoted=True),
            *ranges,
        ).from_("summed")
        valid = column("reason").is_(exp.null())
        low, high = self.config.plausible_price_range
        plausible = exp.Between(this=column("price"), low=number(low), high=number(high))
        accepted = exp.and_(valid, plausible)
        implausible = (
            f"{WHOLE_ROW}: the model cannot price this house: it predicts a price outside the "
            f"plausible range {low:,.0f} to {high:,.0f}, because its values are far outside "
            "the training data"
        )
        outputs = ["price", *(name for name, _ in self.ranges)]
        return (
            exp.select(
                column(key),
                *(exp.Case().when(accepted, column(n)).as_(n, quoted=True) for n in outputs),
                exp.Case()
                .when(accepted, exp.null())
                .when(valid, text(implausible))
                .else_(column("reason"))
                .as_("reason", quoted=True),
                *(exp.Case().when(accepted, c).as_(c.name, quoted=True) for c in shown),
            )
            .from_("priced")
            .with_("filled", as_=filled)
            .with_("transformed", as_=transformed.from_("filled"), materialized=self.fenced)
            .with_("terms", as_=terms.from_("transformed"), materialized=self.fenced)
            .with_("summed", as_=summed, materialized=self.fenced)
            .with_("priced", as_=priced)
        )

    def spread(self, quantile: float) -> exp.Expr:
        """A row's scale times a conformal quantile: the quantile itself when
        every house has the same scale, 1 (``IntervalScorer``: ``1.0 * q``)."""
        if self.difficulty is None:
            return number(quantile)
        return mul(column("scale"), number(quantile))


def _exp_within(value: exp.Expr) -> exp.Expr:
    """``EXP(value)`` where it can neither overflow nor underflow (an error in
    PostgreSQL), else NULL (a NULL value too)."""
    bounded = exp.Between(this=value, low=number(-_EXP_BOUND), high=number(_EXP_BOUND))
    return exp.Case().when(bounded, exp.Exp(this=value))
