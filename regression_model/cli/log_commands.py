"""The prediction log's commands: ``drift``, ``log-migrate`` and ``log-prune``.

Each finds the log as :mod:`regression_model.cli.log_access` says
(``--database-url``, else the environment) and needs the ``[log]`` extra;
``drift``'s plot needs ``[drift]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from regression_model.cli.arguments import parse_since, positive
from regression_model.cli.log_access import (
    DATABASE_URL_HELP,
    database_url_argument,
    existing_log,
    log_engine,
    log_url,
    shown,
    unreadable,
)
from regression_model.config.core import get_config
from regression_model.monitoring.log_location import log_files
from regression_model.output_files import OutputError, check_target, figure_format, write_text
from regression_model.scoring.artifact import load_tables
from regression_model.version import __version__

DRIFT_EXTRA_HINT = "the plot needs matplotlib: pip install 'ames-regression-model[drift]'"


def drift_arguments(parser: argparse.ArgumentParser) -> None:
    database_url_argument(parser)
    parser.add_argument(
        "--since", type=parse_since, help="ISO 8601 time or a span back from now (24h, 7d)"
    )
    parser.add_argument(
        "--model-version", help=f"houses priced by this version (default: {__version__})"
    )
    parser.add_argument(
        "--plot", default="drift.png", help="PNG to write (default: drift.png; 'none': no plot)"
    )
    parser.add_argument("--json", help="also write the summary as JSON to this file ('-': stdout)")
    parser.add_argument(
        "--fail-on-drift", action="store_true", help="exit 1 when a feature or the prices drift"
    )


def log_migrate_arguments(parser: argparse.ArgumentParser) -> None:
    database_url_argument(parser, DATABASE_URL_HELP)


def log_prune_arguments(parser: argparse.ArgumentParser) -> None:
    database_url_argument(parser, DATABASE_URL_HELP)
    parser.add_argument(
        "--older-than",
        required=True,
        type=parse_since,
        metavar="SPAN_OR_TIME",
        help="a span back from now (90d, 12w, 24h) or an ISO 8601 time",
    )
    parser.add_argument(
        "--batch-rows",
        type=positive,
        metavar="N",
        help="records deleted per transaction (default: the package's PRUNE_BATCH_ROWS)",
    )


def drift(args: argparse.Namespace) -> int:
    url = log_url(args)
    if url is None:
        return 2
    from sqlalchemy.exc import SQLAlchemyError

    from regression_model.monitoring.drift import DriftAccumulator
    from regression_model.monitoring.log_rows import Unreadable
    from regression_model.monitoring.log_store import read_log

    config = get_config()
    _, manifest = load_tables(config)
    version = judged_version(args, manifest, "its training profile cannot judge houses priced by")
    if version is None:
        return 2
    accumulator = DriftAccumulator(manifest, config)
    skipped = Unreadable()
    with existing_log(url) as engine:
        if engine is None:
            return 2
        protected = log_files(engine)
        if refused_outputs(args, protected):
            return 2
        try:
            for chunk in read_log(
                engine, since=args.since, model_version=version, unreadable=skipped
            ):
                accumulator.add([inputs for inputs, _ in chunk], [price for _, price in chunk])
        except SQLAlchemyError as exc:
            return unreadable(exc)
    report = accumulator.report(
        model_version=version,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        since=args.since.isoformat(timespec="seconds") if args.since else None,
        source=shown(engine),
        unreadable=skipped.records,
    )
    print(format_drift_table(report))

    def draw() -> Path:
        from regression_model.monitoring.drift_plot import plot_drift

        logged = np.concatenate(accumulator.logged_prices or [np.empty(0)])
        return plot_drift(report, manifest["predictions"], logged, Path(args.plot), protected)

    if not write_report_files(report, args, protected, draw):
        return 2
    return 1 if args.fail_on_drift and (report["drifting"] or report["prices"]["drifting"]) else 0


def write_report_files(
    report: dict[str, Any],
    args: argparse.Namespace,
    inputs: dict[str, str],
    draw: Callable[[], Path],
) -> bool:
    """A report's ``--json`` and ``--plot`` (``drift``, ``performance``;
    ``draw`` imports its plotting module and writes the plot): False after
    saying why one could not be written. Without matplotlib there is no plot,
    with a warning."""
    try:
        if args.json:
            write_json(report, args.json, inputs)
        if args.plot != "none":
            try:
                plot = draw()
            except ImportError as exc:  # pragma: no cover - the [drift] extra is missing
                print(f"warning: no plot: {DRIFT_EXTRA_HINT} ({exc})", file=sys.stderr)
            else:
                print(f"plot: {plot}")
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


def refused_outputs(args: argparse.Namespace, inputs: dict[str, str]) -> bool:
    """``--json`` and ``--plot`` (``drift``, ``performance``) checked before
    the log is read (:func:`regression_model.output_files.check_target`: not
    the log's ``inputs``, a directory that exists; a plot format matplotlib
    writes): True after saying why one cannot be written."""
    try:
        if args.json and args.json != "-":
            check_target(args.json, inputs)
        if args.plot != "none":
            check_target(args.plot, inputs)
            with contextlib.suppress(ImportError):  # no plot without [drift]: said later
                figure_format(args.plot)
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return True
    return False


def judged_version(args: argparse.Namespace, manifest: dict[str, Any], cannot: str) -> str | None:
    """``--model-version`` (default: this package's), when it is the installed
    model's, whose manifest judges it; else None, after saying the installed
    model ``cannot`` judge it (``drift``, ``performance``)."""
    version: str = args.model_version or __version__
    if version != manifest["version"]:
        print(f"error: the installed model is {manifest['version']}; {cannot} {version}",
              file=sys.stderr)  # fmt: skip
        return None
    return version


def write_json(report: dict[str, Any], target: str, inputs: dict[str, str]) -> None:
    """``--json``: the report as JSON, to the file ``target`` (written whole,
    never over the log's ``inputs``: an OutputError) or ('-') stdout."""
    text = json.dumps(report, indent=2)
    if target == "-":
        print(text)
    else:
        write_text(target, text + "\n", inputs=inputs)


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_drift_table(report: dict[str, Any]) -> str:
    """The drift report as a text table, most shifted features first."""
    features = sorted(report["features"], key=lambda f: (not f["drifting"], -(f["psi"] or 0.0)))
    lines = [
        f"{'feature':<16} {'type':<11} {'missing tr/log':>15} {'PSI':>7} {'KS':>6} "
        f"{'KS p':>9} {'unseen':>7}  drifting"
    ]
    for f in features:
        missing = f["missing_share"]
        logged = "-" if missing["logged"] is None else f"{missing['logged']:.2f}"
        p_value = "-" if f["ks_p_value"] is None else f"{f['ks_p_value']:.1e}"
        lines.append(
            f"{f['input_field']:<16} {f['type']:<11} {missing['training']:>7.2f}/{logged:<7} "
            f"{_number(f['psi']):>7} {_number(f['ks_statistic']):>6} {p_value:>9} "
            f"{_number(f['unseen_share']):>7}  {', '.join(f['reasons']) if f['drifting'] else ''}"
        )
    prices = report["prices"]
    shift = "-" if prices["shift"] is None else f"{prices['shift']:+.1%}"
    logged_median = "-" if prices["logged_median"] is None else f"{prices['logged_median']:,.0f}"
    lines += [
        "",
        f"predicted prices: median {logged_median} vs {prices['training_median']:,.0f} in "
        f"training ({shift}), PSI {_number(prices['psi'])}, KS {_number(prices['ks_statistic'])}"
        + ("  DRIFTING" if prices["drifting"] else ""),
        f"houses compared: {report['houses']:,} (rejected, not compared: {report['rejected']:,})"
        + ("" if report["enough_houses"] else
           f"; fewer than {report['thresholds']['min_records']}: nothing is marked"),
        f"drifting features: {', '.join(report['drifting']) or 'none'}",
    ]  # fmt: skip
    if report.get("unreadable"):
        lines.append(unreadable_line(report["unreadable"]))
    return "\n".join(lines)


def unreadable_line(count: int) -> str:
    """What a report says of the log's records it skipped (``unreadable``)."""
    return (
        f"unreadable records skipped: {count:,} (a value the log's column cannot hold: "
        "not JSON, not a number, not a time)"
    )


def log_migrate(args: argparse.Namespace) -> int:
    url = log_url(args)
    if url is None:
        return 2
    from sqlalchemy.exc import SQLAlchemyError

    from regression_model.monitoring.log_store import migrate

    with log_engine(url) as engine:
        try:
            migrate(engine)
        except (SQLAlchemyError, OSError) as exc:  # a read-only or full disk, its lock file
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            where = exc.filename if isinstance(exc, OSError) and exc.filename else shown(engine)
            print(f"error: cannot migrate the prediction log: {where}: {reason}", file=sys.stderr)
            return 2
    print(f"prediction log schema up to date: {shown(engine)}")
    return 0


def log_prune(args: argparse.Namespace) -> int:
    """Delete the records logged before ``--older-than`` (retention by hand;
    the API's writer does the same with PREDICTION_LOG_RETENTION_DAYS)."""
    url = log_url(args)
    if url is None:
        return 2
    from sqlalchemy.exc import SQLAlchemyError

    from regression_model.monitoring.log_store import PRUNE_BATCH_ROWS, prune_log

    before: datetime = args.older_than
    with existing_log(url, "write") as engine:
        if engine is None:
            return 2
        try:
            deleted = prune_log(engine, before, batch_rows=args.batch_rows or PRUNE_BATCH_ROWS)
        except SQLAlchemyError as exc:
            # One line: the driver's reason (a read-only log: "attempt to write a
            # readonly database"), not the statement and its parameters.
            first = (str(exc).splitlines() or [""])[0]
            print(f"error: cannot prune the prediction log {shown(engine)}: {first}",
                  file=sys.stderr)  # fmt: skip
            return 2
    print(f"deleted {deleted} records logged before {before.isoformat(timespec='seconds')} "
          f"from {shown(engine)}")  # fmt: skip
    return 0
