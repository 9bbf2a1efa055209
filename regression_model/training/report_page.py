"""The model report's page: ``templates/report.html`` (a ``string.Template``)
filled with the report's facts. Text values are escaped here; the tables'
markup is built here, each cell escaped."""

from __future__ import annotations

import functools
import html
from importlib.resources import files
from string import Template
from typing import Any

from regression_model.scoring.report_files import PLOTS
from regression_model.training.report_facts import ReportFacts


@functools.cache
def _template() -> Template:
    source = files("regression_model").joinpath("templates", "report.html")
    return Template(source.read_text(encoding="utf-8"))


def _table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join(
        f'<tr class="{row_class}">'
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in row)
        + "</tr>"
        for row, row_class in zip(rows, classes or [""] * len(rows), strict=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _scores(label: str, m: dict[str, float]) -> list[str]:
    return [
        label,
        f"{m['rmsle_mean']:.4f} ± {m['rmsle_std']:.4f}",
        f"${m['rmse_mean']:,.0f}",
        f"${m['mae_mean']:,.0f}",
        f"{m['r2_mean']:.3f}",
    ]


def _slice_table(name: str, rows: list[dict[str, Any]], slices: dict[str, Any]) -> str:
    worst = slices["worst"]
    classes = [
        "worst"
        if (name, r["label"]) == (worst["slice"], worst["label"])
        else "small"
        if r["houses"] < slices["min_houses"]
        else ""
        for r in rows
    ]
    table = _table(
        ["", "houses", "RMSLE", "bias"],
        [[r["label"], str(r["houses"]), f"{r['rmsle']:.4f}", f"{r['bias']:+.4f}"] for r in rows],
        classes,
    )
    return f"<div><h3>{html.escape(name)}</h3>{table}</div>"


def _figures(names: list[str]) -> str:
    return "".join(
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(PLOTS[name])}">'
        f"<figcaption>{html.escape(PLOTS[name])}</figcaption></figure>"
        for name in names
    )


#: The plots shown in the price ranges' section rather than with the others.
RANGE_PLOTS = ["range_calibration.png", "range_widths.png"]
#: Marks a slice's coverage more than ``max_slice_shortfall`` below nominal.
SHORT_MARK = "▼"


def _range_choice(report: dict[str, Any]) -> str:
    """Which range ships and why, with how much narrower the adaptive one is."""
    levels, why = report["levels"], report["why"]
    if report["kind"] == "adaptive":
        versus = ", ".join(
            f"{abs(level['mean_width_vs_constant']):.1%} "
            f"{'narrower' if level['mean_width_vs_constant'] < 0 else 'wider'} "
            f"at {level['coverage']:.0%}"
            for level in levels
        )
        return (
            "Adaptive: each house's range is scaled by how hard it is to price (a ridge "
            f"model of its error size), kept because it is {why}. On average it is {versus} "
            "than the constant range."
        )
    tried = ", ".join(
        f"${level['adaptive']['mean_width']:,.0f} at {level['coverage']:.0%}"
        for level in levels
        if level["adaptive"] is not None
    )
    beside = f" (the adaptive range's mean widths: {tried})" if tried else ""
    return f"Constant: the same width in log price for every house, because {why}{beside}."


def _range_slice_table(name: str, rows: list[dict[str, Any]], report: dict[str, Any]) -> str:
    gate = report["quality_gate"]
    coverages = [level["coverage"] for level in report["levels"]]

    def short(row: dict[str, Any], coverage: float) -> bool:
        return bool(coverage - row["coverage"][str(coverage)] > gate["max_slice_shortfall"])

    classes = [
        "small"
        if r["houses"] < gate["min_slice_houses"]
        else "short"
        if any(short(r, c) for c in coverages)
        else ""
        for r in rows
    ]
    table = _table(
        ["", "houses", *(f"{c:.0%}" for c in coverages)],
        [
            [
                r["label"],
                str(r["houses"]),
                *(
                    f"{r['coverage'][str(c)]:.1%}{' ' + SHORT_MARK if short(r, c) else ''}"
                    for c in coverages
                ),
            ]
            for r in rows
        ],
        classes,
    )
    gated = "" if name in report["slices"]["gated"] else " (reported, not gated)"
    return f"<div><h3>{html.escape(name + gated)}</h3>{table}</div>"


def _points(share: float) -> str:
    """A difference of coverages, in percentage points."""
    return f"{100 * share:g} points"


