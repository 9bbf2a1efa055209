"""Gauges of the latest whole-window performance report, read at scrape time
(as the drift gauges are: ``scrape_metrics.py`` says why not per worker).

The alert rules compare them without a number of their own
(``deploy/compose/prometheus/alerts.yml``): the cross-validated RMSLE, the
margins and the minimum count come from the model and ``config.yml`` through
these gauges, so changing the config changes the alerts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from api.app.operations.scrape_metrics import ReportCollector


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


class PerformanceCollector(ReportCollector):
    """Gauges of a performance report (``GET /api/v1/performance``'s, whole window)."""

    name = "performance"

    @staticmethod
    def _families(report: Mapping[str, Any]) -> Iterator[GaugeMetricFamily]:
        thresholds = report["thresholds"]
        overall = report["overall"]
        yield GaugeMetricFamily(
            "performance_report_timestamp_seconds",
            "when the performance report behind the performance_* gauges was computed",
            report["generated_at"].timestamp(),
        )
        yield GaugeMetricFamily(
            "performance_outcomes_matched",
            "sales matched to a price the served model version gave",
            report["matched"],
        )
        yield GaugeMetricFamily(
            "performance_outcomes_unmatched",
            "outcomes read that match no price of the served model version",
            report["unmatched"],
        )
        yield GaugeMetricFamily(
            "performance_min_outcomes",
            "matched sales needed before anything is judged (config.yml)",
            thresholds["min_outcomes"],
        )
        yield GaugeMetricFamily(
            "performance_rmsle_margin",
            "worse than cross-validation: realised RMSLE above the CV one x (1 + this)",
            thresholds["rmsle_margin"],
        )
        yield GaugeMetricFamily(
            "performance_coverage_margin",
            "a price range is below nominal when it covers more than this less",
            thresholds["coverage_margin"],
        )
        # A figure there is none of yet (no sale matched) is NaN, not absent: the
        # series exist from the start, and a comparison with NaN never fires.
        yield GaugeMetricFamily(
            "performance_cv_rmsle",
            "the served model's cross-validated RMSLE (its manifest)",
            _number(overall["cross_validation"]["rmsle"]),
        )
        for name, text in (
            ("rmsle", "realised RMSLE of the matched sales"),
            ("bias", "realised mean log error (above 0: priced too high)"),
            ("mae", "realised mean absolute error, dollars"),
        ):
            metric = "performance_mae_dollars" if name == "mae" else f"performance_{name}"
            yield GaugeMetricFamily(metric, text, _number(overall[name]))
        realised = GaugeMetricFamily(
            "performance_range_coverage",
            "share of matched sale prices inside the price range of each coverage",
            labels=["coverage"],
        )
        shortfall = GaugeMetricFamily(
            "performance_range_coverage_shortfall",
            "nominal coverage minus the realised one (above 0: the range holds less often)",
            labels=["coverage"],
        )
        counted = GaugeMetricFamily(
            "performance_range_outcomes",
            "matched sales whose logged price had a range of each coverage",
            labels=["coverage"],
        )
        for level in overall["coverage"]:
            label = [f"{level['coverage']:g}"]
            share = _number(level["realised"])
            realised.add_metric(label, share)
            shortfall.add_metric(label, level["coverage"] - share)
            counted.add_metric(label, level["outcomes"])
        yield from (realised, shortfall, counted)
