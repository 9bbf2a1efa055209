"""The compiled model as one SQL query: the tables' arithmetic and the input
rules, built with sqlglot's expression builder and written in any of its
dialects (:data:`DIALECTS`).

The query reads a table with the model's input columns under Kaggle's names
(``1stFlrSF``; numbers as numbers, labels as text, ``MSSubClass`` a number)
and the key column, and returns per row the key, ``price`` (NULL when the row
is refused) and ``reason`` (NULL when priced, else ``field: why``, the first
field that the package's validation names). ``explain=True`` adds one column
per term, ``log_effect_<variable>``, the term's value in log-price.

It repeats ``TableScorer``'s arithmetic (``scoring/tables.py``,
``scoring/arithmetic.py``) operation by operation in the same order, each
binary operation parenthesised: fill, years before, log, centre and weight,
the missing-value indicator's effect, the spline piece by Horner's rule, then
the terms summed in NumPy's pairwise order, the intercept added and ``exp``
taken (``export/sql_arithmetic.py``). Constants are written with 17
significant digits and cast to DOUBLE, so they are the tables' very numbers.
Only ``LN`` and ``EXP`` are the engine's own (within an ulp of NumPy's).

The stages, one CTE each: ``given`` (each column as a number or a label),
``labelled`` (each label's value in the tables), ``checked`` (the reason; the
values the arithmetic may take), ``transformed`` (each number's ``t``),
``terms``, ``priced``; then the plausible-price check. A row that meets a cheap
condition per variable skips the rules one by one (``plainly_fine``).

What SQL cannot see, or sees differently (README, "The model in SQL"): a
column's declared type replaces the type checks except in SQLite (``typeof``);
unknown columns are not named back (the query reads the model's columns only);
NaN counts as missing on engines where NaN equals NaN (DuckDB, PostgreSQL;
SQLite stores none); messages name the field and the rule, not the value.
"""

from __future__ import annotations

from sqlglot import exp

from regression_model.config.core import ModelConfig
from regression_model.export.sql_arithmetic import (
    add,
    mul,
    number,
    pairwise_sum,
    spline_curve,
    sub,
)
from regression_model.scoring.model import CompiledModel
from regression_model.scoring.rules import FieldRule
from regression_model.scoring.schema import schema_for
from regression_model.scoring.terms import LookupTerm, NumericTerm
from regression_model.scoring.validation_result import NO_FEATURES, WHOLE_ROW

#: Dialects whose queries the tests execute against the package's prices.
EXECUTED_DIALECTS = ("sqlite", "duckdb", "postgres")
#: Every dialect the export writes (the others are generated and parsed back by the tests).
DIALECTS = (*EXECUTED_DIALECTS, "spark", "databricks", "trino", "bigquery", "snowflake")

#: Characters Python's ``str.strip`` removes (``str.isspace``): a label of
#: only these is empty, for TRIM as for the package.
_WHITESPACE = "".join(c for c in map(chr, range(0x10000)) if c.isspace())
#: ``exp`` of a log-price beyond this overflows or underflows (an error in
#: PostgreSQL); far outside the plausible prices, such a row is refused.
_LOG_PRICE_BOUND = 700.0
#: Dialects whose CTEs are materialized (see ``_Query.fenced``).
_FENCED = frozenset({"postgres", "sqlite"})


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
    view: str | None = None,
    pretty: bool = True,
) -> str:
    """The query pricing every row of ``table`` (see the module's docstring),
    or, with ``view``, a statement creating a view of that name."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
    query: exp.Expr = _Query(model, dialect).build(_table(table), explain=explain)
    if view is not None:
        query = exp.Create(this=_table(view), kind="VIEW", expression=query)
    return query.sql(dialect=dialect, pretty=pretty) + ";\n"


def _table(name: str) -> exp.Table:
    """A table's name, ``schema.table`` allowed, each part quoted."""
    parts = [exp.to_identifier(part, quoted=True) for part in name.split(".")]
    return exp.Table(
        this=parts[-1],
        db=parts[-2] if len(parts) > 1 else None,
        catalog=parts[-3] if len(parts) > 2 else None,
    )


