"""The drift report as a picture (PNG): PSI per feature, and the predicted
prices' distribution against the training predictions. Needs matplotlib
(the ``[drift]`` extra); only the ``regression-model drift`` command uses it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from regression_model.output_files import save_figure

#: Features shown in the PSI chart (the largest first).
SHOWN = 25


def plot_drift(
    report: Mapping[str, Any],
    training_prices: Mapping[str, Any],
    logged_prices: np.ndarray,
    path: Path,
    inputs: Mapping[str, str] | None = None,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    features = sorted(
        (f for f in report["features"] if f["psi"] is not None), key=lambda f: -f["psi"]
    )[:SHOWN]
    figure, (bars, curves) = plt.subplots(
        1, 2, figsize=(13, 7), gridspec_kw={"width_ratios": [1.2, 1]}
    )
    names = [f["input_field"] for f in features][::-1]
    values = [f["psi"] for f in features][::-1]
    colours = ["#c0392b" if f["drifting"] else "#5d6d7e" for f in features][::-1]
    bars.barh(names, values, color=colours)
    threshold = report["thresholds"]["psi"]
    bars.axvline(threshold, color="#c0392b", linestyle="--", linewidth=1)
    bars.set_xlabel(f"PSI (dashed: threshold {threshold}; red: drifting)")
    bars.set_title(f"Largest PSI of {len(report['features'])} features")
    bars.tick_params(axis="y", labelsize=8)

    points = np.asarray(training_prices["ecdf"]["values"], dtype="float64")
    shares = np.asarray(training_prices["ecdf"]["counts"], dtype="float64") / max(
        int(training_prices["count"]), 1
    )
    curves.step(points / 1000, shares, where="post", label="training houses", color="#5d6d7e")
    if len(logged_prices):
        ordered = np.sort(logged_prices)
        curves.step(
            ordered / 1000,
            np.arange(1, len(ordered) + 1) / len(ordered),
            where="post",
            label=f"logged houses ({len(ordered):,})",
            color="#2874a6",
        )
    prices = report["prices"]
    shift = "n/a" if prices["shift"] is None else f"{prices['shift']:+.1%}"
    curves.set_title(f"Predicted prices (median shift {shift})")
    curves.set_xlabel("predicted price (thousand dollars)")
    curves.set_ylabel("share of houses at or below")
    curves.set_xscale("log")
    curves.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    curves.xaxis.set_minor_formatter(ticker.NullFormatter())
    curves.legend(loc="lower right")
    window = f"since {report['since']}" if report.get("since") else "(all logged)"
    drifting = list(report["drifting"])
    named = ", ".join(drifting[:6]) + (
        f" and {len(drifting) - 6} more" if len(drifting) > 6 else ""
    )
    figure.suptitle(
        f"Drift of model {report['model_version']}: {report['houses']:,} houses {window}; "
        f"drifting: {named or 'none'}",
        fontsize=10,
    )
    figure.tight_layout()
    try:  # written whole, never over ``inputs`` (the log): the package's output rule
        save_figure(figure, path, inputs=inputs)
    finally:
        plt.close(figure)
    return path
