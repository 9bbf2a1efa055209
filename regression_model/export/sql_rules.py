"""The model's input rules in SQL, for the query of ``export/sql.py``: how
it reads a row's columns (a number, a label, a code; missing), what the sums
of terms read (``sql_terms.Inputs``: a number the rule takes, filled where
missing; the conditions on a label), and a refused row's first problem, as
the package's validation names it.

Each rule is the package's own ``FieldRule`` (``scoring/rules.py``), so SQL
checks what the package checks as far as SQL can (README, "The model in
SQL"): in typed engines a column's declared type replaces the type checks,
which SQLite makes with ``typeof``.
"""

from __future__ import annotations

import csv
from collections import Counter

from sqlglot import exp

from regression_model.config.core import Config
from regression_model.data import dataset_path
from regression_model.export.sql_arithmetic import mul, number
from regression_model.export.sql_terms import column, text
from regression_model.scoring.rules import FieldRule
from regression_model.scoring.schema import schema_for
from regression_model.scoring.tables import ModelTables
from regression_model.scoring.validation_result import NO_FEATURES, WHOLE_ROW

#: Characters Python's ``str.strip`` removes (``str.isspace``): a label of
#: only these is empty, for TRIM as for the package.
_WHITESPACE = "".join(c for c in map(chr, range(0x10000)) if c.isspace())
_NAN = exp.cast(exp.Literal.string("NaN"), exp.DataType.Type.DOUBLE)
#: Dialects whose lookups read a label's position in a constant list
#: (``RowRules.position``) rather than test it branch by branch. DuckDB
#: finds the position once per distinct label of a column read from
#: storage (Parquet's dictionaries): each lookup costs almost nothing.
_LIST_DIALECTS = ("duckdb",)
#: DuckDB's integer types, as ``typeof`` names them: a column of one holds
#: whole numbers only. DuckDB folds ``typeof`` to a constant when it plans
#: the query, so testing the type first spares such a column the whole-number
#: test on every row (3 % of the query's time).
_DUCKDB_INTEGERS = tuple(
    f"{sign}{kind}"
    for sign in ("", "U")
    for kind in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
)


def column_name(rule: FieldRule) -> str:
    """Kaggle's name of a variable (its raw name, else the model's)."""
    return rule.raw_names[-1] if rule.raw_names else rule.name


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


