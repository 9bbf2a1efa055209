"""``regression-model export sql``: the model as a SQL query for engines that
do not run Python (:func:`regression_model.export.to_sql`, the ``[sql]`` extra).

sqlglot is imported when the command runs, not when the command line is
parsed: the other commands start without it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from regression_model.cli.arguments import coverage
from regression_model.output_files import OutputError, write_text

SQL_EXTRA_HINT = "the SQL export needs sqlglot: pip install 'ames-regression-model[sql]'"


def export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=("sql",), help="what to write (sql)")
    parser.add_argument(
        "--dialect",
        default="duckdb",
        help="SQL dialect (default: %(default)s): sqlite, duckdb and postgres are tested by "
        "running the query; spark, databricks, trino, bigquery, snowflake are written and "
        "parsed back",
    )
    parser.add_argument(
        "--table",
        default="houses",
        help="the table (or schema.table, catalog.schema.table) of houses, Kaggle's columns "
        "(default: %(default)s)",
    )
    parser.add_argument("--output", type=Path, help="file to write (default: stdout)")
    parser.add_argument(
        "--explain", action="store_true", help="add one column per term: log_effect_<variable>"
    )
    parser.add_argument(
        "--coverage",
        type=coverage,
        action="append",
        metavar="C",
        help="give the price range at coverage C, such as 0.8, only (repeatable; default: "
        "each coverage the model was calibrated for)",
    )
    parser.add_argument("--view", metavar="NAME", help="write CREATE VIEW NAME AS the query")


def export(args: argparse.Namespace) -> int:
    try:
        from regression_model.export import to_sql
    except ImportError:
        print(f"error: {SQL_EXTRA_HINT}", file=sys.stderr)
        return 2
    from regression_model.scoring.model import CompiledModel, load_model

    model = load_model()
    assert isinstance(model, CompiledModel)
    try:
        sql = to_sql(
            model,
            args.dialect,
            table=args.table,
            explain=args.explain,
            coverages=args.coverage,
            view=args.view,
        )
    except ValueError as exc:  # an unknown dialect or coverage, a bad table or view name
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(sql)
    else:
        try:  # written whole: a failure leaves no half query (nor truncates the old one)
            write_text(args.output, sql)
        except OutputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"model {model.version} as {args.dialect} SQL: {args.output}", file=sys.stderr)
    return 0
