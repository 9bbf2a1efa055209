"""Compare two sets of predictions house by house (by ``Id``) and in aggregate.

The reference is the previous release's prices for every house in the bundled
``test.csv``, committed as ``tests/reference/predictions_test.csv`` (columns
``Id``, ``prediction``, ``version``). :func:`compare_predictions` is the one
comparison used by the differential test, by the perturbation test that proves
the check bites, and by ``tox -e capture_predictions``, which prints what a
refresh changes before it writes the new reference.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from strictyaml import CommaSeparated, Float, Int, Map, load

from regression_model.config.core import get_config
from regression_model.data import load_dataset
from regression_model.predict import make_prediction

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
REFERENCE_FILE = REFERENCE_DIR / "predictions_test.csv"
TOLERANCES_FILE = REFERENCE_DIR / "tolerances.yml"
#: The price; then, per coverage of the model, its range's bounds
#: (``low_80``, ``high_80``, ...) between it and ``version``.
PRICE = "prediction"
CAPTURE_COMMAND = "tox -e capture_predictions"

_TOLERANCES_SCHEMA = Map(
    {
        "per_house_relative_change": Float(),
        "mean_relative_change": Float(),
        "quantiles": CommaSeparated(Float()),
        "quantile_relative_change": Float(),
        "report_top": Int(),
    }
)


@dataclass(frozen=True)
class Tolerances:
    """Bounds on relative change (0.01 = 1 %), read from ``tolerances.yml``."""

    per_house_relative_change: float
    mean_relative_change: float
    quantiles: tuple[float, ...]
    quantile_relative_change: float
    report_top: int = 10


def load_tolerances(path: Path = TOLERANCES_FILE) -> Tolerances:
    data = load(path.read_text(), _TOLERANCES_SCHEMA, label=str(path)).data
    tolerances = Tolerances(**{**data, "quantiles": tuple(data["quantiles"])})
    if not all(0 < q < 1 for q in tolerances.quantiles):
        raise ValueError(f"{path}: quantiles must lie strictly between 0 and 1")
    return tolerances


def range_columns(coverages: list[float]) -> list[str]:
    """The columns of the ranges' bounds at these coverages, low then high."""
    return [f"{bound}_{coverage * 100:g}" for coverage in coverages for bound in ("low", "high")]


def price_columns(frame: pd.DataFrame) -> list[str]:
    """The price and its ranges' bounds: every column compared house by house."""
    return [column for column in frame.columns if column not in {"Id", "version"}]


def read_predictions(path: Path = REFERENCE_FILE) -> pd.DataFrame:
    """A predictions file as ``Id`` (int), ``prediction`` and the ranges'
    bounds (float, NaN when the house was refused) and ``version`` (str)."""
    frame = pd.read_csv(path, dtype={"Id": "int64", "version": str})
    names = list(frame.columns)
    bounds = names[2:-1]
    coverages = sorted({float(name.split("_")[1]) / 100 for name in bounds})
    if names[:2] != ["Id", PRICE] or names[-1] != "version" or bounds != range_columns(coverages):
        raise ValueError(
            f"{path}: expected columns Id, {PRICE}, low_C, high_C per coverage C, version; "
            f"got {names}"
        )
    frame[[PRICE, *bounds]] = frame[[PRICE, *bounds]].astype("float64")
    if frame["Id"].duplicated().any():
        duplicated = sorted(frame.loc[frame["Id"].duplicated(), "Id"].tolist())
        raise ValueError(f"{path}: Ids listed twice: {duplicated[:10]}")
    return frame


