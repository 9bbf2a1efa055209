"""The model report's plots: PNG files drawn off-screen with matplotlib, one
per entry of :data:`regression_model.scoring.report_files.PLOTS`, from the
report's facts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from regression_model.scoring.report_files import PLOTS
from regression_model.scoring.tables import TableScorer
from regression_model.training.evaluation import PRICE_SLICE, slice_labels
from regression_model.training.report_facts import ReportFacts

#: Terms shown in the bar chart, and curves drawn.
TOP_TERMS, TOP_CURVES = 20, 6


def draw_plots(facts: ReportFacts, output: Path) -> None:
    """Every plot of the report, into ``output``, named as in ``PLOTS``."""
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
    bands = [b for b in facts.config.price_band_labels if (labels[PRICE_SLICE] == b).any()]
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

    _range_calibration(facts, Figure(figsize=(8.4, 4.0), layout="constrained"), save)
    _range_widths(facts, Figure(figsize=(8.4, 4.0), layout="constrained"), save, thousands)


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


def _curves(facts: ReportFacts, figure: Any, save: Any, ticks: Any) -> None:
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


def _range_calibration(facts: ReportFacts, figure: Any, save: Any) -> None:
    """Cross-validated coverage against nominal on the calibration grid, and
    how far each is from nominal, with the gate's allowed gap."""
    report = facts.manifest["intervals"]
    nominal = 100 * np.array(report["calibration"]["nominal"])
    achieved = 100 * np.array(report["calibration"]["cv_coverage"])
    gap = 100 * report["quality_gate"]["max_coverage_gap"]
    configured = [100 * level["coverage"] for level in report["levels"]]
    shipped = np.isin(nominal, configured)
    left, right = figure.subplots(1, 2)
    limits = [nominal.min() - 5, 100]
    left.fill_between(
        limits,
        [v - gap for v in limits],
        [v + gap for v in limits],
        color="#d8dee6",
        label=f"within ±{gap:.0f} points (the gate)",
    )
    left.plot(limits, limits, color="#1d2733", linewidth=1, label="covered = nominal")
    left.plot(nominal, achieved, "o-", color="#0b6bcb", markersize=4, label="cross-validated")
    left.plot(
        nominal[shipped], achieved[shipped], "o", color="#b42318", markersize=7,
        label="the coverages the model ships",
    )  # fmt: skip
    left.set(xlim=limits, ylim=limits, aspect="equal")
    left.set_xlabel("nominal coverage (%)")
    left.set_ylabel("sale prices inside their range (%)")
    left.legend(loc="upper left", fontsize=8)
    right.axhline(0, color="#1d2733", linewidth=1)
    for bound in (-gap, gap):
        right.axhline(bound, color="#b42318", linestyle="--", linewidth=1)
    right.plot(nominal, achieved - nominal, "o-", color="#0b6bcb", markersize=4)
    right.plot(nominal[shipped], (achieved - nominal)[shipped], "o", color="#b42318", markersize=7)
    right.set_ylim(-1.5 * gap, 1.5 * gap)
    right.set_xlabel("nominal coverage (%)")
    right.set_ylabel("covered - nominal (percentage points)")
    right.grid(alpha=0.3)
    save(figure, "range_calibration.png")


def _range_widths(facts: ReportFacts, figure: Any, save: Any, thousands: Any) -> None:
    """How wide the shipped ranges are over the training houses, in dollars
    and as a share of the price (one value for every house when constant)."""
    ranges = facts.ranges
    widths = ranges.highs - ranges.lows
    shares = 100 * widths / ranges.prices[:, None]
    dollars, relative = figure.subplots(1, 2)
    for column, coverage in enumerate(ranges.coverages):
        median, median_share = np.median(widths[:, column]), np.median(shares[:, column])
        style = {"bins": 60, "histtype": "step", "linewidth": 1.5}
        dollars.hist(widths[:, column], label=f"{coverage:.0%}: median ${median:,.0f}", **style)
        relative.hist(
            shares[:, column], label=f"{coverage:.0%}: median {median_share:.0f}%", **style
        )
    dollars.xaxis.set_major_formatter(thousands)
    dollars.set_xlabel("width of the range (high - low)")
    dollars.set_ylabel("training houses")
    relative.set_xlabel("width as a share of the price (%)")
    for axes in (dollars, relative):
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
    save(figure, "range_widths.png")
