"""Realised performance: the served prices against the sale prices that came back.

Over the sales matched to logged prices (:mod:`~regression_model.monitoring.outcome_join`
holds the rule), with the log error ``ln(predicted) - ln(sold)``:

- **RMSLE**, the root mean square log error (what cross-validation reports);
- **bias**, the mean log error (above 0: priced too high);
- **MAE**, the mean absolute error in dollars;
- for each coverage of the price ranges logged with the price, the share of
  sale prices inside the range (a request that asked for some coverages
  logged only those: each coverage counts its own sales).

Each overall and by slice: the config's ``slice_vars``, the decade built and
the band of the *predicted* price (the sale price's band would select on the
outcome), labelled as training labels its houses, beside the manifest's
cross-validated figures (``metrics.cross_validation``, ``slices``,
``intervals.levels[].cv_coverage`` and ``intervals.slices``).

Judged (``config.yml``'s ``performance`` section) only over at least
``min_outcomes`` sales, overall and in each slice; below that the verdict is
:data:`TOO_FEW`. An RMSLE above the cross-validated one x (1 +
``rmsle_margin``) is :data:`WORSE`; a range's coverage more than
``coverage_margin`` below nominal is :data:`BELOW_NOMINAL`.

:class:`PerformanceAccumulator` takes matched sales in chunks and keeps sums
per slice label; the plot's four numbers per sale only when asked. The CLI's
``regression-model performance`` and the API's ``GET /api/v1/performance``
both use it, so they report the same numbers.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from regression_model.config.core import Config
from regression_model.monitoring.outcome_join import MatchedSale

#: The verdicts, overall and per slice.
TOO_FEW = "too few outcomes"
WORSE = "worse than cross-validation"
CONSISTENT = "consistent with cross-validation"
#: A price range's verdicts (or TOO_FEW).
BELOW_NOMINAL = "below nominal"
AT_NOMINAL = "at nominal"

#: The slices besides the config's ``slice_vars``: training's names for them,
#: so that the manifest's cross-validated figures line up.
DECADE_SLICE = "decade built"
PREDICTED_PRICE_SLICE = "predicted price band"
MISSING_LABEL = "missing"
#: The sales of largest error listed in the report: one sale can move the
#: RMSLE of a few hundred by a third (README, "Realised performance").
LARGEST_ERRORS = 10


def slice_labels(config: Config, inputs: Mapping[str, Any], price: float) -> dict[str, str]:
    """A logged house's label in each slice (as training labels its houses)."""
    model = config.model
    labels = {}
    for name in model.slice_vars:
        value = inputs.get(name)
        labels[name] = MISSING_LABEL if value is None else str(value)
    year = inputs.get(model.slice_decade_var)
    if isinstance(year, int | float) and not isinstance(year, bool) and math.isfinite(year):
        labels[DECADE_SLICE] = f"{int(year) // 10 * 10}s"
    else:
        labels[DECADE_SLICE] = MISSING_LABEL
    bands = model.price_band_labels
    labels[PREDICTED_PRICE_SLICE] = bands[int(np.searchsorted(model.price_bands, price, "right"))]
    return labels


class _Sums:
    """Running sums of one group of sales (overall, or a slice's label)."""

    __slots__ = ("absolute", "count", "covered", "errors", "squares")

    def __init__(self) -> None:
        self.count = 0
        self.errors = self.squares = self.absolute = 0.0
        #: coverage -> [sales inside the range, sales with a range at it]
        self.covered: dict[float, list[int]] = {}

    def add(self, sale: MatchedSale, log_error: float) -> None:
        self.count += 1
        self.errors += log_error
        self.squares += log_error * log_error
        self.absolute += abs(sale.price - sale.sale_price)
        for level in sale.price_ranges or ():
            counts = self.covered.setdefault(float(level["coverage"]), [0, 0])
            counts[0] += int(level["low"] <= sale.sale_price <= level["high"])
            counts[1] += 1

    def figures(self) -> dict[str, Any]:
        n = self.count
        return {
            "outcomes": n,
            "rmsle": math.sqrt(self.squares / n) if n else None,
            "bias": self.errors / n if n else None,
            "mae": self.absolute / n if n else None,
        }


