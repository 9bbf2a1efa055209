"""``regression-model report``: the model's evaluation as a page people read.

Writes into a directory (by default the one beside the artifact, where the
API serves the plots from, see ``scoring/report_files.py``):

- ``report.html``: the cross-validated error and its spread, the baselines,
  the error of every slice, the penalty search and the trimmed houses, with
  the plots (the page is ``templates/report.html``, a ``string.Template``
  filled with escaped values and the tables built here);
- PNG plots (matplotlib, drawn off-screen): predicted vs actual, errors by
  neighbourhood and by price band, the largest terms, how the largest
  numerical terms bend, the learning curve, staleness, the baseline
  comparison;
- ``report.json``: the index serving reads.

The numbers come from training's own evaluation, run again (it is
deterministic) and checked against the artifact's manifest, so a report
always describes the artifact beside it. Only the learning curve and the
staleness check are new here: they cost fits that training does not need.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from regression_model.config.core import Config, ModelConfig
from regression_model.scoring.artifact import ArtifactPaths, load_tables
from regression_model.scoring.report_files import HTML_FILE, INDEX_FILE, PLOTS
from regression_model.scoring.tables import ModelTables, TableScorer
from regression_model.scoring.validation import validate_inputs
from regression_model.training.evaluation import (
    PRICE_SLICE,
    Evaluation,
    evaluate,
    fit_quietly,
    price_band_labels,
    regression_metrics,
    repeated_splits,
    slice_labels,
)
from regression_model.training.linear_model import TrimmedLasso
from regression_model.training.pipeline import build_pipeline
from regression_model.training.train import TrainingData, load_training_data

#: Shares of each training part the learning curve fits on.
LEARNING_SHARES = (0.2, 0.4, 0.6, 0.8, 1.0)
#: Sale years the staleness check fits on (the first ones); it measures on the later ones.
STALENESS_FIT_YEARS = 2
#: Terms shown in the bar chart, and curves drawn.
TOP_TERMS, TOP_CURVES = 20, 6


class ReportError(RuntimeError):
    """The report cannot describe the artifact (it was trained otherwise)."""


@dataclass(frozen=True)
class _Facts:
    """Everything the plots and the page show."""

    config: ModelConfig
    manifest: dict[str, Any]
    tables: ModelTables
    data: TrainingData
    evaluation: Evaluation
    learning: list[dict[str, float]]
    staleness: list[dict[str, float]]
    #: each term's standard deviation over the training houses, in log-price
    spread: dict[str, float]


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
    facts = _Facts(
        config.model,
        manifest,
        tables,
        data,
        evaluation,
        learning,
        stale,
        _spread(tables, config, data),
    )
    output.mkdir(parents=True, exist_ok=True)
    _draw(facts, output)
    page = output / HTML_FILE
    page.write_text(_page(facts), encoding="utf-8")
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


def _fixed_penalty_model(config: ModelConfig, alpha: float) -> Any:
    """The model with its penalty fixed (no search): for checks that refit often."""
    model = build_pipeline(config)
    model.regressor.steps[-1] = (
        "lasso",
        TrimmedLasso(alpha=alpha, trim=config.trim_threshold, max_iter=config.max_iter),
    )
    return model


def learning_curve(
    config: ModelConfig, data: TrainingData, alpha: float
) -> list[dict[str, float]]:
    """Training and cross-validated RMSLE when fitting on growing shares of
    each training part (the first repeat's folds), with the penalty the
    shipped model chose."""
    splits = [split for split in repeated_splits(config, len(data.X)) if split.repeat == 0]
    rng = np.random.default_rng(config.random_state)
    curve = []
    for share in LEARNING_SHARES:
        trained, tested, sizes = [], [], []
        for split in splits:
            rows = np.sort(rng.permutation(split.train)[: round(share * len(split.train))])
            model = _fixed_penalty_model(config, alpha)
            fitted = fit_quietly(model, data.X.iloc[rows], data.y.iloc[rows])
            X_test, y_test = data.X.iloc[split.test], data.y.iloc[split.test]
            trained.append(
                regression_metrics(data.y.iloc[rows], fitted.predict(data.X.iloc[rows]))
            )
            tested.append(regression_metrics(y_test, fitted.predict(X_test)))
            sizes.append(len(rows))
        curve.append(
            {
                "houses": float(np.mean(sizes)),
                "training_rmsle": float(np.mean([m["rmsle"] for m in trained])),
                "cv_rmsle": float(np.mean([m["rmsle"] for m in tested])),
                "cv_rmsle_std": float(np.std([m["rmsle"] for m in tested])),
            }
        )
    return curve


def staleness(config: ModelConfig, data: TrainingData, alpha: float) -> list[dict[str, float]]:
    """How the error grows as a model ages: fitted on the sales of the first
    ``STALENESS_FIT_YEARS`` years, measured on each later year; beside it,
    the cross-validated error on unseen sales of the fitting years themselves."""
    years = data.X["YrSold"].to_numpy(dtype="float64")
    last_fit_year = np.nanmin(years) + STALENESS_FIT_YEARS - 1
    early = np.flatnonzero(years <= last_fit_year)
    X, y = data.X.iloc[early], data.y.iloc[early]
    squared = []
    folds = KFold(config.cv_folds, shuffle=True, random_state=config.random_state)
    for train, test in folds.split(X):
        fitted = fit_quietly(_fixed_penalty_model(config, alpha), X.iloc[train], y.iloc[train])
        squared.append(np.log(fitted.predict(X.iloc[test]) / y.iloc[test].to_numpy()) ** 2)
    rows = [
        {
            "year": float(last_fit_year),
            "houses": float(len(early)),
            "rmsle": float(np.sqrt(np.mean(np.concatenate(squared)))),
            "same_years": 1.0,
        }
    ]
    fitted = fit_quietly(_fixed_penalty_model(config, alpha), X, y)
    for year in sorted(set(years[years > last_fit_year])):
        later = np.flatnonzero(years == year)
        prices = fitted.predict(data.X.iloc[later])
        rows.append(
            {
                "year": float(year),
                "houses": float(len(later)),
                "rmsle": regression_metrics(data.y.iloc[later], prices)["rmsle"],
                "same_years": 0.0,
            }
        )
    return rows


def _spread(tables: ModelTables, config: Config, data: TrainingData) -> dict[str, float]:
    scorer = TableScorer(tables, config.model)
    checked = validate_inputs(data.X, config.model)
    contributions = scorer.contributions(
        checked.numbers[checked.valid], checked.codes[checked.valid], checked.categories
    )
    return dict(zip(scorer.names, map(float, contributions.std(axis=0)), strict=True))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- plots --


def _draw(facts: _Facts, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # off-screen: no display needed
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    thousands = FuncFormatter(lambda value, _: f"${value / 1000:,.0f}k")

    def save(figure: Figure, name: str) -> None:
        figure.suptitle(PLOTS[name], fontsize=12, x=0.02, ha="left")
        figure.savefig(output / name, dpi=100, metadata={"Software": None})

    y = facts.data.y.to_numpy(dtype="float64")
    log_errors = np.log(facts.evaluation.model.predictions) - np.log(y)
    mean_error = log_errors.mean(axis=0)  # each house, averaged over the repeats
    mean_price = np.exp(np.log(facts.evaluation.model.predictions).mean(axis=0))
    cv = facts.manifest["metrics"]["cross_validation"]

    figure = Figure(figsize=(6.4, 5.6), layout="constrained")
    axes = figure.add_subplot()
    axes.scatter(y, mean_price, s=7, alpha=0.45, color="#0b6bcb", edgecolors="none")
    limits = [min(y.min(), mean_price.min()) * 0.9, max(y.max(), mean_price.max()) * 1.1]
    axes.plot(limits, limits, color="#1d2733", linewidth=1, label="predicted = actual")
    axes.set(xscale="log", yscale="log", xlim=limits, ylim=limits)
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_formatter(thousands)
        axis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
    axes.set_xticks([50_000, 100_000, 200_000, 400_000])
    axes.set_yticks([50_000, 100_000, 200_000, 400_000])
    axes.set_xlabel("actual sale price")
    axes.set_ylabel("predicted price, by models that never saw the house")
    axes.text(
        0.03, 0.95, f"RMSLE {cv['rmsle_mean']:.4f} ± {cv['rmsle_std']:.4f}\n"
        f"{cv['repeats']} x {cv['folds']}-fold, nested", transform=axes.transAxes, va="top",
    )  # fmt: skip
    axes.legend(loc="lower right")
    save(figure, "predicted_vs_actual.png")

    labels = slice_labels(facts.config, facts.data.X, facts.data.y)
    neighbourhoods = sorted(
        set(labels[facts.config.baseline_group_var]),
        key=lambda n: np.median(mean_error[labels[facts.config.baseline_group_var] == n]),
    )
    _boxes(
        Figure(figsize=(7.2, 7.4), layout="constrained"),
        [mean_error[labels[facts.config.baseline_group_var] == n] for n in neighbourhoods],
        neighbourhoods,
        save,
        "residuals_by_neighbourhood.png",
    )
    bands = [
        b for b in price_band_labels(facts.config.price_bands) if (labels[PRICE_SLICE] == b).any()
    ]
    _boxes(
        Figure(figsize=(7.2, 3.6), layout="constrained"),
        [mean_error[labels[PRICE_SLICE] == b] for b in bands],
        bands,
        save,
        "residuals_by_price_band.png",
    )

    top = sorted(facts.spread, key=lambda name: -facts.spread[name])[:TOP_TERMS]
    figure = Figure(figsize=(7.2, 6.0), layout="constrained")
    axes = figure.add_subplot()
    axes.barh(top[::-1], [100 * facts.spread[name] for name in top[::-1]], color="#0b6bcb")
    axes.set_xlabel("its standard deviation over the training houses (≈ % of price)")
    save(figure, "largest_terms.png")

    _curves(facts, Figure(figsize=(8.4, 5.6), layout="constrained"), save, MaxNLocator)

    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.add_subplot()
    learning = facts.learning
    houses = [point["houses"] for point in learning]
    axes.plot(houses, [p["training_rmsle"] for p in learning], "o-", label="on the houses fitted")
    axes.errorbar(
        houses, [p["cv_rmsle"] for p in learning], yerr=[p["cv_rmsle_std"] for p in learning],
        fmt="o-", capsize=3, label="on houses never seen (5-fold CV)",
    )  # fmt: skip
    axes.set_xlabel("training houses")
    axes.set_ylabel("RMSLE")
    axes.legend()
    axes.grid(alpha=0.3)
    save(figure, "learning_curve.png")

    figure = Figure(figsize=(6.4, 3.8), layout="constrained")
    axes = figure.add_subplot()
    stale = facts.staleness
    labels_ = [
        f"{p['year']:.0f} and before\n(unseen houses, CV)"
        if p["same_years"]
        else f"{p['year']:.0f}"
        for p in stale
    ]
    colours = ["#98a2b3" if p["same_years"] else "#0b6bcb" for p in stale]
    axes.bar(labels_, [p["rmsle"] for p in stale], color=colours)
    for position, point in enumerate(stale):
        text = f"{point['rmsle']:.3f}\n{point['houses']:.0f} houses"
        axes.annotate(text, (position, point["rmsle"]), ha="center", va="bottom", fontsize=8)
    axes.set_ylabel("RMSLE")
    axes.set_xlabel("year of sale")
    axes.set_ylim(0, max(p["rmsle"] for p in stale) * 1.25)
    save(figure, "staleness.png")

    versus = facts.manifest["baselines"]
    names = ["model", *versus["models"]]
    means = [cv["rmsle_mean"], *(m["rmsle_mean"] for m in versus["models"].values())]
    spreads = [cv["rmsle_std"], *(m["rmsle_std"] for m in versus["models"].values())]
    figure = Figure(figsize=(6.4, 3.6), layout="constrained")
    axes = figure.add_subplot()
    colours = ["#0b6bcb", *(["#98a2b3"] * len(versus["models"]))]
    axes.barh(names[::-1], means[::-1], xerr=spreads[::-1], color=colours[::-1], capsize=3)
    required = versus["models"][versus["best"]]["rmsle_mean"] * (1 - versus["min_improvement"])
    axes.axvline(required, color="#b42318", linestyle="--", linewidth=1,
                 label=f"the model must be below this ({versus['min_improvement']:.0%} under "
                       "the best baseline)")  # fmt: skip
    axes.set_xlabel("cross-validated RMSLE (mean ± std over folds; same folds for all)")
    axes.legend(loc="lower right", fontsize=8)
    save(figure, "baselines.png")


def _boxes(figure: Any, groups: list[np.ndarray], names: list[str], save: Any, name: str) -> None:
    axes = figure.add_subplot()
    axes.boxplot(groups, orientation="horizontal", tick_labels=names, flierprops={"markersize": 3})
    axes.axvline(0, color="#1d2733", linewidth=1)
    axes.set_xlabel("log(predicted) - log(actual): above 0, priced too high (mean over repeats)")
    for position, group in enumerate(groups, start=1):
        axes.annotate(f"{len(group)}", (1.0, position), xycoords=("axes fraction", "data"),
                      fontsize=7, va="center", ha="left", xytext=(3, 0),
                      textcoords="offset points")  # fmt: skip
    save(figure, name)


def _curves(facts: _Facts, figure: Any, save: Any, ticks: Any) -> None:
    """Each of the largest numerical terms as a function of its input (the
    other inputs do not change it: the model is a sum), over the range of
    the training houses."""
    numeric = {term.variable: term for term in facts.tables.numeric}
    shown = [n for n in sorted(facts.spread, key=lambda n: -facts.spread[n]) if n in numeric]
    shown = shown[:TOP_CURVES]
    scorer = TableScorer(facts.tables, facts.config)
    variables = facts.config.numerical_vars
    grid_axes = figure.subplots(2, math.ceil(len(shown) / 2), squeeze=False).ravel()
    for axes, name in zip(grid_axes, shown, strict=False):
        column = facts.data.X[name].to_numpy(dtype="float64")
        values = np.linspace(np.nanmin(column), np.nanmax(column), 200)
        numbers = np.full((len(values), len(variables)), np.nan)
        numbers[:, variables.index(name)] = values
        codes = np.full((len(values), len(facts.config.categorical_vars)), -1)
        effects = scorer.contributions(numbers, codes, [[] for _ in facts.config.categorical_vars])
        effect = effects[:, scorer.names.index(name)]
        axes.plot(values, 100 * (np.exp(effect - np.median(effect)) - 1), color="#0b6bcb")
        axes.set_title(name, fontsize=10)
        axes.xaxis.set_major_locator(ticks(4))
        axes.grid(alpha=0.3)
        axes.set_ylabel("% price vs its median", fontsize=8)
    for axes in grid_axes[len(shown) :]:
        axes.set_visible(False)
    save(figure, "term_curves.png")


# -- the page (templates/report.html; markup for rows here, every value escaped) --


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


def _page(facts: _Facts) -> str:
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
        "plots": "".join(
            f'<figure><img src="{html.escape(name)}" alt="{html.escape(title)}">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>"
            for name, title in PLOTS.items()
        ),
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
    escaped = {key: html.escape(str(value)) for key, value in text.items()}
    return _template().substitute(escaped, **markup)