def write_predictions(frame: pd.DataFrame, path: Path = REFERENCE_FILE) -> None:
    """Write the Id, the price columns and the version sorted by Id, every
    float digit kept (``repr`` round-trips), an empty field for a refused house."""
    ordered = frame.sort_values("Id")
    columns = ["Id", *price_columns(frame), "version"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for house, *prices, version in ordered[columns].itertuples(index=False):
            writer.writerow(
                [
                    int(house),
                    *("" if math.isnan(price) else repr(float(price)) for price in prices),
                    version,
                ]
            )


def current_predictions() -> pd.DataFrame:
    """The active model's prices for every house of the bundled test set.

    Uses the active config and artifact directory (``REGRESSION_MODEL_CONFIG``
    and ``REGRESSION_MODEL_ARTIFACT_DIR`` select another model).
    """
    config = get_config()
    houses = load_dataset(config.app.test_data_file)
    result = make_prediction(input_data=houses)
    prices = [np.nan if p is None else p for p in result["predictions"]]
    coverages = config.model.intervals.coverages
    bounds = np.full((len(houses), 2 * len(coverages)), np.nan)
    for row, ranges in enumerate(result["intervals"]):
        for level, price_range in enumerate(ranges or []):
            bounds[row, 2 * level : 2 * level + 2] = price_range["low"], price_range["high"]
    return pd.DataFrame(
        {
            "Id": houses[config.model.id_column].astype("int64"),
            PRICE: np.asarray(prices, dtype="float64"),
            **dict(zip(range_columns(coverages), bounds.T, strict=True)),
            "version": result["version"],
        }
    )


@dataclass(frozen=True)
class StatisticShift:
    name: str
    reference: float
    current: float
    limit: float

    @property
    def relative_change(self) -> float:
        return self.current / self.reference - 1

    @property
    def passed(self) -> bool:
        return abs(self.relative_change) <= self.limit


@dataclass(frozen=True)
class DifferentialReport:
    """Everything the comparison found; :meth:`format` is the readable report."""

    reference_version: str
    current_version: str
    tolerances: Tolerances
    #: the column compared: the price, or a bound of a range (``low_90``)
    column: str
    n_compared: int
    #: Every house compared, with ``reference``, ``current`` and
    #: ``relative_change``, largest absolute change first.
    changes: pd.DataFrame
    statistics: list[StatisticShift]
    missing_ids: list[int] = field(default_factory=list)
    added_ids: list[int] = field(default_factory=list)
    #: Houses priced on one side and refused on the other.
    status_changed_ids: list[int] = field(default_factory=list)

    @property
    def moved(self) -> pd.DataFrame:
        """Houses whose price moved beyond the per-house tolerance."""
        limit = self.tolerances.per_house_relative_change
        return self.changes[self.changes["relative_change"].abs() > limit]

    @property
    def passed(self) -> bool:
        return (
            self.moved.empty
            and all(s.passed for s in self.statistics)
            and not (self.missing_ids or self.added_ids or self.status_changed_ids)
        )

    def format(self) -> str:
        t = self.tolerances
        verdict = "PASSED" if self.passed else "FAILED"
        largest = self.changes["relative_change"].abs().max() if len(self.changes) else 0.0
        identical = int((self.changes["relative_change"] == 0).sum())
        lines = [
            f"Differential check {verdict} ({self.column}): model {self.current_version} "
            f"against the reference from model {self.reference_version}",
            f"  {self.n_compared} houses compared by Id; {len(self.moved)} moved more than "
            f"{t.per_house_relative_change:.2%} (largest move {largest:.2%}); "
            f"{identical} identical to the last bit",
        ]
        if self.missing_ids:
            lines.append(
                f"  {len(self.missing_ids)} Id(s) in the reference but not predicted now: "
                f"{_some(self.missing_ids)}"
            )
        if self.added_ids:
            lines.append(
                f"  {len(self.added_ids)} Id(s) predicted now but not in the reference: "
                f"{_some(self.added_ids)}"
            )
        if self.status_changed_ids:
            lines.append(
                f"  {len(self.status_changed_ids)} house(s) priced on one side and refused "
                f"on the other: {_some(self.status_changed_ids)}"
            )
        top = self.changes.head(t.report_top)
        if len(top):
            lines.append(f"  houses that moved most (limit ±{t.per_house_relative_change:.2%}):")
            lines.append(f"    {'Id':>6} {'reference':>14} {'current':>14} {'change':>9}")
            for house, reference, current, change in top.itertuples(index=False):
                flag = "  <- beyond tolerance" if abs(change) > t.per_house_relative_change else ""
                lines.append(
                    f"    {house:>6} {reference:>14,.2f} {current:>14,.2f} {change:>+9.2%}{flag}"
                )
        lines.append("  aggregate statistics:")
        lines.append(
            f"    {'statistic':<9} {'reference':>14} {'current':>14} {'change':>9} {'limit':>8}"
        )
        for s in self.statistics:
            lines.append(
                f"    {s.name:<9} {s.reference:>14,.2f} {s.current:>14,.2f} "
                f"{s.relative_change:>+9.3%} {s.limit:>8.2%}"
                + ("" if s.passed else "  <- shifted")
            )
        if not self.passed:
            lines.append(
                "  If this model version is meant to change these predictions, review the "
                f"houses above and accept the new reference with `{CAPTURE_COMMAND}`."
            )
        return "\n".join(lines)


def _some(ids: list[int], shown: int = 20) -> str:
    more = f" ... and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(str(i) for i in ids[:shown]) + more


def _single_version(frame: pd.DataFrame) -> str:
    versions = sorted(set(frame["version"].astype(str)))
    return versions[0] if len(versions) == 1 else "/".join(versions)


def compare_all(
    reference: pd.DataFrame, current: pd.DataFrame, tolerances: Tolerances
) -> list[DifferentialReport]:
    """The price and each range bound, compared like the price. Raises when
    the two list ranges at different coverages (the model's coverages
    changed: review the new ranges and accept them)."""
    if price_columns(reference) != price_columns(current):
        raise ValueError(
            f"the reference has columns {price_columns(reference)}, the current model "
            f"{price_columns(current)}: its ranges' coverages changed; if meant, accept "
            f"them with `{CAPTURE_COMMAND}`"
        )
    return [
        compare_predictions(reference, current, tolerances, column)
        for column in price_columns(reference)
    ]


def compare_predictions(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    tolerances: Tolerances,
    column: str = PRICE,
) -> DifferentialReport:
    """Match houses by ``Id`` (row order is irrelevant) and measure every move.

    Fails (``report.passed`` is False) when a house moves beyond the per-house
    tolerance, when the mean or a quantile of the prices shifts beyond its
    bound, when an Id is missing or added, or when a house that was priced is
    now refused (or the reverse).
    """
    ref = reference.set_index("Id")[column]
    cur = current.set_index("Id")[column]
    for name, ids in (("reference", ref.index), ("current", cur.index)):
        if ids.duplicated().any():
            raise ValueError(
                f"{name} predictions list an Id twice: {_some(sorted(ids[ids.duplicated()]))}"
            )
    common = ref.index.intersection(cur.index).sort_values()
    ref_common, cur_common = ref.loc[common], cur.loc[common]
    status_changed = common[ref_common.isna() != cur_common.isna()]
    both = common[ref_common.notna() & cur_common.notna()]
    reference_prices, current_prices = ref.loc[both], cur.loc[both]
    changes = pd.DataFrame(
        {
            "Id": both.astype("int64"),
            "reference": reference_prices.to_numpy(),
            "current": current_prices.to_numpy(),
            "relative_change": (current_prices / reference_prices - 1).to_numpy(),
        }
    )
    order = np.argsort(-changes["relative_change"].abs().to_numpy(), kind="stable")
    changes = changes.iloc[order].reset_index(drop=True)
    statistics = [
        StatisticShift(
            "mean",
            float(reference_prices.mean()),
            float(current_prices.mean()),
            tolerances.mean_relative_change,
        )
    ]
    for q in tolerances.quantiles:
        statistics.append(
            StatisticShift(
                f"q{q * 100:g}",
                float(reference_prices.quantile(q)),
                float(current_prices.quantile(q)),
                tolerances.quantile_relative_change,
            )
        )
    return DifferentialReport(
        reference_version=_single_version(reference),
        current_version=_single_version(current),
        tolerances=tolerances,
        column=column,
        n_compared=len(common),
        changes=changes,
        statistics=statistics,
        missing_ids=sorted(int(i) for i in ref.index.difference(cur.index)),
        added_ids=sorted(int(i) for i in cur.index.difference(ref.index)),
        status_changed_ids=sorted(int(i) for i in status_changed),
    )
