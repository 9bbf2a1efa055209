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

import base64
import hashlib
import json
import re
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
    "range_calibration.png": "Price ranges: how often they hold the sale price, against nominal",
    "range_widths.png": "Price ranges: their widths over the training houses",
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


@dataclass(frozen=True)
class Report:
    """A verified report: the page, its plots, and the Content-Security-Policy
    source that allows the page's one inline style (and nothing else)."""

    html: bytes
    style_source: str
    plots: dict[str, Plot]


def style_source(page: str) -> str:
    """The CSP source (``'sha256-...'``) of the page's ``<style>`` element."""
    found = re.search(r"<style>(.*?)</style>", page, re.DOTALL)
    content = found.group(1) if found else ""
    digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def read_report(directory: Path, manifest: dict[str, Any]) -> Report:
    """The report in ``directory``, checked against the model's ``manifest``
    and the sha256 of each file; raises :class:`ReportUnavailableError`
    when there is none to serve."""
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
    page = _checked(directory, HTML_FILE, index.get("html_sha256"))
    plots: dict[str, Plot] = {}
    for entry in index.get("plots", []):
        name = str(entry.get("file"))
        if name in PLOTS:  # only known names: the index cannot point anywhere else
            plots[name] = Plot(name, PLOTS[name], _checked(directory, name, entry.get("sha256")))
    return Report(page, style_source(page.decode()), plots)


def _checked(directory: Path, name: str, expected: object) -> bytes:
    try:
        payload = (directory / name).read_bytes()
    except OSError as exc:
        raise ReportUnavailableError(f"{directory / name} is unreadable ({exc})") from exc
    if hashlib.sha256(payload).hexdigest() != expected:
        raise ReportUnavailableError(f"{directory / name} changed after the report was made")
    return payload