class PerformanceAccumulator:
    """Matched sales, summed overall and per slice, chunk by chunk.

    ``manifest``: the verified manifest of the model version judged (its
    cross-validated figures); ``config``: its config (slices, thresholds).
    ``keep_points``: keep each sale's dates and prices for the plot.
    """

    def __init__(
        self, manifest: Mapping[str, Any], config: Config, *, keep_points: bool = False
    ) -> None:
        self.manifest = manifest
        self.config = config
        self.outcomes = 0
        self.overall = _Sums()
        self.slices: dict[str, dict[str, _Sums]] = {}
        self.keep_points = keep_points
        #: per sale: sale day (numpy datetime64[D]), predicted and sale prices
        self.points: list[tuple[np.datetime64, float, float]] = []
        #: the LARGEST_ERRORS sales of largest |log error| (a heap: smallest first)
        self._largest: list[tuple[float, str, MatchedSale]] = []

    def add(self, outcomes_read: int, sales: Sequence[MatchedSale]) -> None:
        """Count ``outcomes_read`` outcomes, of which ``sales`` were matched."""
        self.outcomes += outcomes_read
        for sale in sales:
            if not (sale.price > 0 and sale.sale_price > 0):
                continue  # no log error (the outcomes' check refuses such prices)
            log_error = math.log(sale.price) - math.log(sale.sale_price)
            self.overall.add(sale, log_error)
            for name, label in slice_labels(self.config, sale.inputs, sale.price).items():
                self.slices.setdefault(name, {}).setdefault(label, _Sums()).add(sale, log_error)
            entry = (abs(log_error), sale.reference, sale)
            if len(self._largest) < LARGEST_ERRORS:
                heapq.heappush(self._largest, entry)
            elif entry[:2] > self._largest[0][:2]:
                heapq.heapreplace(self._largest, entry)
            if self.keep_points:
                self.points.append(
                    (np.datetime64(sale.sale_date, "D"), sale.price, sale.sale_price)
                )

    def report(self, **context: Any) -> dict[str, Any]:
        """The summary; ``context`` (model version, window, source) is copied in."""
        thresholds = self.config.performance
        cv = self.manifest["metrics"]["cross_validation"]
        levels = {
            float(level["coverage"]): level for level in self.manifest["intervals"]["levels"]
        }
        # Every coverage of the model is reported overall, with no sales yet too
        # (realised None), so that the gauges and their alerts always exist.
        for coverage in levels:
            self.overall.covered.setdefault(coverage, [0, 0])
        overall = self._judged(
            self.overall,
            {"rmsle": cv["rmsle_mean"], "rmsle_std": cv["rmsle_std"], "mae": cv["mae_mean"]},
            {coverage: level["cv_coverage"] for coverage, level in levels.items()},
        )
        slices = {
            name: [
                self._judged(sums, *self._slice_cv(name, label), label=label)
                for label, sums in sorted(groups.items())
            ]
            for name, groups in self.slices.items()
        }
        return {
            **context,
            "outcomes": self.outcomes,
            "matched": self.overall.count,
            "unmatched": self.outcomes - self.overall.count,
            "thresholds": thresholds.model_dump(),
            "enough_outcomes": self.overall.count >= thresholds.min_outcomes,
            "verdict": overall["verdict"],
            "overall": overall,
            "worse_slices": [
                {"slice": name, "label": row["label"]}
                for name, rows in slices.items()
                for row in rows
                if row["verdict"] == WORSE
            ],
            "slices": slices,
            "largest_errors": [
                {
                    "reference": sale.reference,
                    "sale_date": sale.sale_date.isoformat(),
                    "price": sale.price,
                    "sale_price": sale.sale_price,
                    "log_error": math.log(sale.price) - math.log(sale.sale_price),
                }
                for _, _, sale in sorted(self._largest, key=lambda e: e[:2], reverse=True)
            ],
        }

    def _slice_cv(
        self, name: str, label: str
    ) -> tuple[dict[str, float | None], dict[float, float | None]]:
        errors: Mapping[str, Any] = next(
            (row for row in self.manifest["slices"]["by"].get(name, ()) if row["label"] == label),
            {},
        )
        ranges: Mapping[str, Any] = next(
            (
                row
                for row in self.manifest["intervals"]["slices"]["by"].get(name, ())
                if row["label"] == label
            ),
            {},
        )
        coverage = {float(key): value for key, value in ranges.get("coverage", {}).items()}
        return {"rmsle": errors.get("rmsle"), "bias": errors.get("bias")}, coverage

    def _judged(
        self,
        sums: _Sums,
        cross_validation: Mapping[str, float | None],
        cv_coverage: Mapping[float, float | None],
        **label: str,
    ) -> dict[str, Any]:
        thresholds = self.config.performance
        figures = sums.figures()
        enough = sums.count >= thresholds.min_outcomes
        cv_rmsle = cross_validation.get("rmsle")
        if not enough:
            verdict = TOO_FEW
        elif cv_rmsle is not None and figures["rmsle"] > cv_rmsle * (1 + thresholds.rmsle_margin):
            verdict = WORSE
        else:
            verdict = CONSISTENT
        coverage = []
        for level, (inside, count) in sorted(sums.covered.items()):
            realised = inside / count if count else None
            if realised is None or count < thresholds.min_outcomes:
                judged = TOO_FEW
            elif realised < level - thresholds.coverage_margin:
                judged = BELOW_NOMINAL
            else:
                judged = AT_NOMINAL
            coverage.append(
                {
                    "coverage": level,
                    "outcomes": count,
                    "realised": realised,
                    "cv_coverage": cv_coverage.get(level),
                    "verdict": judged,
                }
            )
        return {
            **label,
            **figures,
            "cross_validation": dict(cross_validation),
            "coverage": coverage,
            "verdict": verdict,
        }