def _column_name(rule: FieldRule) -> str:
    """Kaggle's name of a variable (its raw name, else the model's)."""
    return rule.raw_names[-1] if rule.raw_names else rule.name


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _text(value: str) -> exp.Literal:
    return exp.Literal.string(value)


class _Query:
    """The query's parts for one model and dialect."""

    def __init__(self, model: CompiledModel, dialect: str) -> None:
        self.tables = model.tables
        self.config = model.config.model
        self.schema = schema_for(self.config)
        self.sqlite = dialect == "sqlite"
        #: PostgreSQL and SQLite substitute a subquery's expressions into the
        #: query that reads it (each ``t`` a spline reads some 30 times, each
        #: term twice): MATERIALIZED keeps the values and terms computed once.
        self.fenced = dialect in _FENCED
        self.rules = {rule.name: rule for rule in self.schema.rules}
        self.listed_variables = {term.variable for term in self.tables.lookup}

    def number(self, rule: FieldRule) -> exp.Expr:
        """A numerical column as a DOUBLE, NULL when missing (NaN too, where
        the engine keeps NaN and it equals itself)."""
        value = exp.cast(_col(_column_name(rule)), exp.DataType.Type.DOUBLE)
        if self.sqlite:  # SQLite stores NaN as NULL
            return value
        nan = exp.cast(_text("NaN"), exp.DataType.Type.DOUBLE)
        return exp.Nullif(this=value, expression=nan)

    def label(self, rule: FieldRule) -> exp.Expr:
        """A categorical column as its label, NULL when missing (``NA`` too)
        or, for a coded variable, when the code is unknown."""
        raw = _col(_column_name(rule))
        if rule.codes is None:
            return exp.Nullif(this=raw, expression=_text("NA"))
        label = exp.Case()
        for code in rule.codes:
            choices: list[exp.Expr] = [exp.Literal.number(code)]
            if self.sqlite:  # a text column may hold "60" (dynamic types)
                choices.append(_text(str(code)))
            label = label.when(exp.In(this=raw, expressions=choices), _text(str(code)))
        return label

    def problems(self, rule: FieldRule) -> list[tuple[exp.Expr, str]]:
        """(condition, message) of each way a row's value breaks the rule,
        in the order the rule checks them (on the ``given`` CTE's columns)."""
        raw, value = _col(_column_name(rule)), _col(f"v_{rule.name}")
        found: list[tuple[exp.Expr, str]] = []
        if rule.numerical:
            if self.sqlite:
                kinds = [_text("integer"), _text("real"), _text("null")]
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
                this=exp.Typeof(this=raw), expressions=[_text("text"), _text("null")]
            ).not_()
            found.append((wrong, "expected a text label"))
        too_long = exp.GT(
            this=exp.Length(this=value), expression=exp.Literal.number(rule.max_length)
        )
        found.append((too_long, f"label is longer than {rule.max_length} characters"))
        blank = exp.EQ(
            this=exp.Trim(this=value, expression=_text(_WHITESPACE)), expression=_text("")
        )
        found.append((blank, "label must not be empty (leave the field out if unknown)"))
        if rule.quality_codes is not None:
            known = exp.In(this=value, expressions=[_text(c) for c in rule.quality_codes])
            expected = ", ".join(rule.quality_codes)
            found.append((known.not_(), f"unknown code; expected one of {expected}"))
        return found

    def plainly_fine(self, rule: FieldRule) -> exp.Expr:
        """A condition under which the rule surely takes the value, cheap to
        test: the rows that meet it for every variable (nearly all) skip the
        checks one by one. Labels are those of the model's tables the rule
        itself takes."""
        raw, value = _col(_column_name(rule)), _col(f"v_{rule.name}")
        if rule.codes is not None:
            return exp.or_(raw.is_(exp.null()), value.is_(exp.null()).not_())
        if rule.numerical:
            fine: exp.Expr = exp.Between(this=value, low=number(rule.low), high=number(rule.high))
            if rule.integer:
                fine = exp.and_(fine, exp.EQ(this=value, expression=exp.Floor(this=value)))
            if self.sqlite:
                kinds = [_text("integer"), _text("real")]
                fine = exp.and_(exp.In(this=exp.Typeof(this=raw), expressions=kinds), fine)
            return exp.or_(value.is_(exp.null()), fine)
        fine = value.is_(exp.null())
        if rule.name in self.listed_variables:
            fine = exp.or_(fine, _col(f"k_{rule.name}").is_(exp.null()).not_())
        if rule.quality_codes is not None and rule.name in self.listed_variables:
            return fine
        # A label the tables do not list (scored as their "other"): the rule's
        # checks, in a CASE so that only such rows pay for TRIM (an OR may
        # evaluate both sides on every row).
        text: list[exp.Expr] = [exp.Typeof(this=raw).eq(_text("text"))] if self.sqlite else []
        other = exp.and_(
            *text, *(exp.paren(c).not_() for c, _ in self.problems(rule)[len(text) :])
        )
        return exp.Case().when(fine, exp.true()).else_(other)

    def listed(self, term: LookupTerm) -> exp.Expr:
        """A label's value in the tables, for the labels the rule takes (NULL
        for any other label, or none): one pass of comparisons serves both the
        check and the term."""
        rule, label = self.rules[term.variable], _col(f"v_{term.variable}")
        value = exp.Case()
        for known, effect in term.table.items():
            if rule.check(known) == known:
                value = value.when(exp.EQ(this=label, expression=_text(known)), number(effect))
        return value

    def reason(self) -> exp.Expr:
        """The first problem of the row, as ``field: message``."""
        given = [
            (_col(f"v_{rule.name}") if rule.numerical else _col(_column_name(rule))).is_(
                exp.null()
            )
            for rule in self.schema.rules
        ]
        reason = exp.Case().when(exp.and_(*given), _text(f"{WHOLE_ROW}: {NO_FEATURES}"))
        fine = [exp.paren(self.plainly_fine(rule)) for rule in self.schema.rules]
        reason = reason.when(exp.and_(*fine), exp.null())
        for rule in self.schema.rules:
            field = _column_name(rule)
            for condition, message in self.problems(rule):
                reason = reason.when(condition, _text(f"{field}: {message}"))
        return reason

    def usable(self, rule: FieldRule) -> exp.Expr:
        """A value as the arithmetic takes it: a number within its range, else
        NULL; a label as it is."""
        value = _col(f"v_{rule.name}")
        if not rule.numerical:
            return value
        inside = exp.Between(this=value, low=number(rule.low), high=number(rule.high))
        return exp.Case().when(inside, value)

    def transformed(self, term: NumericTerm) -> exp.Expr:
        """``t`` of a numerical term: filled, years before, logged."""
        t: exp.Expr = exp.Coalesce(
            this=_col(f"x_{term.variable}"), expressions=[number(term.fill)]
        )
        if term.reference is not None:
            year = exp.Coalesce(
                this=_col(f"x_{term.reference}"),
                expressions=[number(term.reference_fill)],  # type: ignore[arg-type]
            )
            t = sub(year, t)
        if term.log_offset is not None:
            t = exp.Ln(this=add(t, number(term.log_offset)))
        return t

    def numeric_term(self, term: NumericTerm) -> exp.Expr:
        t = _col(f"t_{term.variable}")
        value = mul(sub(t, number(term.center)), number(term.weight))
        if term.missing_effect or term.present_effect:
            missing = _col(f"x_{term.variable}").is_(exp.null())
            effect = exp.Case().when(missing, number(term.missing_effect))
            value = add(value, effect.else_(number(term.present_effect)))
        if term.spline is not None:
            value = add(value, spline_curve(term.spline, t))
        return value

    def lookup_term(self, term: LookupTerm) -> exp.Expr:
        listed = _col(f"k_{term.variable}")
        value = exp.Case().when(_col(f"x_{term.variable}").is_(exp.null()), number(term.missing))
        value = value.when(listed.is_(exp.null()).not_(), listed)
        return value.else_(exp.null() if term.other is None else number(term.other))

    def build(self, source: exp.Table, *, explain: bool) -> exp.Select:
        key = self.config.id_column
        numerical = [self.rules[name] for name in self.config.numerical_vars]
        categorical = [self.rules[name] for name in self.config.categorical_vars]
        raw = [_col(_column_name(rule)) for rule in self.schema.rules]
        given = exp.select(
            _col(key),
            *raw,
            *(self.number(rule).as_(f"v_{rule.name}", quoted=True) for rule in numerical),
            *(self.label(rule).as_(f"v_{rule.name}", quoted=True) for rule in categorical),
        ).from_(source)
        lookup_values = [f"k_{term.variable}" for term in self.tables.lookup]
        labelled = exp.select(
            exp.Star(),
            *(
                self.listed(t).as_(n, quoted=True)
                for t, n in zip(self.tables.lookup, lookup_values, strict=True)
            ),
        ).from_("given")
        # A value outside its range is scored as missing (the row is refused
        # anyway): no value that fails its rule reaches LN, EXP or an overflow.
        checked = exp.select(
            _col(key),
            self.reason().as_("reason", quoted=True),
            *(self.usable(rule).as_(f"x_{rule.name}", quoted=True) for rule in self.schema.rules),
            *map(_col, lookup_values),
        ).from_("labelled")
        valid = exp.column("reason", quoted=True).is_(exp.null())
        numeric, lookup = self.tables.numeric, self.tables.lookup
        transformed = exp.select(
            exp.Star(),
            *(self.transformed(t).as_(f"t_{t.variable}", quoted=True) for t in numeric),
        ).from_("checked")
        term_names = [f"log_effect_{t.variable}" for t in self.tables.terms]
        terms = exp.select(
            _col(key),
            _col("reason"),
            *(self.numeric_term(t).as_(f"log_effect_{t.variable}", quoted=True) for t in numeric),
            *(self.lookup_term(t).as_(f"log_effect_{t.variable}", quoted=True) for t in lookup),
        ).from_("transformed")
        log_price = add(pairwise_sum([_col(n) for n in term_names]), number(self.tables.intercept))
        bounded = exp.Between(
            this=log_price, low=number(-_LOG_PRICE_BOUND), high=number(_LOG_PRICE_BOUND)
        )
        priced = exp.select(
            _col(key),
            _col("reason"),
            *(_col(n) for n in term_names if explain),
            exp.Case()
            .when(exp.and_(valid, bounded), exp.Exp(this=log_price))
            .as_("price", quoted=True),
        ).from_("terms")
        low, high = self.config.plausible_price_range
        plausible = exp.Between(this=_col("price"), low=number(low), high=number(high))
        accepted = exp.and_(valid, plausible)
        implausible = (
            f"{WHOLE_ROW}: the model cannot price this house: it predicts a price outside the "
            f"plausible range {low:,.0f} to {high:,.0f}, because its values are far outside "
            "the training data"
        )
        return (
            exp.select(
                _col(key),
                exp.Case().when(accepted, _col("price")).as_("price", quoted=True),
                exp.Case()
                .when(accepted, exp.null())
                .when(valid, _text(implausible))
                .else_(_col("reason"))
                .as_("reason", quoted=True),
                *(
                    exp.Case().when(accepted, _col(n)).as_(n, quoted=True)
                    for n in term_names
                    if explain
                ),
            )
            .from_("priced")
            .with_("given", as_=given)
            .with_("labelled", as_=labelled)
            .with_("checked", as_=checked)
            .with_("transformed", as_=transformed, materialized=self.fenced)
            .with_("terms", as_=terms, materialized=self.fenced)
            .with_("priced", as_=priced)
        )
