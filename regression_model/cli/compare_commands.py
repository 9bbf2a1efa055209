"""``regression-model compare``: the champion's logged prices against a shadow
challenger's (see :mod:`regression_model.monitoring.comparison`), as text or
JSON. Finds the log as :mod:`regression_model.cli.log_access` says and needs
the ``[log]`` extra."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from regression_model.cli.arguments import parse_since, positive
from regression_model.cli.log_access import (
    database_url_argument,
    existing_log,
    log_url,
    shown,
    unreadable,
)
from regression_model.cli.log_commands import unreadable_line
from regression_model.config.core import get_config


def compare_arguments(parser: argparse.ArgumentParser) -> None:
    database_url_argument(parser)
    parser.add_argument(
        "--since",
        type=parse_since,
        help="houses logged since: an ISO 8601 time or a span back from now (30d, 24h); "
        "default: all",
    )
    parser.add_argument(
        "--challenger",
        help="the challenger's label (version+tables sha256 prefix, as /api/v1/health "
        "shows it); default: the one that shadowed last",
    )
    parser.add_argument(
        "--top", type=positive, default=10, help="houses that moved most to list (default: 10)"
    )
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")


def compare(args: argparse.Namespace) -> int:
    url = log_url(args)
    if url is None:
        return 2
    from sqlalchemy.exc import SQLAlchemyError

    from regression_model.monitoring.comparison import NoShadowPricesError
    from regression_model.monitoring.comparison import compare as compare_models

    config = get_config()
    with existing_log(url) as engine:
        if engine is None:
            return 2
        try:
            report = compare_models(
                engine, config, since=args.since, challenger=args.challenger, top=args.top
            )
        except NoShadowPricesError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except SQLAlchemyError as exc:
            return unreadable(exc)
        report["source"] = shown(engine)
    print(json.dumps(report, indent=2) if args.json else format_comparison(report))
    return 0


def _percent(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:+.2%}" if signed else f"{value:.1%}"


def _spread_line(name: str, spread: dict[str, Any], width: int) -> str:
    beyond = "  ".join(
        f"{_percent(share, signed=False):>6}" for share in spread["share_beyond"].values()
    )
    return (
        f"  {name:<{width}} {spread['houses']:>8,} "
        f"{_percent(spread['mean_relative_difference']):>9} "
        f"{_percent(spread['mean_absolute_relative_difference'], signed=False):>8}  {beyond}"
    )


def format_comparison(report: dict[str, Any], slice_rows: int = 8) -> str:
    """The comparison as text: what was compared, the distribution of the
    relative difference, the biggest slices, the houses that moved most and
    the realised errors."""
    compared = report["compared"]
    champions = ", ".join(report["champion_versions"]) or "-"
    lines = [
        f"challenger {report['challenger']} against the champion ({champions}), "
        f"houses logged since {report['since'] or 'the start'} ({report['source']})",
        f"houses priced by both: {compared['houses']:,}; by the champion only: "
        f"{report['priced_by_one_only']['champion_only']:,}; by the challenger only: "
        f"{report['priced_by_one_only']['challenger_only']:,}",
        "",
        "relative difference (challenger / champion - 1):",
        "  quantiles  " + "  ".join(f"{q}: {_percent(v)}" for q, v in report["quantiles"].items()),
        f"  mean {_percent(compared['mean_relative_difference'])}, mean absolute "
        f"{_percent(compared['mean_absolute_relative_difference'], signed=False)}; beyond "
        + ", ".join(
            f"{threshold}: {_percent(share, signed=False)}"
            for threshold, share in compared["share_beyond"].items()
        ),
    ]
    thresholds = "  ".join(f"{'>' + t:>6}" for t in compared["share_beyond"])
    for name, groups in report["slices"].items():
        if not groups:
            continue
        width = max(12, *(len(label) for label in list(groups)[:slice_rows]))
        lines += [
            "",
            f"by {name} (the {min(slice_rows, len(groups))} largest of {len(groups)}):",
            f"  {'':<{width}} {'houses':>8} {'mean':>9} {'mean abs':>8}  {thresholds}",
        ]
        lines += [
            _spread_line(label, spread, width)
            for label, spread in list(groups.items())[:slice_rows]
        ]
    if report["moved_most"]:
        lines += ["", "houses that moved most:"]
        lines.append(
            f"  {'request id':<34} {'row':>5} {'Id':>8} {'champion':>12} {'challenger':>12} "
            f"{'change':>8}"
        )
        for house in report["moved_most"]:
            lines.append(
                f"  {house['request_id']:<34} {house['row']:>5} {house['id'] or '-':>8} "
                f"{house['champion']:>12,.0f} {house['challenger']:>12,.0f} "
                f"{_percent(house['relative_difference']):>8}"
            )
    realised = report["realised"]
    lines.append("")
    if realised["houses"]:
        champion, challenger = realised["champion"], realised["challenger"]
        verdict = "worse" if challenger["rmsle"] > champion["rmsle"] else "better"
        lines += [
            f"realised on the {realised['houses']:,} of these houses that sold (outcomes):",
            f"  champion   RMSLE {champion['rmsle']:.4f}  bias {champion['bias']:+.4f}",
            f"  challenger RMSLE {challenger['rmsle']:.4f}  bias {challenger['bias']:+.4f}",
            f"  the challenger is {verdict} on these houses "
            f"({challenger['rmsle'] / champion['rmsle'] - 1:+.1%} RMSLE)",
        ]
    else:
        lines.append("realised: no outcome (sale price) for these houses yet")
    if report.get("unreadable"):
        lines.append(unreadable_line(report["unreadable"]))
    for other in report["other_challengers"]:
        lines.append(
            f"(another challenger shadowed too: {other['challenger']}, {other['houses']:,} "
            f"houses; --challenger to compare it)"
        )
    return "\n".join(lines)
