"""The files of a model report, and how serving reads its plots.

``regression-model report`` (``report.py``) writes ``report.html``, PNG
plots and ``report.json`` into a directory, by default the one beside the
artifact (``trained_models/<name>_v<VERSION>_report/``), where the API finds
them. Reading them needs neither matplotlib nor pandas: the API serves the
PNGs as they were drawn.

``report.json`` names the manifest the report was made from (its
``manifest_sha256``) and each plot's sha256. Plots are served only for the
model they describe and only as written: a report left from an earlier
training, or a PNG changed since, is not served.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Every plot a report has: file name -> title.
PLOTS: dict[str, str] = {
    "predicted_vs_actual.png": "Predicted vs actual price (cross-validated)",
    "residuals_by_neighbourhood.png": "Errors by neighbourhood",
    "residuals_by_price_band.png": "Errors by price band",
    "largest_terms.png": "The model's largest terms",
    "term_curves.png": "How the largest numerical terms bend",
    "learning_curve.png": "Learning curve",
    "staleness.png": "Staleness: a model fitted on 2006-2007 sales, on later years",
    "baselines.png": "The model against its baselines",
}
INDEX_FILE = "report.json"
HTML_FILE = "report.html"


class ReportUnavailableError(RuntimeError):
    """There is no usable report for this model; the message says why."""


@dataclass(frozen=True)
class Plot:
    name: str
    title: str
    png: bytes


def read_plots(directory: Path, manifest: dict[str, Any]) -> dict[str, Plot]:
    """The plots of the report in ``directory``, checked against the model's
    ``manifest`` and their recorded sha256; raises
    :class:`ReportUnavailableError` when there are none to serve."""
    hint = "write one with `regression-model report`"
    try:
        index = json.loads((directory / INDEX_FILE).read_text())
    except FileNotFoundError:
        raise ReportUnavailableError(f"no report in {directory}: {hint}") from None
    except (OSError, ValueError) as exc:
        raise ReportUnavailableError(f"{directory / INDEX_FILE} is unreadable ({exc})") from exc
    if not isinstance(index, dict) or index.get("manifest_sha256") != manifest.get(
        "manifest_sha256"
    ):
        raise ReportUnavailableError(
            f"the report in {directory} describes another training of the model: {hint}"
        )
    plots: dict[str, Plot] = {}
    for entry in index.get("plots", []):
        name = str(entry.get("file"))
        if name not in PLOTS:
            continue  # only known names: the index cannot point anywhere else
        try:
            png = (directory / name).read_bytes()
        except OSError as exc:
            raise ReportUnavailableError(f"{directory / name} is unreadable ({exc})") from exc
        if hashlib.sha256(png).hexdigest() != entry.get("sha256"):
            raise ReportUnavailableError(f"{directory / name} changed after the report was made")
        plots[name] = Plot(name, PLOTS[name], png)
    return plots