def _ranges(report: dict[str, Any]) -> tuple[dict[str, object], dict[str, str]]:
    """The price ranges' section: its text values and its markup."""
    gate, levels = report["quality_gate"], report["levels"]
    percentiles = sorted(levels[0]["width_percentiles"], key=float)
    text: dict[str, object] = {
        "ranges_method": report["method"],
        "ranges_choice": _range_choice(report),
        "ranges_gate_class": "passed" if gate["passed"] else "failed",
        "ranges_gate": f"Quality gates {'passed' if gate['passed'] else 'failed'}: each "
        f"coverage within ±{_points(gate['max_coverage_gap'])} of nominal; no slice of "
        f"{gate['min_slice_houses']}+ houses more than {_points(gate['max_slice_shortfall'])} "
        f"below nominal beyond chance (one-sided binomial test at "
        f"{gate['slice_significance']} over the slices tested).",
        "ranges_compiled": f"{report['compiled_check']['max_relative_difference']:.2g}",
        "ranges_compiled_houses": report["compiled_check"]["houses"],
        "ranges_shortfall": _points(gate["max_slice_shortfall"]),
        "ranges_min_houses": gate["min_slice_houses"],
        "short_mark": SHORT_MARK,
    }
    markup = {
        "ranges_table": _table(
            [
                "coverage",
                "sale prices inside",
                "mean width",
                "median width",
                "constant range: inside",
                "constant: mean width",
                "constant: median width",
                "mean width vs constant",
            ],
            [
                [
                    f"{level['coverage']:.0%}",
                    f"{level['cv_coverage']:.1%}",
                    f"${level['mean_width']:,.0f}",
                    f"${level['median_width']:,.0f}",
                    f"{level['constant']['cv_coverage']:.1%}",
                    f"${level['constant']['mean_width']:,.0f}",
                    f"${level['constant']['median_width']:,.0f}",
                    f"{level['mean_width_vs_constant']:+.1%}",
                ]
                for level in levels
            ],
        ),
        "ranges_width_table": _table(
            ["coverage", *(f"{p}th percentile" for p in percentiles)],
            [
                [
                    f"{level['coverage']:.0%}",
                    *(f"${level['width_percentiles'][p]:,.0f}" for p in percentiles),
                ]
                for level in levels
            ],
        ),
        "ranges_plots": _figures(RANGE_PLOTS),
        "ranges_slice_tables": "".join(
            _range_slice_table(name, rows, report) for name, rows in report["slices"]["by"].items()
        ),
    }
    return text, markup


def page(facts: ReportFacts) -> str:
    """The page: ``text`` values are escaped here, ``markup`` escapes its own cells."""
    manifest, config = facts.manifest, facts.config
    cv = manifest["metrics"]["cross_validation"]
    evaluation, versus, slices = manifest["evaluation"], manifest["baselines"], manifest["slices"]
    trimmed, worst = evaluation["trimmed"], slices["worst"]
    text = {
        "name": manifest["name"],
        "version": manifest["version"],
        "trained_at": manifest["trained_at"],
        "rows_used": manifest["training_data"]["rows_used"],
        "training_file": manifest["training_data"]["file"],
        "tables_sha256": manifest["tables"]["sha256"][:16],
        "protocol": evaluation["protocol"],
        "rmsle_per_repeat": ", ".join(f"{r:.4f}" for r in evaluation["rmsle_per_repeat"]),
        "rmsle_repeat_std": f"{cv['rmsle_repeat_std']:.4f}",
        "rmsle_std": f"{cv['rmsle_std']:.4f}",
        "rmsle_mean": f"{cv['rmsle_mean']:.4f}",
        "max_cv_rmsle": manifest["quality_gate"]["max_cv_rmsle"],
        "improvement": f"{versus['improvement_over_best']:.0%}",
        "best_baseline": versus["best"].replace("_", " "),
        "min_improvement": f"{versus['min_improvement']:.0%}",
        "min_houses": slices["min_houses"],
        "worst_slice": worst["slice"],
        "worst_label": worst["label"],
        "worst_rmsle": f"{worst['rmsle']:.4f}",
        "max_slice_rmsle": slices["max_rmsle"],
        "alpha": evaluation["alpha"],
        "tuning_folds": config.tuning_folds,
        "trimmed_count": len(trimmed["ids"]),
        "trim_threshold": trimmed["threshold"],
        "residual_scale": f"{trimmed['residual_scale']:.4f}",
        "trimmed_ids": ", ".join(map(str, trimmed["ids"])),
        "fitted_until": f"{facts.staleness[0]['year']:.0f}",
    }
    markup = {
        "summary_table": _table(
            ["", "RMSLE", "RMSE", "MAE", "R²"],
            [
                _scores("model (mean ± std over folds)", cv),
                *(
                    _scores(f"baseline: {name.replace('_', ' ')}", m)
                    for name, m in versus["models"].items()
                ),
            ],
        ),
        "plots": _figures([name for name in PLOTS if name not in RANGE_PLOTS]),
        "slice_tables": "".join(
            _slice_table(name, rows, slices) for name, rows in slices["by"].items()
        ),
        "search_table": _table(
            ["alpha", "mean RMSE of the search's folds", "outer folds that chose it"],
            [
                [alpha, f"{rmse:.5f}", str(evaluation["alphas_chosen"].get(alpha, 0))]
                for alpha, rmse in evaluation["alpha_tuning_rmse"].items()
            ],
        ),
        "staleness_table": _table(
            ["sales of", "houses", "RMSLE"],
            [
                [
                    f"{p['year']:.0f} and before (unseen houses of the fitting years, CV)"
                    if p["same_years"]
                    else f"{p['year']:.0f}",
                    f"{p['houses']:.0f}",
                    f"{p['rmsle']:.4f}",
                ]
                for p in facts.staleness
            ],
        ),
        "learning_table": _table(
            ["training houses", "RMSLE on them", "RMSLE on unseen houses"],
            [
                [
                    f"{p['houses']:.0f}",
                    f"{p['training_rmsle']:.4f}",
                    f"{p['cv_rmsle']:.4f} ± {p['cv_rmsle_std']:.4f}",
                ]
                for p in facts.learning
            ],
        ),
    }
    range_text, range_markup = _ranges(manifest["intervals"])
    escaped = {key: html.escape(str(value)) for key, value in {**text, **range_text}.items()}
    return _template().substitute(escaped, **markup, **range_markup)
