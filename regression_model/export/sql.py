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

It repeats ``TableScorer``'s arithmetic (``scoring/tables.py``,
``scoring/arithmetic.py``) operation by operation in the same order, each
binary operation parenthesised: fill, years before, log, centre and weight,
the missing-value indicator's effect, the spline piece by Horner's rule, then
the terms summed in NumPy's pairwise order, the intercept added and ``exp``
taken (``export/sql_arithmetic.py``); the ranges' scale is a second such sum
(``export/sql_terms.py`` writes both), and a bound is
``EXP(log_price + scale * quantile)`` as ``IntervalScorer`` computes it.
Constants are written with 17 significant digits and cast to DOUBLE, so they
are the tables' very numbers. Only ``LN`` and ``EXP`` are the engine's own
(within an ulp of NumPy's).

The stages, one CTE each: ``given`` (each column as a number or a label),
``labelled`` (each label's value in the tables), ``checked`` (the reason; the
values the arithmetic may take), ``transformed`` (each number's ``t``),
``terms``, ``summed`` (the log-price and the scale), ``priced`` (the price and
the ranges); then the plausible-price check. A row that meets a cheap
condition per variable skips the rules one by one (``plainly_fine``).

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
from regression_model.export.sql_terms import TermSum, column, text
from regression_model.scoring.intervals import range_names
from regression_model.scoring.model import CompiledModel
from regression_model.scoring.rules import FieldRule
from regression_model.scoring.schema import schema_for
from regression_model.scoring.validation_result import NO_FEATURES, WHOLE_ROW

#: Dialects whose queries the tests execute against the package's prices.
EXECUTED_DIALECTS = ("sqlite", "duckdb", "postgres")
#: Every dialect the export writes (the others are generated and parsed back by the tests).
DIALECTS = (*EXECUTED_DIALECTS, "spark", "databricks", "trino", "bigquery", "snowflake")

#: Characters Python's ``str.strip`` removes (``str.isspace``): a label of
#: only these is empty, for TRIM as for the package.
_WHITESPACE = "".join(c for c in map(chr, range(0x10000)) if c.isspace())
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
        columns.append((_column_name(rule), kind))
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


def _column_name(rule: FieldRule) -> str:
    """Kaggle's name of a variable (its raw name, else the model's)."""
    return rule.raw_names[-1] if rule.raw_names else rule.name


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
        self.schema = schema_for(self.config)
        self.sqlite = dialect == "sqlite"
        #: PostgreSQL and SQLite substitute a subquery's expressions into the
        #: query that reads it (each ``t`` a spline reads some 30 times, each
        #: term twice): MATERIALIZED keeps the values and terms computed once;
        #: DuckDB computes each once when inlined, and faster.
        self.fenced: bool | None = _MATERIALIZED.get(dialect)
        self.rules = {rule.name: rule for rule in self.schema.rules}
        self.listed_variables = {term.variable for term in self.tables.lookup}

    def number(self, rule: FieldRule) -> exp.Expr:
        """A numerical column as a DOUBLE, NULL when missing (NaN too, where
        the engine keeps NaN and it equals itself)."""
        value = exp.cast(column(_column_name(rule)), exp.DataType.Type.DOUBLE)
        if self.sqlite:  # SQLite stores NaN as NULL
            return value
        nan = exp.cast(text("NaN"), exp.DataType.Type.DOUBLE)
        return exp.Nullif(this=value, expression=nan)

    def label(self, rule: FieldRule) -> exp.Expr:
        """A categorical column as its label, NULL when missing (``NA`` too)
        or, for a coded variable, when the code is unknown."""
        raw = column(_column_name(rule))
        if rule.codes is None:
            return exp.Nullif(this=raw, expression=text("NA"))
        label = exp.Case()
        for code in rule.codes:
            choices: list[exp.Expr] = [exp.Literal.number(code)]
            if self.sqlite:  # a text column may hold "60" (dynamic types)
                choices.append(text(str(code)))
            label = label.when(exp.In(this=raw, expressions=choices), text(str(code)))
        return label

    def problems(self, rule: FieldRule) -> list[tuple[exp.Expr, str]]:
        """(condition, message) of each way a row's value breaks the rule,
        in the order the rule checks them (on the ``given`` CTE's columns)."""
        raw, value = column(_column_name(rule)), column(f"v_{rule.name}")
        found: list[tuple[exp.Expr, str]] = []
        if rule.numerical:
            if self.sqlite:
                kinds = [text("integer"), text("real"), text("null")]
                wrong = exp.In(this=exp.Typeof(this=raw), expressions=kinds).not_()
                found.append((wrong, "expected a number"))
            outside = exp.or_(
                exp.LT(this=value, expression=number(rule.low)),
                exp.GT(this=value, expression=number(rule.high)),
            )
            found.append(
                (
                    exp.paren(outside),
                    f"must be a finite number between {rule.low:g} and {rule.high:g}",
                )
            )
            if rule.integer:
                fraction = exp.NEQ(this=value, expression=exp.Floor(this=value))
                found.append((fraction, "must be a whole number"))
            return found
        if rule.codes is not None:
            unknown: exp.Expr = exp.and_(raw.is_(exp.null()).not_(), value.is_(exp.null()))
            codes = ", ".join(map(str, rule.codes))
            return [(unknown, f"unknown code; expected one of {codes}")]
        if self.sqlite:
            wrong = exp.In(
                this=exp.Typeof(this=raw), expressions=[text("text"), text("null")]
            ).not_()
            found.append((wrong, "expected a text label"))
        too_long = exp.GT(
            this=exp.Length(this=value), expression=exp.Literal.number(rule.max_length)
        )
        found.append((too_long, f"label is longer than {rule.max_length} characters"))
        blank = exp.EQ(
            this=exp.Trim(this=value, expression=text(_WHITESPACE)), expression=text("")
        )
        found.append((blank, "label must not be empty (leave the field out if unknown)"))
        if rule.quality_codes is not None:
            known = exp.In(this=value, expressions=[text(c) for c in rule.quality_codes])
            expected = ", ".join(rule.quality_codes)
            found.append((known.not_(), f"unknown code; expected one of {expected}"))
        return found

    def plainly_fine(self, rule: FieldRule) -> exp.Expr:
        """A condition under which the rule surely takes the value, cheap to
        test: the rows that meet it for every variable (nearly all) skip the
        checks one by one. Labels are those of the model's tables the rule
        itself takes."""
        raw, value = column(_column_name(rule)), column(f"v_{rule.name}")
        if rule.codes is not None:
            return exp.or_(raw.is_(exp.null()), value.is_(exp.null()).not_())
        if rule.numerical:
            fine: exp.Expr = exp.Between(this=value, low=number(rule.low), high=number(rule.high))
            if rule.integer:
                fine = exp.and_(fine, exp.EQ(this=value, expression=exp.Floor(this=value)))
            if self.sqlite:
                kinds = [text("integer"), text("real")]
                fine = exp.and_(exp.In(this=exp.Typeof(this=raw), expressions=kinds), fine)
            return exp.or_(value.is_(exp.null()), fine)
        fine = value.is_(exp.null())
        if rule.name in self.listed_variables:
            fine = exp.or_(fine, column(f"k_{rule.name}").is_(exp.null()).not_())
        if rule.quality_codes is not None and rule.name in self.listed_variables:
            return fine
        # A label the tables do not list (scored as their "other"): the rule's
        # checks, in a CASE so that only such rows pay for TRIM (an OR may
        # evaluate both sides on every row).
        typed: list[exp.Expr] = [exp.Typeof(this=raw).eq(text("text"))] if self.sqlite else []
        other = exp.and_(
            *typed, *(exp.paren(c).not_() for c, _ in self.problems(rule)[len(typed) :])
        )
        return exp.Case().when(fine, exp.true()).else_(other)

    def reason(self) -> exp.Expr:
        """The first problem of the row, as ``field: message``."""
        # Given: a number, a label other than "NA" (as the ``given`` CTE reads
        # them), or any code (an unknown one is refused as a value).
        given = [
            (
                column(_column_name(rule)) if rule.codes is not None else column(f"v_{rule.name}")
            ).is_(exp.null())
            for rule in self.schema.rules
        ]
        reason = exp.Case().when(exp.and_(*given), text(f"{WHOLE_ROW}: {NO_FEATURES}"))
        fine = [exp.paren(self.plainly_fine(rule)) for rule in self.schema.rules]
        reason = reason.when(exp.and_(*fine), exp.null())
        for rule in self.schema.rules:
            field = _column_name(rule)
            for condition, message in self.problems(rule):
                reason = reason.when(condition, text(f"{field}: {message}"))
        return reason

    def usable(self, rule: FieldRule) -> exp.Expr:
        """A value as the arithmetic takes it: a number within its range, else
        NULL; a label as it is."""
        value = column(f"v_{rule.name}")
        if not rule.numerical:
            return value
        inside = exp.Between(this=value, low=number(rule.low), high=number(rule.high))
        return exp.Case().when(inside, value)

    def build(self, source: exp.Table, *, explain: bool) -> exp.Select:
        key = self.config.id_column
        numerical = [self.rules[name] for name in self.config.numerical_vars]
        categorical = [self.rules[name] for name in self.config.categorical_vars]
        raw = [column(_column_name(rule)) for rule in self.schema.rules]
        given = exp.select(
            column(key),
            *raw,
            *(self.number(rule).as_(f"v_{rule.name}", quoted=True) for rule in numerical),
            *(self.label(rule).as_(f"v_{rule.name}", quoted=True) for rule in categorical),
        ).from_(source)
        sums = [self.price, *([self.difficulty] if self.difficulty else [])]
        labelled = exp.select(exp.Star(), *(v for s in sums for v in s.listed(self.rules)))
        # A value outside its range is scored as missing (the row is refused
        # anyway): no value that fails its rule reaches LN, EXP or an overflow.
        checked = exp.select(
            column(key),
            self.reason().as_("reason", quoted=True),
            *(self.usable(rule).as_(f"x_{rule.name}", quoted=True) for rule in self.schema.rules),
            *(column(s.listed_name(term)) for s in sums for term in s.tables.lookup),
        ).from_("labelled")
        transformed = exp.select(exp.Star(), *(t for s in sums for t in s.transformed()))
        terms = exp.select(column(key), column("reason"), *(t for s in sums for t in s.terms()))
        shown = [column(name) for name in self.price.term_names if explain]
        summed = exp.select(
            column(key),
            column("reason"),
            *shown,
            self.price.total().as_("log_price", quoted=True),
            *([_exp_within(self.difficulty.total()).as_("scale")] if self.difficulty else []),
        ).from_("terms")
        valid = column("reason").is_(exp.null())
        log_price = column("log_price")
        ranges = [
            _exp_within(add(log_price, self.spread(quantile)), valid).as_(name, quoted=True)
            for name, quantile in self.ranges
        ]
        priced = exp.select(
            column(key),
            column("reason"),
            *shown,
            _exp_within(log_price, valid).as_("price", quoted=True),
            *ranges,
        ).from_("summed")
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
            .with_("given", as_=given)
            .with_("labelled", as_=labelled.from_("given"))
            .with_("checked", as_=checked)
            .with_("transformed", as_=transformed.from_("checked"), materialized=self.fenced)
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


def _exp_within(value: exp.Expr, *conditions: exp.Expr) -> exp.Expr:
    """``EXP(value)`` where the conditions hold and it can neither overflow
    nor underflow (an error in PostgreSQL), else NULL."""
    bounded = exp.Between(this=value, low=number(-_EXP_BOUND), high=number(_EXP_BOUND))
    return exp.Case().when(exp.and_(*conditions, bounded), exp.Exp(this=value))
