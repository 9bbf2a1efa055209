"""Drift: do the houses being priced still look like the training houses?

Logged houses are compared, feature by feature, with the training profile
that training wrote into the manifest (``features``: missing share, label
shares, and for numbers the exact empirical distribution function at the
training percentiles; ``predictions``: the same for the prices the model
gave its training houses). Per feature:

- **PSI**, the population stability index ``sum((a - e) * ln(a / e))`` over
  bins: for numbers the training deciles plus a "missing" bin, for labels
  each training label plus "missing" and "unseen";
- for numbers, the **Kolmogorov-Smirnov** statistic: the largest gap between
  the training and logged distribution functions, taken at the recorded
  training values (where the training function is exact), with the
  asymptotic p-value for samples of these sizes;
- for labels, the **share of unseen labels** (labels training never saw).

Predicted prices get the same PSI and KS against the training predictions,
and the relative shift of their median. ``config.yml``'s ``drift`` section
says when a feature is marked as drifting.

NumPy only, and incremental: :class:`DriftAccumulator` takes logged houses in
chunks of any size, so a report over millions of records needs memory for
their prices only. The API's ``GET /api/v1/drift`` and the CLI's
``regression-model drift`` both use it, so they report the same numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from regression_model.config.core import Config
from regression_model.scoring.validation import validate_inputs

#: Share given to an empty bin, so that PSI stays finite.
PSI_FLOOR = 1e-4
MISSING_BIN = "(missing)"
UNSEEN_BIN = "(unseen)"


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype="float64"), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype="float64"), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution (the limit of sqrt(n)·D)."""
    if x < 0.18:  # the series converges slowly there, and the value is 1 to 1e-15
        return 1.0
    k = np.arange(1, 101)
    terms = 2.0 * (-1.0) ** (k - 1) * np.exp(-2.0 * k**2 * x**2)
    return float(min(1.0, max(0.0, terms.sum())))


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Asymptotic two-sample p-value of a KS statistic for samples of n and m,
    with Stephens' small-sample correction."""
    if n == 0 or m == 0:
        return 1.0
    effective = math.sqrt(n * m / (n + m))
    return kolmogorov_sf((effective + 0.12 + 0.11 / effective) * statistic)


class _Distribution:
    """A training distribution of numbers (an ``ecdf`` profile) and the
    logged values seen so far, counted at the same points."""

    def __init__(self, profile: Mapping[str, Any]) -> None:
        self.points = np.asarray(profile["ecdf"]["values"], dtype="float64")
        self.training_n = int(profile["count"])
        self.training_cdf = np.asarray(profile["ecdf"]["counts"], dtype="float64") / max(
            self.training_n, 1
        )
        # PSI bins: the training deciles, as recorded points (exact shares).
        edges = []
        for q in np.arange(1, 10) / 10:
            at = int(np.searchsorted(self.training_cdf, q - 1e-12))
            if at < len(self.points) - 1:
                edges.append(at)
        self.edge_index = np.unique(np.asarray(edges, dtype=np.intp))
        self.edges = self.points[self.edge_index]
        below = np.concatenate([[0.0], self.training_cdf[self.edge_index], [1.0]])
        self.training_bins = np.diff(below)
        self.logged_le = np.zeros(len(self.points), dtype=np.int64)
        self.logged_bins = np.zeros(len(self.training_bins), dtype=np.int64)
        self.logged_n = 0

    def add(self, values: np.ndarray) -> None:
        ordered = np.sort(values)
        self.logged_le += np.searchsorted(ordered, self.points, side="right")
        self.logged_bins += np.bincount(
            np.searchsorted(self.edges, values, side="left"), minlength=len(self.training_bins)
        )
        self.logged_n += len(values)

    def ks(self) -> tuple[float | None, float | None]:
        if not self.logged_n or not self.training_n:
            return None, None
        gap = np.abs(self.logged_le / self.logged_n - self.training_cdf)
        statistic = float(gap.max())
        return statistic, ks_p_value(statistic, self.training_n, self.logged_n)


