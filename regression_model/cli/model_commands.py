"""The model's commands: ``train``, ``report``, ``predict`` and ``info``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from regression_model.batch import FORMATS
from regression_model.cli.arguments import coverage, positive
from regression_model.config.core import get_config
from regression_model.scoring.artifact import (
    ArtifactError,
    ArtifactPaths,
    load_tables,
    verify_artifact,
)
from regression_model.scoring.chunks import CHUNK_ROWS
from regression_model.scoring.intervals import UnknownCoverageError
from regression_model.scoring.model import ENGINES
from regression_model.scoring.report_files import (
    HTML_FILE,
    PLOTS,
    ReportUnavailableError,
    read_report,
)
from regression_model.version import __version__

TRAIN_EXTRA_HINT = (
    "training needs scikit-learn and feature-engine: pip install 'ames-regression-model[train]'"
)


def train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--if-needed",
        action="store_true",
        help="only train when no valid artifact exists for this version and config",
    )


def report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        type=Path,
        help="directory to write to (default: beside the artifact, where the API serves "
        "the plots from)",
    )
    parser.add_argument(
        "--if-needed",
        action="store_true",
        help="only write the default report when it is missing or describes another training",
    )


def predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        required=True,
        help="CSV or Parquet file, - for CSV on stdin; with --dask also a directory or a glob",
    )
    parser.add_argument(
        "--output",
        default="-",
        help="file for Id, SalePrice, its ranges (SalePrice_low_80, SalePrice_high_80, ...), "
        "errors (default: CSV on stdout); with --dask a directory",
    )
    parser.add_argument("--input-format", choices=FORMATS, help="default: from the extension")
    parser.add_argument("--output-format", choices=FORMATS, help="default: from the extension")
    parser.add_argument(
        "--chunk-rows",
        type=positive,
        default=CHUNK_ROWS,
        metavar="N",
        help="rows read, scored and written at a time (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-missing-columns",
        action="store_true",
        help="impute model inputs the file has no column for, in every row",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse, in every row, columns that are not model inputs (default: ignore them, "
        "named on stderr)",
    )
    parser.add_argument(
        "--coverage",
        type=coverage,
        action="append",
        metavar="C",
        help="write the price range at coverage C, such as 0.8, only (repeatable; default: "
        "each coverage the model was calibrated for)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="score on Dask: 'local' (a cluster on this machine) or a scheduler address "
        "such as tcp://host:8786 (needs the [dask] extra)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="tables",
        help="tables: the compiled model (default); pipeline: the fitted scikit-learn pipeline",
    )


def train(args: argparse.Namespace) -> int:
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


def report(args: argparse.Namespace) -> int:
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


def predict(args: argparse.Namespace) -> int:
    """Stream the input through the model (exit 0: every row priced, 3: some
    rejected, 1: a bad file, 2: a setup problem, 128 + N: stopped by signal N)."""
    from regression_model import batch

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
                coverages=args.coverage,
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
                coverages=args.coverage,
                progress=progress,
            )
    except batch.BatchFileError as exc:
        print(f"error: {exc}; nothing written", file=sys.stderr)
        return 1
    except batch.ScoringSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except UnknownCoverageError as exc:
        print(f"error: --coverage: {exc}; nothing written", file=sys.stderr)
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


def info(args: argparse.Namespace) -> int:
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