class RowRules:
    """The rules of one model's inputs in one dialect; ``fill_names`` names
    the column of each (variable, fill) the query fills (``filled``),
    ``tabled`` the labels of each variable's lookups."""

    def __init__(
        self,
        config: Config,
        dialect: str,
        fill_names: dict[tuple[str, float], str],
        tabled: dict[str, list[str]],
    ) -> None:
        self.schema = schema_for(config.model)
        self.rules = {rule.name: rule for rule in self.schema.rules}
        self.sqlite = dialect == "sqlite"
        self.duckdb = dialect == "duckdb"
        self.fill_names = fill_names
        self.label_counts = _label_counts(config)
        #: per variable, the labels whose position its lookups read (see
        #: ``position``); none where lookups test the labels in turn
        self.listed = (
            {variable: self._listed(variable, labels) for variable, labels in tabled.items()}
            if dialect in _LIST_DIALECTS
            else {}
        )

    def _listed(self, variable: str, labels: list[str]) -> list[str | None]:
        """The tables' labels and every other label known to be taken as it
        is (a code, a quality code, a label of the training data), so that
        a label the tables do not list is rarely left for ``takes_other``;
        None and, uncoded, "NA" for no label given; the commonest first."""
        rule = self.rules[variable]
        known = [
            *labels,
            *(str(code) for code in rule.codes or ()),
            *(rule.quality_codes or ()),
            *(label for label in self.label_counts.get(column_name(rule), ()) if label),
        ]
        taken = [
            label for label in dict.fromkeys(known) if self.is_label(variable, label) is not None
        ]
        listed: list[str | None] = []
        for label in self.order(variable, taken):
            uncoded = rule.codes is None
            listed += [label] if label is not None else [None, *(["NA"] if uncoded else [])]
        return listed

    def number(self, rule: FieldRule) -> exp.Expr:
        """A numerical column as a DOUBLE, NULL when missing (NaN too, where
        the engine keeps NaN and it equals itself)."""
        value = exp.cast(column(column_name(rule)), exp.DataType.Type.DOUBLE)
        if self.sqlite:  # SQLite stores NaN as NULL
            return value
        return exp.Nullif(this=value, expression=_NAN)

    def label(self, rule: FieldRule) -> exp.Expr:
        """A categorical column as its label, NULL when missing (``NA`` too)
        or, for a coded variable, when the code is unknown."""
        raw = column(column_name(rule))
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
        return exp.In(this=column(column_name(rule)), expressions=choices)

    # What the sums of terms read (``sql_terms.Inputs``).

    def order(self, variable: str, labels: list[str]) -> list[str | None]:
        counts = self.label_counts.get(column_name(self.rules[variable]), Counter())
        return sorted([*labels, None], key=lambda label: -counts[label])

    def filled(self, variable: str, fill: float) -> exp.Expr:
        return column(self.fill_names[variable, fill])

    def missing(self, variable: str) -> exp.Expr:
        rule = self.rules[variable]
        raw = column(column_name(rule))
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
            return exp.EQ(this=column(column_name(rule)), expression=text(label))
        codes = [code for code in rule.codes if str(code) == label]
        return self.is_code(rule, *codes) if codes else None

    def position(self, variable: str) -> tuple[exp.Expr, list[str | None]] | None:
        if variable not in self.listed:
            return None
        return column(f"position_{variable}"), self.listed[variable]

    def positions(self) -> list[exp.Expr]:
        """Each listed variable's column ``position_<variable>``: the place
        (from 1) of the row's label in its list, NULL where not listed."""
        found = []
        for variable, listed in self.listed.items():
            rule = self.rules[variable]
            keys = [
                exp.null()
                if label is None
                else text(label)
                if rule.codes is None
                else exp.Literal.number(label)
                for label in listed
            ]
            place = exp.ArrayPosition(
                this=exp.Array(expressions=keys), expression=column(column_name(rule))
            )
            found.append(place.as_(f"position_{variable}", quoted=True))
        return found

    def takes_other(self, variable: str) -> exp.Expr:
        rule = self.rules[variable]
        if rule.codes is not None:
            return self.is_code(rule, *rule.codes)
        # Tested after the labels and the missing value: the column holds a
        # label other than "NA", so the rules read it as it is.
        raw = column(column_name(rule))
        problems = self.problems(rule, raw)
        typed: list[exp.Expr] = []
        if self.sqlite:  # the type is the first problem: its negation is positive
            typed = [exp.Typeof(this=raw).eq(text("text"))]
            problems = problems[1:]
        return exp.and_(*typed, *(exp.paren(c).not_() for c, _ in problems))

    def filled_value(self, rule: FieldRule, fill: float) -> exp.Expr:
        """A number the rule takes, ``fill`` when missing, else NULL: one
        condition that nearly every row meets, then the missing value."""
        raw = column(column_name(rule))
        value = exp.cast(raw, exp.DataType.Type.DOUBLE)
        taken: exp.Expr = exp.Between(this=value, low=number(rule.low), high=number(rule.high))
        if rule.integer:
            whole: exp.Expr = exp.EQ(this=value, expression=exp.Floor(this=value))
            if self.duckdb:
                integers = [text(kind) for kind in _DUCKDB_INTEGERS]
                whole = exp.or_(exp.In(this=exp.Typeof(this=raw), expressions=integers), whole)
            taken = exp.and_(taken, whole)
        if self.sqlite:
            kinds = [text("integer"), text("real")]
            taken = exp.and_(exp.In(this=exp.Typeof(this=raw), expressions=kinds), taken)
        return exp.Case().when(taken, value).when(self.missing(rule.name), number(fill))

    def guards(self, tables: ModelTables) -> list[exp.Expr]:
        """0, or NULL where a value breaks its rule, for each variable no
        term of ``tables`` reads (none in the shipped model; a model without
        a term for some input still refuses what the package refuses)."""
        read = {name for term in tables.terms for name in term.inputs}
        guards = []
        for rule in self.schema.rules:
            if rule.name in read:
                continue
            if rule.numerical:
                guards.append(mul(self.filled_value(rule, 0.0), number(0.0)))
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
        raw = column(column_name(rule))
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
            (column(column_name(rule)) if rule.codes is not None else self.value(rule)).is_(
                exp.null()
            )
            for rule in self.schema.rules
        ]
        reason = exp.Case().when(exp.and_(*given), text(f"{WHOLE_ROW}: {NO_FEATURES}"))
        reason = reason.when(log_price.is_(exp.null()).not_(), exp.null())
        for rule in self.schema.rules:
            field = column_name(rule)
            for condition, message in self.problems(rule):
                reason = reason.when(condition, text(f"{field}: {message}"))
        return reason