class DriftAccumulator:
    """Logged houses, counted against the training profile, chunk by chunk.

    ``manifest`` is the verified manifest of the model whose houses are
    compared; ``config`` the config it was trained with (feature lists,
    thresholds).
    """

    def __init__(self, manifest: Mapping[str, Any], config: Config) -> None:
        self.config = config
        self.profiles = {entry["name"]: entry for entry in manifest["features"]}
        model = config.model
        self.numbers = {
            name: _Distribution(self.profiles[name])
            for name in model.numerical_vars
            if "ecdf" in self.profiles.get(name, {})
        }
        if len(self.numbers) != len(model.numerical_vars) or "predictions" not in manifest:
            raise ValueError(
                "the manifest has no training distributions for drift reports: "
                "retrain the model with this package version"
            )
        self.prices = _Distribution(manifest["predictions"])
        self.training_price_median = float(manifest["predictions"]["median"])
        self.logged_prices: list[np.ndarray] = []
        self.missing: Counter[str] = Counter()
        self.labels: dict[str, Counter[str]] = {name: Counter() for name in model.categorical_vars}
        self.priced = 0
        self.rejected = 0

    def add(self, houses: Sequence[Any], prices: Sequence[float | None]) -> None:
        """Count logged houses (as sent) with their logged prices (None: rejected)."""
        model = self.config.model
        pairs = [
            (house, price)
            for house, price in zip(houses, prices, strict=True)
            if price is not None and isinstance(house, Mapping)
        ]
        self.rejected += len(houses) - len(pairs)
        checked = validate_inputs([house for house, _ in pairs], model)
        valid = checked.valid
        self.rejected += int((~valid).sum())
        self.priced += int(valid.sum())
        logged = np.asarray([price for _, price in pairs], dtype="float64")[valid]
        self.logged_prices.append(logged)
        self.prices.add(logged)
        numbers = checked.numbers[valid]
        for position, name in enumerate(model.numerical_vars):
            column = numbers[:, position]
            present = ~np.isnan(column)
            self.missing[name] += int((~present).sum())
            self.numbers[name].add(column[present])
        codes = checked.codes[valid]
        for position, name in enumerate(model.categorical_vars):
            known = checked.categories[position]
            counts = np.bincount(codes[:, position] + 1, minlength=len(known) + 1)
            self.missing[name] += int(counts[0])
            labels = self.labels[name]
            for label, count in zip(known, counts[1:].tolist(), strict=True):
                if count:
                    labels[label] += count

    def report(self, **context: Any) -> dict[str, Any]:
        """The summary: per feature and for the prices; ``context`` (the time
        window, the source) is copied in."""
        thresholds = self.config.drift
        enough = self.priced >= thresholds.min_records
        features = [self._feature(name, enough) for name in self.config.model.features]
        prices = self._prices(enough)
        renamed = {safe: raw for raw, safe in self.config.model.variables_to_rename.items()}
        for feature in features:
            feature["input_field"] = renamed.get(feature["name"], feature["name"])
        return {
            **context,
            "houses": self.priced,
            "rejected": self.rejected,
            "enough_houses": enough,
            "thresholds": thresholds.model_dump(),
            "drifting": [f["name"] for f in features if f["drifting"]],
            "prices": prices,
            "features": features,
        }

    def _feature(self, name: str, enough: bool) -> dict[str, Any]:
        thresholds = self.config.drift
        profile = self.profiles[name]
        training_missing = float(profile["missing_share"])
        logged_missing = self.missing[name] / self.priced if self.priced else None
        entry: dict[str, Any] = {
            "name": name,
            "type": profile["type"],
            "missing_share": {"training": training_missing, "logged": logged_missing},
            "psi": None,
            "ks_statistic": None,
            "ks_p_value": None,
            "unseen_share": None,
        }
        reasons: list[str] = []
        if self.priced:
            if name in self.numbers:
                distribution = self.numbers[name]
                expected = np.concatenate(
                    [distribution.training_bins * (1 - training_missing), [training_missing]]
                )
                present = distribution.logged_bins / self.priced
                actual = np.concatenate([present, [self.missing[name] / self.priced]])
                entry["psi"] = psi(expected, actual)
                entry["ks_statistic"], entry["ks_p_value"] = distribution.ks()
                if (
                    entry["ks_statistic"] is not None
                    and entry["ks_statistic"] >= thresholds.ks_statistic
                    and entry["ks_p_value"] < thresholds.ks_p_value
                ):
                    reasons.append("ks")
            else:
                shares = profile["categories"]
                seen = self.labels[name]
                unseen = sum(count for label, count in seen.items() if label not in shares)
                expected = np.array(
                    [share * (1 - training_missing) for share in shares.values()]
                    + [training_missing, 0.0]
                )
                actual = (
                    np.array(
                        [seen.get(label, 0) for label in shares] + [self.missing[name], unseen]
                    )
                    / self.priced
                )
                entry["psi"] = psi(expected, actual)
                entry["unseen_share"] = unseen / self.priced
                entry["unseen_labels"] = sorted(label for label in seen if label not in shares)[
                    :20
                ]
                if entry["unseen_share"] >= thresholds.unseen_share:
                    reasons.append("unseen")
            if entry["psi"] >= thresholds.psi:
                reasons.insert(0, "psi")
        entry["drifting"] = enough and bool(reasons)
        entry["reasons"] = reasons if enough else []
        return entry

    def _prices(self, enough: bool) -> dict[str, Any]:
        thresholds = self.config.drift
        logged = np.concatenate(self.logged_prices) if self.logged_prices else np.empty(0)
        entry: dict[str, Any] = {
            "training_median": self.training_price_median,
            "logged_median": float(np.median(logged)) if len(logged) else None,
            "shift": None,
            "psi": None,
            "ks_statistic": None,
            "ks_p_value": None,
        }
        reasons: list[str] = []
        if len(logged):
            distribution = self.prices
            entry["shift"] = entry["logged_median"] / self.training_price_median - 1
            entry["psi"] = psi(distribution.training_bins, distribution.logged_bins / len(logged))
            entry["ks_statistic"], entry["ks_p_value"] = distribution.ks()
            if abs(entry["shift"]) >= thresholds.price_shift:
                reasons.append("shift")
            if entry["psi"] >= thresholds.psi:
                reasons.append("psi")
        entry["drifting"] = enough and bool(reasons)
        entry["reasons"] = reasons if enough else []
        return entry
