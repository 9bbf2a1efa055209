"""``regression-model`` command line: train, report, predict, info, drift, log-migrate,
log-prune.

Also reachable as ``python -m regression_model``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from regression_model.batch.run import FORMATS
from regression_model.config.core import CONFIG_ENV_VAR, ConfigError, get_config
from regression_model.monitoring import since
from regression_model.scoring.artifact import (
    ArtifactError,
    ArtifactPaths,
    load_tables,
    verify_artifact,
)
from regression_model.scoring.model import CHUNK_ROWS, ENGINES
from regression_model.scoring.report_files import (
    HTML_FILE,
    PLOTS,
    ReportUnavailableError,
    read_report,
)
from regression_model.version import __version__

LOG_EXTRA_HINT = (
    "the prediction log needs SQLAlchemy, Alembic and psycopg: "
    "pip install 'ames-regression-model[log]'"
)
DRIFT_EXTRA_HINT = "the plot needs matplotlib: pip install 'ames-regression-model[drift]'"
TRAIN_EXTRA_HINT = (
    "training needs scikit-learn and feature-engine: pip install 'ames-regression-model[train]'"
)


def _train(args: argparse.Namespace) -> int:
    try:
        from regression_model.training.train import (
            ModelQualityError,
            TrainingDataError,
            run_training,
        )
    except ImportError as exc:
        print(f"error: {TRAIN_EXTRA_HINT} ({exc})", file=sys.stderr)
        return 2
    config = get_config()
    paths = ArtifactPaths.for_version(config)
    if args.if_needed:
        try:
            verify_artifact(paths, config)
        except ArtifactError as reason:
            print(f"no usable artifact, training one now ({reason})", file=sys.stderr)
        else:
            print(f"up to date: {paths.pickle}")
            return 0
    try:
        result = run_training(config)
    except (ModelQualityError, TrainingDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    manifest = result.manifest
    cv = manifest["metrics"]["cross_validation"]
    evaluation, versus, worst = manifest["evaluation"], manifest["baselines"], manifest["slices"]
    print(f"trained {result.paths.pickle}")
    print(
        f"  {cv['repeats']} x {cv['folds']}-fold nested CV: RMSLE {cv['rmsle_mean']:.4f} "
        f"(± {cv['rmsle_std']:.4f} over folds, ± {cv['rmsle_repeat_std']:.4f} over repeats), "
        f"RMSE {cv['rmse_mean']:,.0f}, MAE {cv['mae_mean']:,.0f}, R² {cv['r2_mean']:.4f}"
    )
    for name, baseline in versus["models"].items():
        print(f"  baseline {name}: RMSLE {baseline['rmsle_mean']:.4f}")
    print(
        f"  {versus['improvement_over_best']:.0%} below the best baseline "
        f"(at least {versus['min_improvement']:.0%} required)"
    )
    print(
        f"  worst slice ({worst['min_houses']}+ houses): {worst['worst']['slice']} = "
        f"{worst['worst']['label']}, RMSLE {worst['worst']['rmsle']:.4f} "
        f"(at most {worst['max_rmsle']} allowed)"
    )
    print(
        f"  final model: alpha {evaluation['alpha']}, "
        f"{len(evaluation['trimmed']['ids'])} houses trimmed from the second fit"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    try:
        from regression_model.training.model_report import ReportError, write_report
    except ImportError as exc:
        print(f"error: {TRAIN_EXTRA_HINT} ({exc})", file=sys.stderr)
        return 2
    config = get_config()
    paths = ArtifactPaths.for_version(config)
    if args.if_needed and args.output is None:
        try:
            _, manifest = load_tables(config)
            if len(read_report(paths.report, manifest).plots) != len(PLOTS):
                raise ReportUnavailableError("some plots are missing")
        except ReportUnavailableError as reason:
            print(f"writing the report ({reason})", file=sys.stderr)
        else:
            print(f"up to date: {paths.report / HTML_FILE}")
            return 0
    try:
        page = write_report(config, args.output)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {page} and {len(PLOTS)} plots beside it")
    return 0


def _predict(args: argparse.Namespace) -> int:
    """Stream the input through the model (exit 0: every row priced, 3: some
    rejected, 1: a bad file, 2: a setup problem, 128 + N: stopped by signal N)."""
    from regression_model.batch import run as batch

    config = get_config()
    progress = not args.quiet and sys.stderr.isatty()
    try:
        if args.dask is not None:
            from regression_model.batch import dask_scoring

            counts = dask_scoring.score_files(
                args.input,
                args.output,
                address=args.dask,
                config=config.model,
                input_format=args.input_format,
                output_format=args.output_format,
                allow_missing_columns=args.allow_missing_columns,
                strict=args.strict,
                progress=progress,
            )
        else:
            counts = batch.score_file(
                args.input,
                args.output,
                config=config.model,
                engine=args.engine,
                input_format=args.input_format,
                output_format=args.output_format,
                chunk_rows=args.chunk_rows,
                allow_missing_columns=args.allow_missing_columns,
                strict=args.strict,
                progress=progress,
            )
    except batch.BatchFileError as exc:
        print(f"error: {exc}; nothing written", file=sys.stderr)
        return 1
    except batch.ScoringSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except batch.Interrupted as stop:
        print(
            f"interrupted by {stop}"
            + ("" if stop.rows is None else f" after {stop.rows:,} rows")
            + f"; nothing written to {args.output}",
            file=sys.stderr,
        )
        return 128 + stop.signum
    except BrokenPipeError:  # stdout closed by its reader (| head): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:  # before any row was read (loading the model, starting Dask)
        print(f"interrupted; nothing written to {args.output}", file=sys.stderr)
        return 130
    for ignored in counts.ignored:  # never silently: each column the model does not know
        print(f"warning: column {ignored.field!r}: {ignored.message}", file=sys.stderr)
    print(
        f"priced {counts.priced} of {counts.read} rows with model {__version__}"
        + (f"; {counts.rejected} rejected (see the errors column)" if counts.rejected else "")
        + (f"; {len(counts.ignored)} unknown column(s) ignored" if counts.ignored else ""),
        file=sys.stderr,
    )
    return 3 if counts.rejected else 0


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _info(args: argparse.Namespace) -> int:
    """The model that serves (the tables) must be usable; the pickle is
    reported too, usable only where the training libraries are installed."""
    config = get_config()
    paths = ArtifactPaths.for_version(config)
    info: dict[str, object] = {"version": __version__, "config": str(config.source)}
    try:
        _, manifest = load_tables(config)
    except ArtifactError as exc:
        info["tables"] = {"path": str(paths.tables), "usable": False, "reason": str(exc)}
        print(json.dumps(info, indent=2))
        return 1
    info["tables"] = {"path": str(paths.tables), "usable": True, **manifest["tables"]}
    try:
        verify_artifact(paths, config)
        usable: dict[str, object] = {"usable": True}
    except ArtifactError as exc:
        usable = {"usable": False, "reason": str(exc)}
    info["artifact"] = {"path": str(paths.pickle), **manifest["artifact"], **usable}
    for key in ("trained_at", "training_data", "config", "environment", "metrics"):
        info[key] = manifest[key]
    print(json.dumps(info, indent=2))
    return 0


#: Where ``drift``, ``log-migrate`` and ``log-prune`` find the prediction log when not told.
LOG_ENV_VARS = ("DATABASE_URL", "PREDICTION_LOG_PATH")


def parse_since(text: str) -> datetime:
    """``--since`` and ``--older-than``: see :func:`monitoring.since.parse_since`."""
    try:
        return since.parse_since(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _log_url(args: argparse.Namespace) -> str | None:
    """The prediction log's URL: --database-url, else the environment; None
    (after saying what to set) when neither gives one."""
    url = args.database_url or next(
        (os.environ[name] for name in LOG_ENV_VARS if os.environ.get(name)), None
    )
    if url is None:
        print("error: say where the log is: --database-url, $DATABASE_URL or "
              "$PREDICTION_LOG_PATH", file=sys.stderr)  # fmt: skip
    return url


def _drift(args: argparse.Namespace) -> int:
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from regression_model.monitoring.log_store import create_log_engine, read_log
    except ImportError as exc:
        print(f"error: {LOG_EXTRA_HINT} ({exc})", file=sys.stderr)
        return 2
    from regression_model.monitoring.drift import DriftAccumulator

    url = _log_url(args)
    if url is None:
        return 2
    config = get_config()
    _, manifest = load_tables(config)
    version = args.model_version or __version__
    if version != manifest["version"]:
        print(f"error: the installed model is {manifest['version']}; its training profile "
              f"cannot judge houses priced by {version}", file=sys.stderr)  # fmt: skip
        return 2
    accumulator = DriftAccumulator(manifest, config)
    engine = create_log_engine(url)
    try:
        for chunk in read_log(engine, since=args.since, model_version=version):
            accumulator.add([inputs for inputs, _ in chunk], [price for _, price in chunk])
    except SQLAlchemyError as exc:
        print(f"error: cannot read the prediction log: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    report = accumulator.report(
        model_version=version,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        since=args.since.isoformat(timespec="seconds") if args.since else None,
        source=engine.url.render_as_string(hide_password=True),
    )
    print(format_drift_table(report))
    if args.json:
        text = json.dumps(report, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    if args.plot != "none":
        try:
            from regression_model.monitoring.drift_plot import plot_drift
        except ImportError as exc:  # pragma: no cover - the [drift] extra is missing
            print(f"warning: no plot: {DRIFT_EXTRA_HINT} ({exc})", file=sys.stderr)
        else:
            logged = np.concatenate(accumulator.logged_prices or [np.empty(0)])
            path = plot_drift(report, manifest["predictions"], logged, Path(args.plot))
            print(f"plot: {path}")
    return 1 if args.fail_on_drift and (report["drifting"] or report["prices"]["drifting"]) else 0


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
    return "\n".join(lines)


def _log_migrate(args: argparse.Namespace) -> int:
    try:
        from regression_model.monitoring.log_store import create_log_engine, migrate
    except ImportError as exc:
        print(f"error: {LOG_EXTRA_HINT} ({exc})", file=sys.stderr)
        return 2
    url = _log_url(args)
    if url is None:
        return 2
    engine = create_log_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    print(f"prediction log schema up to date: {engine.url.render_as_string(hide_password=True)}")
    return 0


def _log_prune(args: argparse.Namespace) -> int:
    """Delete the records logged before ``--older-than`` (retention by hand;
    the API's writer does the same with PREDICTION_LOG_RETENTION_DAYS)."""
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from regression_model.monitoring.log_store import (
            PRUNE_BATCH_ROWS,
            create_log_engine,
            prune_log,
        )
    except ImportError as exc:
        print(f"error: {LOG_EXTRA_HINT} ({exc})", file=sys.stderr)
        return 2
    url = _log_url(args)
    if url is None:
        return 2
    before: datetime = args.older_than
    engine = create_log_engine(url)
    source = engine.url.render_as_string(hide_password=True)
    try:
        deleted = prune_log(engine, before, batch_rows=args.batch_rows or PRUNE_BATCH_ROWS)
    except SQLAlchemyError as exc:
        print(f"error: cannot prune the prediction log: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"deleted {deleted} records logged before {before.isoformat(timespec='seconds')} "
          f"from {source}")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
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
    train = commands.add_parser("train", help="train, evaluate and save the model")
    train.add_argument(
        "--if-needed",
        action="store_true",
        help="only train when no valid artifact exists for this version and config",
    )
    train.set_defaults(handler=_train)
    report = commands.add_parser(
        "report", help="write report.html and its plots: evaluation, baselines, slices"
    )
    report.add_argument(
        "--output",
        type=Path,
        help="directory to write to (default: beside the artifact, where the API serves "
        "the plots from)",
    )
    report.add_argument(
        "--if-needed",
        action="store_true",
        help="only write the default report when it is missing or describes another training",
    )
    report.set_defaults(handler=_report)
    predict = commands.add_parser(
        "predict",
        help="price the houses of a CSV or Parquet file, streamed in chunks",
        description="Price every row of a CSV or Parquet file (Kaggle columns), a chunk at a "
        "time in bounded memory; write Id, SalePrice and errors (why a row was not priced). "
        "Exit status: 0 all priced, 3 some rejected, 1 a bad file (nothing written), "
        "2 a setup problem, 130/143 interrupted (nothing written).",
    )
    predict.add_argument(
        "--input",
        required=True,
        help="CSV or Parquet file, - for CSV on stdin; with --dask also a directory or a glob",
    )
    predict.add_argument(
        "--output",
        default="-",
        help="file for Id, SalePrice, errors (default: CSV on stdout); with --dask a directory",
    )
    predict.add_argument("--input-format", choices=FORMATS, help="default: from the extension")
    predict.add_argument("--output-format", choices=FORMATS, help="default: from the extension")
    predict.add_argument(
        "--chunk-rows",
        type=_positive,
        default=CHUNK_ROWS,
        metavar="N",
        help="rows read, scored and written at a time (default: %(default)s)",
    )
    predict.add_argument(
        "--allow-missing-columns",
        action="store_true",
        help="impute model inputs the file has no column for, in every row",
    )
    predict.add_argument(
        "--strict",
        action="store_true",
        help="refuse, in every row, columns that are not model inputs (default: ignore them, "
        "named on stderr)",
    )
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="score on Dask: 'local' (a cluster on this machine) or a scheduler address "
        "such as tcp://host:8786 (needs the [dask] extra)",
    )
    predict.add_argument(
        "--engine",
        choices=ENGINES,
        default="tables",
        help="tables: the compiled model (default); pipeline: the fitted scikit-learn pipeline",
    )
    predict.set_defaults(handler=_predict)
    info = commands.add_parser("info", help="version, artifact hashes and metrics")
    info.set_defaults(handler=_info)
    drift = commands.add_parser(
        "drift", help="compare logged houses with the training profile (PSI, KS, unseen labels)"
    )
    drift.add_argument(
        "--database-url",
        help="the prediction log: a SQLAlchemy URL or a SQLite file "
        "(default: $DATABASE_URL, then $PREDICTION_LOG_PATH)",
    )
    drift.add_argument(
        "--since", type=parse_since, help="ISO 8601 time or a span back from now (24h, 7d)"
    )
    drift.add_argument(
        "--model-version", help=f"houses priced by this version (default: {__version__})"
    )
    drift.add_argument(
        "--plot", default="drift.png", help="PNG to write (default: drift.png; 'none': no plot)"
    )
    drift.add_argument("--json", help="also write the summary as JSON to this file ('-': stdout)")
    drift.add_argument(
        "--fail-on-drift", action="store_true", help="exit 1 when a feature or the prices drift"
    )
    drift.set_defaults(handler=_drift)
    log_migrate = commands.add_parser(
        "log-migrate", help="create or upgrade the prediction log's schema (Alembic)"
    )
    log_migrate.add_argument(
        "--database-url", help="default: $DATABASE_URL, then $PREDICTION_LOG_PATH"
    )
    log_migrate.set_defaults(handler=_log_migrate)
    log_prune = commands.add_parser(
        "log-prune",
        help="delete prediction log records older than a span or a time (retention)",
        description="Delete the prediction log's records logged before --older-than, in "
        "short transactions (the API's writers go on meanwhile). The API does this itself "
        "with PREDICTION_LOG_RETENTION_DAYS.",
    )
    log_prune.add_argument(
        "--database-url", help="default: $DATABASE_URL, then $PREDICTION_LOG_PATH"
    )
    log_prune.add_argument(
        "--older-than",
        required=True,
        type=parse_since,
        metavar="SPAN_OR_TIME",
        help="a span back from now (90d, 12w, 24h) or an ISO 8601 time",
    )
    log_prune.add_argument(
        "--batch-rows",
        type=_positive,
        metavar="N",
        help="records deleted per transaction (default: the package's PRUNE_BATCH_ROWS)",
    )
    log_prune.set_defaults(handler=_log_prune)
    args = parser.parse_args(argv)
    if args.config:
        os.environ[CONFIG_ENV_VAR] = str(args.config.resolve())
    try:
        return int(args.handler(args))
    except (ConfigError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
