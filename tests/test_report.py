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
        if len(read_report(directory, manifest).plots) != len(PLOTS):  # an older report
            write_report(config)
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
        ReportFacts(config.model, manifest, unused, unused, unused, learning, stale, {}, unused)
    )
    assert "<script>" not in page and "${" not in page.replace(html.escape(hostile), "")
    assert f"<h1>Model report: {html.escape(hostile)} {manifest['version']}</h1>" in page
    assert f"<h3>{html.escape(hostile)}</h3>" in page
    assert page.count('<tr class="worst">') == 1
    assert page.count("<style>") == 1 and page.endswith("</html>\n")


def _ranges_section(page: str) -> str:
    return page[page.index('<section id="ranges">') : page.index('<section id="search">')]


def test_the_page_shows_the_price_ranges_as_the_manifest_records_them(
    report_dir: Path, config: Config
) -> None:
    _, manifest = load_tables(config)
    report = manifest["intervals"]
    section = _ranges_section((report_dir / HTML_FILE).read_text())
    assert "<h2>Price ranges</h2>" in section and html.escape(report["method"]) in section
    assert html.escape(report["why"]) in section
    for level in report["levels"]:
        constant = level["constant"]
        row = (
            f"<td>{level['coverage']:.0%}</td><td>{level['cv_coverage']:.1%}</td>"
            f"<td>${level['mean_width']:,.0f}</td><td>${level['median_width']:,.0f}</td>"
            f"<td>{constant['cv_coverage']:.1%}</td><td>${constant['mean_width']:,.0f}</td>"
            f"<td>${constant['median_width']:,.0f}</td>"
            f"<td>{level['mean_width_vs_constant']:+.1%}</td>"
        )
        assert row in section, row
        widths = sorted(level["width_percentiles"].items(), key=lambda item: float(item[0]))
        assert (
            f"<td>{level['coverage']:.0%}</td>"
            + "".join(f"<td>${width:,.0f}</td>" for _, width in widths)
            in section
        )
        if report["kind"] == "adaptive":
            narrower = -level["mean_width_vs_constant"]
            assert f"{narrower:.1%} narrower at {level['coverage']:.0%}" in section
    # Every slice's coverage at each level, marked where short of nominal by
    # more than the allowed shortfall; the sale-price band not gated.
    gate = report["quality_gate"]
    marked = 0
    for name, rows in report["slices"]["by"].items():
        gated = name in report["slices"]["gated"]
        assert f"<h3>{name}{'' if gated else ' (reported, not gated)'}</h3>" in section
        for row in rows:
            cells = []
            for level in report["levels"]:
                covered = row["coverage"][str(level["coverage"])]
                short = level["coverage"] - covered > gate["max_slice_shortfall"]
                marked += short
                cells.append(f"<td>{covered:.1%}{' ▼' if short else ''}</td>")
            expected = f"<td>{html.escape(row['label'])}</td><td>{row['houses']}</td>"
            assert expected + "".join(cells) in section, (name, row)
    assert marked and section.count(" ▼</td>") == marked
    assert report["slices"]["gated"] and "price band" not in report["slices"]["gated"]
    assert re.findall(r'<img src="([^"]+)"', section) == [
        "range_calibration.png",
        "range_widths.png",
    ]


def test_the_model_serves_the_report_with_the_range_plots(report_dir: Path) -> None:
    """``Model.report()`` reads the report back, each file checked against the manifest."""
    from regression_model import load_model

    report = load_model().report()
    assert list(report.plots) == list(PLOTS)
    for name in ("range_calibration.png", "range_widths.png"):
        assert report.plots[name].png == (report_dir / name).read_bytes()
        assert report.plots[name].png[:8] == b"\x89PNG\r\n\x1a\n"
    assert b'<section id="ranges">' in report.html


def test_the_width_plot_draws_the_ranges_the_model_serves(config: Config) -> None:
    from regression_model import load_model
    from regression_model.training.report_facts import shipped_ranges
    from regression_model.training.train import load_training_data

    tables, _ = load_tables(config)
    data = load_training_data(config)
    ranges = shipped_ranges(tables, config, data)
    served = load_model().predict(data.X)
    priced = [row for row in served["intervals"] if row is not None]
    assert len(priced) == len(ranges.prices) > 1000
    assert ranges.coverages == [level["coverage"] for level in priced[0]]
    assert ranges.prices.tolist() == [p for p in served["predictions"] if p is not None]
    assert ranges.lows.tolist() == [[level["low"] for level in row] for row in priced]
    assert ranges.highs.tolist() == [[level["high"] for level in row] for row in priced]


def _page_of(config: Config, manifest: dict[str, Any]) -> str:
    from regression_model.training.report_facts import ReportFacts
    from regression_model.training.report_page import page as report_page

    learning = [{"houses": 100.0, "training_rmsle": 0.1, "cv_rmsle": 0.12, "cv_rmsle_std": 0.01}]
    stale = [{"year": 2007.0, "houses": 100.0, "rmsle": 0.12, "same_years": 1.0}]
    unused: Any = None  # the page reads neither the tables, the data nor the evaluation
    facts = ReportFacts(
        config.model, manifest, unused, unused, unused, learning, stale, {}, unused
    )
    return report_page(facts)


def test_the_page_says_why_a_constant_range_was_kept_and_marks_short_slices(
    config: Config,
) -> None:
    _, manifest = load_tables(config)
    manifest = copy.deepcopy(manifest)
    report = manifest["intervals"]
    report["kind"], report["why"] = "constant", "the adaptive range was not narrower"
    report["quality_gate"]["passed"] = False
    shortfall = report["quality_gate"]["max_slice_shortfall"]
    rows = report["slices"]["by"]["BldgType"]
    for row in rows:
        row["coverage"] = {str(level["coverage"]): level["coverage"] for level in report["levels"]}
    first, second = (str(level["coverage"]) for level in report["levels"][:2])
    rows[0]["coverage"][first] = float(first) - shortfall - 0.001  # short: marked
    rows[1]["coverage"][second] = float(second) - shortfall + 0.001  # within: not marked
    section = _ranges_section(_page_of(config, manifest))
    assert (
        "Constant: the same width in log price for every house, because the adaptive " in section
    )
    assert "narrower at" not in section
    for level in report["levels"]:
        assert f"${level['adaptive']['mean_width']:,.0f} at {level['coverage']:.0%}" in section
    assert '<p class="failed">Quality gates failed' in section
    building = section[section.index("<h3>BldgType</h3>") :].split("</table>")[0]
    assert building.count(" ▼</td>") == 1
    assert building.count('<tr class="short">') == 1
    assert f'<tr class="short"><td>{rows[0]["label"]}</td>' in building
