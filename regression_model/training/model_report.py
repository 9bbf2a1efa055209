"""``regression-model report``: the model's evaluation as a page people read.

Writes into a directory (by default the one beside the artifact, where the
API serves the plots from, see ``scoring/report_files.py``):

- ``report.html``: the cross-validated error and its spread, the baselines,
  the error of every slice, the price ranges (coverage and width, by
  coverage and by slice), the penalty search and the trimmed houses, with
  the plots (``report_page``: ``templates/report.html`` filled with escaped
  values and the tables);
- PNG plots (``report_plots``: matplotlib, drawn off-screen): predicted vs
  actual, errors by neighbourhood and by price band, the largest terms, how
  the largest numerical terms bend, the learning curve, staleness, the
  baseline comparison, the price ranges' calibration and widths;
- ``report.json``: the index serving reads.

The numbers (``report_facts``) come from training's own evaluation, run
again (it is deterministic) and checked against the artifact's manifest, so
a report always describes the artifact beside it. Only the learning curve
and the staleness check are new here: they cost fits that training does not
need.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from threadpoolctl import threadpool_limits

from regression_model.config.core import Config
from regression_model.scoring.artifact import ArtifactPaths, load_tables
from regression_model.scoring.report_files import HTML_FILE, INDEX_FILE, PLOTS
from regression_model.training.evaluation import evaluate
from regression_model.training.report_facts import (
    ReportFacts,
    learning_curve,
    shipped_ranges,
    staleness,
    term_spread,
)
from regression_model.training.report_page import page as report_page
from regression_model.training.report_plots import draw_plots
from regression_model.training.train import load_training_data


class ReportError(RuntimeError):
    """The report cannot describe the artifact (it was trained otherwise)."""


def write_report(
    config: Config, output: Path | None = None, artifact_dir: Path | None = None
) -> Path:
    """Write the report of the trained model into ``output`` (default: beside
    the artifact); returns the path of ``report.html``."""
    paths = ArtifactPaths.for_version(config, directory=artifact_dir)
    output = output or paths.report
    tables, manifest = load_tables(config, paths.manifest.parent)
    data = load_training_data(config)
    with threadpool_limits(limits=1):
        evaluation = evaluate(config.model, data.X, data.y)
        recorded = manifest["metrics"]["cross_validation"]["rmsle_mean"]
        measured = evaluation.model.summary()["rmsle_mean"]
        if measured != recorded:
            raise ReportError(
                f"the evaluation of this code and config (CV RMSLE {measured!r}) is not the "
                f"artifact's ({recorded!r}): retrain with `regression-model train`"
            )
        alpha = float(manifest["evaluation"]["alpha"])
        learning = learning_curve(config.model, data, alpha)
        stale = staleness(config.model, data, alpha)
    facts = ReportFacts(
        config.model,
        manifest,
        tables,
        data,
        evaluation,
        learning,
        stale,
        term_spread(tables, config, data),
        shipped_ranges(tables, config, data),
    )
    output.mkdir(parents=True, exist_ok=True)
    draw_plots(facts, output)
    page = output / HTML_FILE
    page.write_text(report_page(facts), encoding="utf-8")
    index = {
        "version": manifest["version"],
        "manifest_sha256": manifest["manifest_sha256"],
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "html": HTML_FILE,
        "html_sha256": _sha256(page),
        "plots": [
            {"file": name, "title": title, "sha256": _sha256(output / name)}
            for name, title in PLOTS.items()
        ],
    }
    (output / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return page


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
