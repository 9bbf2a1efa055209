"""The metrics read at scrape time, not counted: the served model's identity
and age, and the gauges of the answering worker's latest drift report
(:class:`ReportCollector`: also the performance report's, ``performance_gauges.py``).
:func:`api.app.operations.metrics.render` adds them after the counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class ModelCollector(Collector):
    """The loaded model's version (an info metric) and age, read at scrape time."""

    def __init__(self, manifest: Mapping[str, Any] | None) -> None:
        self.manifest = manifest

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if self.manifest is None:
            return
        info = GaugeMetricFamily(
            "model_info",
            "the model this worker serves (value 1)",
            labels=["version", "tables_sha256", "trained_at"],
        )
        trained_at = str(self.manifest.get("trained_at", ""))
        info.add_metric(
            [str(self.manifest["version"]), str(self.manifest["tables"]["sha256"]), trained_at], 1
        )
        yield info
        try:
            trained = datetime.fromisoformat(trained_at).timestamp()
        except ValueError:
            return
        yield GaugeMetricFamily(
            "model_trained_timestamp_seconds", "when the model was trained (Unix time)", trained
        )
        yield GaugeMetricFamily(
            "model_artifact_age_seconds",
            "seconds since the served model was trained",
            time.time() - trained,
        )


class ReportCollector(Collector):
    """Gauges of a report, read at scrape time: none without a report, nor for
    one this code cannot read (logged: it must not cost the scrape the other
    metrics). Subclasses name the report and yield its gauges (``_families``)."""

    #: The report's name, in the log.
    name: ClassVar[str]

    def __init__(self, report: Mapping[str, Any] | None) -> None:
        self.report = report

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if self.report is None:
            return []
        try:
            return list(self._families(self.report))
        except (KeyError, TypeError, ValueError, AttributeError):
            # Under the subclass's module: each report's failures in its own logger.
            logging.getLogger(type(self).__module__).exception(
                "%s report not exported to /metrics", self.name
            )
            return []

    @staticmethod
    def _families(report: Mapping[str, Any]) -> Iterator[GaugeMetricFamily]:
        raise NotImplementedError


class DriftCollector(ReportCollector):
    """Gauges of a drift report (``GET /api/v1/drift``'s, over the whole window).

    Read at scrape time from the answering worker's latest report, not written
    to the multi-process files: a report is computed from the shared prediction
    log, so every worker's says the same (up to ``DRIFT_CACHE_SECONDS``), and
    adding or keeping them per worker would only multiply the series.
    ``drift_report_timestamp_seconds`` tells how old the figures are.
    """

    name = "drift"

    @staticmethod
    def _families(report: Mapping[str, Any]) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "drift_report_timestamp_seconds",
            "when the drift report behind the drift_* gauges was computed (Unix time)",
            report["generated_at"].timestamp(),
        )
        yield GaugeMetricFamily(
            "drift_houses_compared",
            "priced houses of the latest DRIFT_WINDOW logged ones compared with training",
            report["houses"],
        )
        yield GaugeMetricFamily(
            "drift_enough_houses",
            "1 when enough houses were compared for features to be marked as drifting",
            float(report["enough_houses"]),
        )
        yield GaugeMetricFamily(
            "drift_features_drifting",
            "features marked as drifting (PSI, KS or unseen-label thresholds reached)",
            len(report["drifting"]),
        )
        psi = GaugeMetricFamily(
            "drift_feature_psi",
            "population stability index of each feature, logged houses against training",
            labels=["feature"],
        )
        for feature in report["features"]:
            if feature["psi"] is not None:
                psi.add_metric([feature["input_field"]], feature["psi"])
        yield psi
        prices = report["prices"]
        if prices["shift"] is not None:
            yield GaugeMetricFamily(
                "drift_price_median_shift_ratio",
                "median predicted price of the logged houses / training median - 1",
                prices["shift"],
            )
        if prices["psi"] is not None:
            yield GaugeMetricFamily(
                "drift_price_psi",
                "population stability index of the predicted prices against training",
                prices["psi"],
            )
