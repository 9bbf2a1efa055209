"""The realised performance as a picture (PNG): predicted against sold, and
the log error of each sale over time with the cross-validated RMSLE beside
it. Needs matplotlib (the ``[drift]`` extra); only ``regression-model
performance`` uses it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from regression_model.output_files import save_figure


def plot_performance(
    report: Mapping[str, Any],
    points: Sequence[tuple[np.datetime64, float, float]],
    path: Path,
    inputs: Mapping[str, str] | None = None,
) -> Path:
    """``points``: each matched sale's (sale day, predicted price, sale price)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    figure, (scatter, timeline) = plt.subplots(1, 2, figsize=(13, 6))
    days = np.array([p[0] for p in points], dtype="datetime64[D]")
    predicted = np.array([p[1] for p in points], dtype="float64")
    sold = np.array([p[2] for p in points], dtype="float64")
    overall = report["overall"]
    cv_rmsle = overall["cross_validation"]["rmsle"]

    if len(points):
        scatter.scatter(sold / 1000, predicted / 1000, s=8, alpha=0.5, color="#2874a6")
        low, high = (
            float(min(sold.min(), predicted.min())),
            float(max(sold.max(), predicted.max())),
        )
        line = np.array([low, high]) / 1000
        scatter.plot(line, line, color="#5d6d7e", linewidth=1, label="predicted = sold")
        for sign in (-1, 1):
            scatter.plot(
                line, line * np.exp(sign * cv_rmsle), color="#5d6d7e", linestyle=":", linewidth=1
            )
        scatter.legend(loc="upper left")
    scatter.set_xscale("log")
    scatter.set_yscale("log")
    for axis in (scatter.xaxis, scatter.yaxis):
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
        axis.set_minor_formatter(ticker.NullFormatter())
    scatter.set_xlabel("sale price (thousand dollars)")
    scatter.set_ylabel("predicted price (thousand dollars)")
    scatter.set_title("Predicted against sold (dotted: ± the cross-validated RMSLE)")

    errors = np.log(predicted) - np.log(sold) if len(points) else np.empty(0)
    if len(points):
        timeline.scatter(days, errors, s=8, alpha=0.4, color="#2874a6", label="a sale")
        months = days.astype("datetime64[M]")
        shown = np.unique(months)
        rmsle = [float(np.sqrt(np.mean(errors[months == m] ** 2))) for m in shown]
        # Each month's point at the mean day of its sales.
        middle = [days[months == m].astype("int64").mean().astype("datetime64[D]") for m in shown]
        timeline.plot(middle, rmsle, color="#c0392b", marker="o", label="RMSLE of the month")
    timeline.axhline(0, color="#5d6d7e", linewidth=1)
    timeline.axhline(cv_rmsle, color="#c0392b", linestyle="--", linewidth=1, label="CV RMSLE")
    timeline.axhline(-cv_rmsle, color="#c0392b", linestyle="--", linewidth=1)
    timeline.set_xlabel("sale date")
    timeline.set_ylabel("log error: ln(predicted) - ln(sold)  (above 0: priced too high)")
    timeline.set_title("Error over time")
    timeline.legend(loc="upper left", fontsize=8)
    figure.autofmt_xdate()

    rmsle_text = "n/a" if overall["rmsle"] is None else f"{overall['rmsle']:.4f}"
    figure.suptitle(
        f"Realised performance of model {report['model_version']}: {report['matched']:,} "
        f"sales, RMSLE {rmsle_text} vs {cv_rmsle:.4f} in cross-validation: {report['verdict']}",
        fontsize=10,
    )
    figure.tight_layout()
    try:  # written whole, never over ``inputs`` (the log): the package's output rule
        save_figure(figure, path, inputs=inputs)
    finally:
        plt.close(figure)
    return path
