"""``regression-model report``: report.html, its plots and the index that
serving reads; a report always describes the artifact beside it."""

from __future__ import annotations

import copy
import html
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from regression_model.config.core import Config
from regression_model.scoring.artifact import ArtifactPaths, load_tables
from regression_model.scoring.report_files import (
    HTML_FILE,
    INDEX_FILE,
    PLOTS,
    ReportUnavailableError,
    read_report,
)
from regression_model.training.model_report import ReportError, write_report


@pytest.fixture(scope="module")
def report_dir(config: Config) -> Path:
    """The report beside the artifact (`tox -e test_package` writes it first)."""
    directory = ArtifactPaths.for_version(config).report
    _, manifest = load_tables(config)
    try:
        read_report(directory, manifest)
    except ReportUnavailableError:
        write_report(config)
    return directory


def test_the_report_indexes_its_page_and_every_plot(report_dir: Path, config: Config) -> None:
    _, manifest = load_tables(config)
    report = read_report(report_dir, manifest)
    assert list(report.plots) == list(PLOTS)
    for plot in report.plots.values():
        assert plot.png[:8] == b"\x89PNG\r\n\x1a\n" and len(plot.png) > 10_000, plot.name
    index = json.loads((report_dir / INDEX_FILE).read_text())
    assert index["manifest_sha256"] == manifest["manifest_sha256"]
    assert index["version"] == manifest["version"]
    assert report.style_source.startswith("'sha256-")


def test_the_page_shows_the_evaluation_baselines_slices_and_plots(
    report_dir: Path, config: Config
) -> None:
    _, manifest = load_tables(config)
    page = (report_dir / HTML_FILE).read_text()
    cv = manifest["metrics"]["cross_validation"]
    assert f"{cv['rmsle_mean']:.4f} ± {cv['rmsle_std']:.4f}" in page
    for name, baseline in manifest["baselines"]["models"].items():
        assert name.replace("_", " ") in page and f"{baseline['rmsle_mean']:.4f}" in page
    for slice_name, rows in manifest["slices"]["by"].items():
        assert f"<h3>{slice_name}</h3>" in page
        for row in rows:
            assert f"<td>{row['label']}</td><td>{row['houses']}</td>" in page
    assert page.count('<tr class="worst">') == 1
    assert re.findall(r'<img src="([^"]+)"', page) == list(PLOTS)
    for section in ("summary", "plots", "slices", "search", "staleness", "learning"):
        assert f'<section id="{section}">' in page
    assert ", ".join(map(str, manifest["evaluation"]["trimmed"]["ids"])) in page


def test_report_if_needed_keeps_an_up_to_date_report(report_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "regression_model", "report", "--if-needed"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("up to date:") and str(report_dir) in done.stdout


def test_a_report_of_other_code_or_config_is_refused(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report recomputes training's evaluation; numbers that differ from
    the manifest's mean the artifact was trained otherwise."""
    from regression_model.training import model_report as report

    real = report.evaluate

    def shifted(*args, **kwargs):  # type: ignore[no-untyped-def]
        evaluation = real(*args, **kwargs)
        return replace(
            evaluation, model=replace(evaluation.model, folds=evaluation.model.folds[1:])
        )

    monkeypatch.setattr(report, "evaluate", shifted)
    with pytest.raises(ReportError, match="retrain"):
        write_report(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_every_value_the_page_template_shows_is_escaped(config: Config) -> None:
    """The page is templates/report.html filled in with string.Template: text
    from the manifest is escaped, and a `$` in it is shown, not substituted."""
    from regression_model.training.report_facts import ReportFacts
    from regression_model.training.report_page import page as report_page

    _, manifest = load_tables(config)
    manifest = copy.deepcopy(manifest)
    hostile = '<script>&"$version ${name}</script>'
    manifest["name"] = manifest["training_data"]["file"] = hostile
    slices = manifest["slices"]
    first = next(iter(slices["by"]))
    slices["by"][hostile] = [dict(r, label=hostile + r["label"]) for r in slices["by"][first]]
    slices["worst"] = dict(
        slices["worst"], slice=hostile, label=hostile + slices["by"][first][0]["label"]
    )
    learning = [{"houses": 100.0, "training_rmsle": 0.1, "cv_rmsle": 0.12, "cv_rmsle_std": 0.01}]
    stale = [{"year": 2007.0, "houses": 100.0, "rmsle": 0.12, "same_years": 1.0}]
    unused: Any = None  # the page reads neither the tables, the data nor the evaluation
    page = report_page(
        ReportFacts(config.model, manifest, unused, unused, unused, learning, stale, {})
    )
    assert "<script>" not in page and "${" not in page.replace(html.escape(hostile), "")
    assert f"<h1>Model report: {html.escape(hostile)} {manifest['version']}</h1>" in page
    assert f"<h3>{html.escape(hostile)}</h3>" in page
    assert page.count('<tr class="worst">') == 1
    assert page.count("<style>") == 1 and page.endswith("</html>\n")
