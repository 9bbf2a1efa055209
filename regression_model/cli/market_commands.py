"""``regression-model market-data``: the sold houses of the prediction log (the
logged inputs of the houses whose sale prices came back, with those prices)
as a CSV in ``train.csv``'s format, for the config's ``market_data_files``
(README, "Retraining on the market").

Finds the log as :mod:`regression_model.cli.log_access` says (``--database-url``,
else the environment) and needs the ``[log]`` extra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from regression_model.cli.log_access import database_url_argument, existing_log, log_url, shown
from regression_model.cli.log_commands import unreadable_line
from regression_model.config.core import get_config
from regression_model.output_files import OutputError


def market_data_arguments(parser: argparse.ArgumentParser) -> None:
    database_url_argument(parser)
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        help="the CSV to write (train.csv's columns: Id, the features, SalePrice)",
    )


def market_data(args: argparse.Namespace) -> int:
    url = log_url(args)
    if url is None:
        return 2
    from sqlalchemy.exc import SQLAlchemyError

    from regression_model.monitoring.market_export import export_market_data

    output: Path = args.output
    with existing_log(url) as engine:
        if engine is None:
            return 2
        try:
            summary = export_market_data(engine, get_config(), output)
        except SQLAlchemyError as exc:
            first = (str(exc).splitlines() or [""])[0]
            print(f"error: cannot read the log at {shown(engine)}: {first}", file=sys.stderr)
            return 2
        except OutputError as exc:  # checked before the log is read: never the log itself
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(
        f"wrote {summary.rows} sold house(s) to {output} from {summary.outcomes} outcome(s): "
        f"{summary.unmatched} match no priced house of the log, {summary.without_id} "
        f"logged without an integer Id, {summary.superseded} superseded by a later sale "
        "of the same house"
    )
    if summary.unreadable:
        print(unreadable_line(summary.unreadable))
    return 0
