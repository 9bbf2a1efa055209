"""``regression-model performance``: the served prices against the sale prices
that came back (outcomes), beside the cross-validated figures.

Finds the log as :mod:`regression_model.cli.log_access` says (``--database-url``,
else the environment) and needs the ``[log]`` extra; the plot needs ``[drift]``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from regression_model.cli.arguments import parse_since
from regression_model.cli.log_access import (
    database_url_argument,
    existing_log,
    log_url,
    shown,
    unreadable,
)
from regression_model.cli.log_commands import (
    judged_version,
    refused_outputs,
    unreadable_line,
    write_report_files,
)
from regression_model.config.core import get_config
from regression_model.monitoring.log_location import log_files
from regression_model.scoring.artifact import load_tables
from regression_model.version import __version__


def performance_arguments(parser: argparse.ArgumentParser) -> None:
    database_url_argument(parser)
    parser.add_argument(
        "--since",
        type=parse_since,
        help="sales from that day on: an ISO 8601 time or a span back from now (90d, 12w)",
    )
    parser.add_argument(
        "--model-version", help=f"prices given by this version (default: {__version__})"
    )
    parser.add_argument(
        "--plot",
        default="performance.png",
        help="PNG to write (default: performance.png; 'none': no plot)",
    )
    parser.add_argument("--json", help="also write the summary as JSON to this file ('-': stdout)")
    parser.add_argument(
        "--fail-on-worse",
        action="store_true",
        help="exit 1 when the realised error is worse than cross-validation or a price "
        "range covers less than nominal",
    )


def performance(args: argparse.Namespace) -> int:
    url = log_url(args)
    if url is None:
        return 2
    from sqlalchemy.exc import SQLAlchemyError

    from regression_model.monitoring.log_rows import Unreadable
    from regression_model.monitoring.outcome_join import matched_outcomes
    from regression_model.monitoring.performance import PerformanceAccumulator

    config = get_config()
    _, manifest = load_tables(config)
    cannot = "its cross-validated figures cannot judge prices given by"
    version = judged_version(args, manifest, cannot)
    if version is None:
        return 2
    accumulator = PerformanceAccumulator(manifest, config, keep_points=args.plot != "none")
    since_day = args.since.astimezone(UTC).date() if args.since else None
    skipped = Unreadable()
    with existing_log(url) as engine:
        if engine is None:
            return 2
        protected = log_files(engine)
        if refused_outputs(args, protected):
            return 2
        try:
            for read, sales in matched_outcomes(
                engine, config, model_version=version, since=since_day, unreadable=skipped
            ):
                accumulator.add(read, sales)
        except SQLAlchemyError as exc:
            return unreadable(exc)
    report = accumulator.report(
        model_version=version,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        since=since_day.isoformat() if since_day else None,
        source=shown(engine),
        unreadable=skipped.records,
    )
    print(format_performance_table(report))

    def draw() -> Path:
        from regression_model.monitoring.performance_plot import plot_performance

        return plot_performance(report, accumulator.points, Path(args.plot), protected)

    if not write_report_files(report, args, protected, draw):
        return 2
    return 1 if args.fail_on_worse and judged_worse(report) else 0


def judged_worse(report: dict[str, Any]) -> bool:
    """Worse than cross-validation overall, or a price range below nominal."""
    from regression_model.monitoring.performance import BELOW_NOMINAL, WORSE

    overall = report["overall"]
    return overall["verdict"] == WORSE or any(
        level["verdict"] == BELOW_NOMINAL for level in overall["coverage"]
    )


def _figure(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def _row(name: str, figures: dict[str, Any]) -> str:
    cv = figures["cross_validation"]
    coverage = "  ".join(
        f"{level['coverage']:.0%}:{_figure(level['realised'], '.2f')}"
        for level in figures["coverage"]
    )
    return (
        f"{name:<28} {figures['outcomes']:>7,} {_figure(figures['rmsle'], '.4f'):>7} "
        f"{_figure(cv['rmsle'], '.4f'):>7} {_figure(figures['bias'], '+.4f'):>8} "
        f"{_figure(figures['mae'], ',.0f'):>9}  {coverage:<20} {figures['verdict']}"
    )


def format_performance_table(report: dict[str, Any]) -> str:
    """The report as a text table: overall, each price range, then each slice."""
    overall = report["overall"]
    lines = [
        f"{'':<28} {'sales':>7} {'RMSLE':>7} {'CV':>7} {'bias':>8} {'MAE $':>9}  "
        f"{'in range':<20} verdict",
        _row("overall", overall),
    ]
    for level in overall["coverage"]:
        cv = _figure(level["cv_coverage"], ".3f")
        lines.append(
            f"  {level['coverage']:.0%} range: {_figure(level['realised'], '.3f')} of "
            f"{level['outcomes']:,} "
            f"sales inside (CV {cv}, nominal {level['coverage']:.2f}): {level['verdict']}"
        )
    for name, rows in report["slices"].items():
        lines.append(f"\nby {name}")
        lines += [_row(f"  {row['label']}"[:28], row) for row in rows]
    if report["largest_errors"]:
        lines.append("\nlargest errors (ln predicted - ln sold)")
        lines += [
            f"  {sale['log_error']:+.3f}  {sale['price']:>11,.0f} vs {sale['sale_price']:>11,.0f} "
            f"sold {sale['sale_date']}  {sale['reference']}"
            for sale in report["largest_errors"]
        ]
    thresholds = report["thresholds"]
    lines += [
        "",
        f"outcomes: {report['outcomes']:,} ({report['matched']:,} matched to a logged price of "
        f"{report['model_version']}, {report['unmatched']:,} not)"
        + ("" if report["enough_outcomes"] else
           f"; fewer than {thresholds['min_outcomes']}: nothing is judged"),
        *([unreadable_line(report["unreadable"])] if report.get("unreadable") else []),
        f"verdict: {report['verdict']} (worse: RMSLE above CV x {1 + thresholds['rmsle_margin']:g}"
        f"; a range below nominal by more than {thresholds['coverage_margin']:g})",
    ]  # fmt: skip
    return "\n".join(lines)
