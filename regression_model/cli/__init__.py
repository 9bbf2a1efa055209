"""``regression-model`` command line: train, report, predict, info, export, drift,
performance, log-migrate, log-prune (the table :data:`SUBCOMMANDS`).

Also reachable as ``python -m regression_model``. The model's commands are
in ``model_commands``, the prediction log's in ``log_commands``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from regression_model.cli import (
    compare_commands,
    export_commands,
    log_commands,
    market_commands,
    model_commands,
    outcome_commands,
    performance_commands,
)
from regression_model.config.core import CONFIG_ENV_VAR, ConfigError
from regression_model.scoring.artifact import ArtifactError
from regression_model.version import __version__


@dataclass(frozen=True)
class Subcommand:
    """A subcommand: its name, its help, how its arguments are declared and
    what runs it (its exit status)."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None] | None
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


SUBCOMMANDS = (
    Subcommand(
        "train",
        "train, evaluate and save the model",
        model_commands.train_arguments,
        model_commands.train,
    ),
    Subcommand(
        "report",
        "write report.html and its plots: evaluation, baselines, slices",
        model_commands.report_arguments,
        model_commands.report,
    ),
    Subcommand(
        "predict",
        "price the houses of a CSV or Parquet file, streamed in chunks",
        model_commands.predict_arguments,
        model_commands.predict,
        description="Price every row of a CSV or Parquet file (Kaggle columns), a chunk at a "
        "time in bounded memory; write Id, SalePrice and errors (why a row was not priced). "
        "Exit status: 0 all priced, 3 some rejected, 1 a bad file (nothing written), "
        "2 a setup problem, 130/143 interrupted (nothing written).",
    ),
    Subcommand("info", "version, artifact hashes and metrics", None, model_commands.info),
    Subcommand(
        "export",
        "write the model as SQL (a query pricing a table of houses; the [sql] extra)",
        export_commands.export_arguments,
        export_commands.export,
        description="Write a query that prices every row of a table of houses (Kaggle's "
        "columns) inside a SQL engine: per row the key, the price (NULL if refused) and the "
        "reason. Generated from the model tables: regenerate after every release.",
    ),
    Subcommand(
        "drift",
        "compare logged houses with the training profile (PSI, KS, unseen labels)",
        log_commands.drift_arguments,
        log_commands.drift,
    ),
    Subcommand(
        "performance",
        "score the logged prices against the sale prices that came back (outcomes)",
        performance_commands.performance_arguments,
        performance_commands.performance,
        description="RMSLE, bias, MAE and the price ranges' coverage of the logged prices "
        "whose houses sold (outcomes), overall and by slice, beside the cross-validated "
        "figures of the manifest; judged only over performance.min_outcomes sales (config). "
        "Exit status: 0, 1 with --fail-on-worse when worse, 2 a setup problem.",
    ),
    Subcommand(
        "outcomes",
        "store sale prices of priced houses (outcomes) from a CSV file: outcomes import FILE",
        outcome_commands.outcomes_arguments,
        outcome_commands.outcomes,
        description="Realised sale prices, stored beside the prediction log as POST "
        "/api/v1/outcomes stores them. `outcomes import FILE --help` lists the columns.",
    ),
    Subcommand(
        "compare",
        "the champion's logged prices against a shadow challenger's (and their realised errors)",
        compare_commands.compare_arguments,
        compare_commands.compare,
        description="How far a shadow challenger (the service's CHALLENGER_MODEL_DIR) "
        "disagrees with the prices the service answered: quantiles of the relative "
        "difference, the shares beyond 1/5/10 %%, by slice, the houses that moved most, and "
        "both models' realised RMSLE on the houses whose sale price came back. Exit status: "
        "0, 1 no shadow prices, 2 a setup problem.",
    ),
    Subcommand(
        "market-data",
        "write the sold houses of the log (inputs and sale prices) as training rows",
        market_commands.market_data_arguments,
        market_commands.market_data,
        description="Write the houses whose sale prices came back (outcomes) as rows of "
        "train.csv's format: the logged inputs under Kaggle's names and the price they sold "
        "for, one row per Id (its latest sale), for the config's market_data_files.",
    ),
    Subcommand(
        "log-migrate",
        "create or upgrade the prediction log's schema (Alembic)",
        log_commands.log_migrate_arguments,
        log_commands.log_migrate,
    ),
    Subcommand(
        "log-prune",
        "delete prediction log records older than a span or a time (retention)",
        log_commands.log_prune_arguments,
        log_commands.log_prune,
        description="Delete the prediction log's records logged before --older-than, in "
        "short transactions (the API's writers go on meanwhile). The API does this itself "
        "with PREDICTION_LOG_RETENTION_DAYS.",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regression-model", description="House-price model: train, predict, inspect."
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "--config",
        type=Path,
        help=f"alternative config file (default: ${CONFIG_ENV_VAR} or the packaged config.yml)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        subparser = commands.add_parser(
            command.name, help=command.help, description=command.description
        )
        if command.arguments is not None:
            command.arguments(subparser)
        subparser.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config:
        os.environ[CONFIG_ENV_VAR] = str(args.config.resolve())
    try:
        return int(args.handler(args))
    except (ConfigError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


__all__ = ["SUBCOMMANDS", "Subcommand", "build_parser", "main"]
