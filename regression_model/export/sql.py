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
each label's value by one ``CASE`` over the table's labels; the terms summed,
the intercept added and ``exp`` taken (``export/sql_arithmetic.py``). The
ranges' scale is a second such sum (``export/sql_terms.py`` writes both), and
a bound is ``EXP(log_price + scale * quantile)`` as ``IntervalScorer``
computes it. Constants are written with 17 significant digits and cast to
DOUBLE; only ``LN`` and ``EXP`` are the engine's own.

The rules cost almost nothing on a valid row: a value that breaks its rule
makes its term NULL (a number the rule refuses is no number to fill; a label
neither listed, missing nor taken as "other" matches no branch), so the
log-price is NULL exactly when the row must be refused, and only then are
the rules tested one by one for the first problem (``reason``). The stages,
one CTE each: ``filled`` (each number the rule takes, filled where missing),
``transformed`` (each term's ``t``), ``terms``, ``summed`` (the log-price and
the scale), ``priced`` (the reason, the price and the ranges); then the
plausible-price check.

What SQL cannot see, or sees differently (README, "The model in SQL"): a
column's declared type replaces the type checks except in SQLite (``typeof``);
unknown columns are not named back (the query reads the model's columns only);
NaN counts as missing on engines where NaN equals NaN (DuckDB, PostgreSQL;
SQLite stores none); messages name the field and the rule, not the value.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence

from sqlglot import exp

from regression_model.config.core import Config, ModelConfig
from regression_model.data import dataset_path
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
_NAN = exp.cast(exp.Literal.string("NaN"), exp.DataType.Type.DOUBLE)


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


def _label_counts(config: Config) -> dict[str, Counter[str | None]]:
    """How often each label of each column (None: none given, as an empty
    cell or ``NA``) appears in the bundled training data; empty when the file
    cannot be read. Only the order of a lookup's branches follows them."""
    counts: dict[str, Counter[str | None]] = {}
    try:
        with dataset_path(config.app.training_data_file).open(newline="") as handle:
            for row in csv.DictReader(handle):
                for name, value in row.items():
                    label = None if value in ("", "NA") else value
                    counts.setdefault(name, Counter())[label] += 1
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    return counts


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
        self.sums = [self.price, *([self.difficulty] if self.difficulty else [])]
        self.schema = schema_for(self.config)
        self.sqlite = dialect == "sqlite"
        #: PostgreSQL and SQLite substitute a subquery's expressions into the
        #: query that reads it (each ``t`` a spline reads some 30 times, each
        #: term twice): MATERIALIZED keeps the values and terms computed once;
        #: DuckDB computes each once when inlined, and faster.
        self.fenced: bool | None = _MATERIALIZED.get(dialect)
        self.rules = {rule.name: rule for rule in self.schema.rules}
        self.label_counts = _label_counts(model.config)
        #: the column of each (variable, fill) the sums read
        self.fill_names = {
            pair: f"filled_{pair[0]}_{index}"
            for index, pair in enumerate(dict.fromkeys(f for s in self.sums for f in s.fills()))
        }

    def number(self, rule: FieldRule) -> exp.Expr:
        """A numerical column as a DOUBLE, NULL when missing (NaN too, where
        the engine keeps NaN and it equals itself)."""
        value = exp.cast(column(_column_name(rule)), exp.DataType.Type.DOUBLE)
        if self.sqlite:  # SQLite stores NaN as NULL
            return value
        return exp.Nullif(this=value, expression=_NAN)

    def label(self, rule: FieldRule) -> exp.Expr:
        """A categorical column as its label, NULL when missing (``NA`` too)
        or, for a coded variable, when the code is unknown."""
        raw = column(_column_name(rule))
        if rule.codes is None:
            return exp.Nullif(this=raw, expression=text("NA"))
        label = exp.Case()
        for code in rule.codes:
            label = label.when(self.is_code(rule, code), text(str(code)))
        return label

    def value(self, rule: FieldRule) -> exp.Expr:
        """A column's value as the rule reads it (``number`` or ``label``)."""
        return self.number(rule) if rule.numerical else self.label(rule)

    def is_code(self, rule: FieldRule, *codes: int) -> exp.Expr:
        """Whether a coded column holds one of ``codes``."""
        choices: list[exp.Expr] = [exp.Literal.number(code) for code in codes]
        if self.sqlite:  # a text column may hold "60" (dynamic types)
            choices += [text(str(code)) for code in codes]
        return exp.In(this=column(_column_name(rule)), expressions=choices)

    # What the sums of terms read (``sql_terms.Inputs``).

    def order(self, variable: str, labels: list[str]) -> list[str | None]:
        counts = self.label_counts.get(_column_name(self.rules[variable]), Counter())
        return sorted([*labels, None], key=lambda label: -counts[label])

    def filled(self, variable: str, fill: float) -> exp.Expr:
        return column(self.fill_names[variable, fill])

    def missing(self, variable: str) -> exp.Expr:
        rule = self.rules[variable]
        raw = column(_column_name(rule))
        if rule.numerical and not self.sqlite:
            cast = exp.cast(raw, exp.DataType.Type.DOUBLE)
            return exp.or_(raw.is_(exp.null()), exp.EQ(this=cast, expression=_NAN))
        if rule.numerical or rule.codes is not None:
            return raw.is_(exp.null())
        return exp.or_(raw.is_(exp.null()), exp.EQ(this=raw, expression=text("NA")))

    def is_label(self, variable: str, label: str) -> exp.Expr | None:
        rule = self.rules[variable]
        if label == "NA" or rule.check(label) != label:
            return None
        if rule.codes is None:
            return exp.EQ(this=column(_column_name(rule)), expression=text(label))
        codes = [code for code in rule.codes if str(code) == label]
        return self.is_code(rule, *codes) if codes else None

    def takes_other(self, variable: str) -> exp.Expr:
        rule = self.rules[variable]
        if rule.codes is not None:
            return self.is_code(rule, *rule.codes)
        # Tested after the labels and the missing value: the column holds a
        # label other than "NA", so the rules read it as it is.
        raw = column(_column_name(rule))
        problems = self.problems(rule, raw)
        typed: list[exp.Expr] = []
        if self.sqlite:  # the type is the first problem: its negation is positive
            typed = [exp.Typeof(this=raw).eq(text("text"))]
            problems = problems[1:]
        return exp.and_(*typed, *(exp.paren(c).not_() for c, _ in problems))

    def _filled_value(self, rule: FieldRule, fill: float) -> exp.Expr:
        """A number the rule takes, ``fill`` when missing, else NULL: one
        condition that nearly every row meets, then the missing value."""
        raw = column(_column_name(rule))
        value = exp.cast(raw, exp.DataType.Type.DOUBLE)
        taken: exp.Expr = exp.Between(this=value, low=number(rule.low), high=number(rule.high))
        if rule.integer:
            taken = exp.and_(taken, exp.EQ(this=value, expression=exp.Floor(this=value)))
        if self.sqlite:
            kinds = [text("integer"), text("real")]
            taken = exp.and_(exp.In(this=exp.Typeof(this=raw), expressions=kinds), taken)
        return exp.Case().when(taken, value).when(self.missing(rule.name), number(fill))

    def guards(self) -> list[exp.Expr]:
        """0, or NULL where a value breaks its rule, for each variable no
        term of the price reads (none in the shipped model; a model without
        a term for some input still refuses what the package refuses)."""
        read = {name for term in self.tables.terms for name in term.inputs}
        guards = []
        for rule in self.schema.rules:
            if rule.name in read:
                continue
            if rule.numerical:
                guards.append(mul(self._filled_value(rule, 0.0), number(0.0)))
            else:
                zero = number(0.0)
                taken = exp.Case().when(self.missing(rule.name), zero)
                guards.append(taken.when(self.takes_other(rule.name), zero))
        return guards

    def problems(
        self, rule: FieldRule, value: exp.Expr | None = None
    ) -> list[tuple[exp.Expr, str]]:
        """(condition, message) of each way a row's value (``value``: as the
        rule reads the column) breaks the rule, in the order the rule checks
        them."""
        raw = column(_column_name(rule))
        value = self.value(rule) if value is None else value
        found: list[tuple[exp.Expr, str]] = []
        if rule.numerical:
            if self.sqlite:
                kinds = [text("integer"), text("real"), text("null")]
                wrong = exp.In(this=exp.Typeof(this=raw), expressions=kinds).not_()
                found.append((wrong, "expected a number"))
            # NOT BETWEEN: a NaN that is no missing value (an engine where NaN
            # is not equal to itself) is outside too
            inside = exp.Between(this=value, low=number(rule.low), high=number(rule.high))
            found.append(
                (
                    exp.paren(inside).not_(),
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

    def reason(self, log_price: exp.Expr) -> exp.Expr:
        """The first problem of the row, as ``field: message``. A value that
        breaks its rule makes its term, so the log-price, NULL: the rules are
        tested one by one only on such rows."""
        # Given: a number, a label other than "NA", or any code (an unknown
        # one is refused as a value).
        given = [
            (column(_column_name(rule)) if rule.codes is not None else self.value(rule)).is_(
                exp.null()
            )
            for rule in self.schema.rules
        ]
        reason = exp.Case().when(exp.and_(*given), text(f"{WHOLE_ROW}: {NO_FEATURES}"))
        reason = reason.when(log_price.is_(exp.null()).not_(), exp.null())
        for rule in self.schema.rules:
            field = _column_name(rule)
            for condition, message in self.problems(rule):
                reason = reason.when(condition, text(f"{field}: {message}"))
        return reason

    def build(self, source: exp.Table, *, explain: bool) -> exp.Select:
        key = self.config.id_column
        raw = [column(_column_name(rule)) for rule in self.schema.rules]
        sums = self.sums
        filled = exp.select(
            column(key),
            *raw,
            *(
                self._filled_value(self.rules[variable], fill).as_(name, quoted=True)
                for (variable, fill), name in self.fill_names.items()
            ),
        ).from_(source)
        transformed = exp.select(exp.Star(), *(t for s in sums for t in s.transformed(self)))
        terms = exp.select(exp.Star(), *(t for s in sums for t in s.terms(self)))
        shown = [column(name) for name in self.price.term_names if explain]
        summed = exp.select(
            column(key),
            *raw,
            *shown,
            self.price.total(*self.guards()).as_("log_price", quoted=True),
            *([_exp_within(self.difficulty.total()).as_("scale")] if self.difficulty else []),
        ).from_("terms")
        log_price = column("log_price")
        ranges = [
            _exp_within(add(log_price, self.spread(quantile))).as_(name, quoted=True)
            for name, quantile in self.ranges
        ]
        priced = exp.select(
            column(key),
            self.reason(log_price).as_("reason", quoted=True),
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
