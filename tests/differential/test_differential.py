"""The current model prices test.csv as the previous release did, house by house.

A failure prints the report of :mod:`.compare`: the houses that moved most,
the shift of the mean and quantiles, and Ids missing or added. When a new
model version is meant to change predictions, review that report and accept
it with ``tox -e capture_predictions``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from regression_model.config.core import Config

from .compare import (
    Tolerances,
    compare_all,
    compare_predictions,
    current_predictions,
    load_tolerances,
    read_predictions,
    write_predictions,
)

pytestmark = pytest.mark.training

TOLERANCES = Tolerances(
    per_house_relative_change=0.01,
    mean_relative_change=0.005,
    quantiles=(0.05, 0.5, 0.95),
    quantile_relative_change=0.01,
    report_top=5,
)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return read_predictions()


def _frame(prices: dict[int, float], version: str = "0.0.0") -> pd.DataFrame:
    return pd.DataFrame(
        {"Id": list(prices), "prediction": list(prices.values()), "version": version}
    )


def test_current_model_matches_the_previous_release(reference: pd.DataFrame) -> None:
    reports = compare_all(reference, current_predictions(), load_tolerances())
    assert [report.column for report in reports] == [
        "prediction",
        "low_80",
        "high_80",
        "low_90",
        "high_90",
    ]
    for report in reports:
        print(report.format())
        assert report.passed, "\n" + report.format()
        assert report.n_compared == len(reference)


def test_a_range_that_moves_fails_like_a_price(reference: pd.DataFrame) -> None:
    current = current_predictions()
    current["high_90"] *= 1.02
    failed = [r.column for r in compare_all(reference, current, TOLERANCES) if not r.passed]
    assert failed == ["high_90"]
    with pytest.raises(ValueError, match="coverages changed"):
        compare_all(reference, current.drop(columns=["low_90", "high_90"]), TOLERANCES)


def test_reference_prices_every_house_of_the_test_set(
    reference: pd.DataFrame, test_data: pd.DataFrame, config: Config
) -> None:
    assert sorted(reference["Id"]) == sorted(test_data[config.model.id_column])
    assert reference["prediction"].notna().all()
    assert reference[["low_80", "high_80", "low_90", "high_90"]].notna().all().all()
    assert reference["version"].nunique() == 1


def test_reference_file_round_trips_every_digit(reference: pd.DataFrame, tmp_path: Path) -> None:
    in_order, shuffled = tmp_path / "in_order.csv", tmp_path / "shuffled.csv"
    write_predictions(reference, in_order)
    write_predictions(reference.sample(frac=1, random_state=0), shuffled)
    assert in_order.read_bytes() == shuffled.read_bytes()
    again = read_predictions(in_order)
    assert again.equals(reference)


def test_houses_are_matched_by_id_not_by_position() -> None:
    reference = _frame({1: 100_000.0, 2: 200_000.0, 3: 300_000.0})
    shuffled = reference.iloc[[2, 0, 1]].reset_index(drop=True)
    report = compare_predictions(reference, shuffled, TOLERANCES)
    assert report.passed, report.format()
    assert report.n_compared == 3
    assert (report.changes["relative_change"] == 0).all()


def test_a_house_beyond_tolerance_fails_and_is_named() -> None:
    prices = {i: 100_000.0 + 1_000 * i for i in range(1, 101)}
    moved = {**prices, 42: prices[42] * 1.05}
    report = compare_predictions(_frame(prices), _frame(moved, "0.0.1"), TOLERANCES)
    assert not report.passed
    assert report.moved["Id"].tolist() == [42]
    text = report.format()
    assert "FAILED" in text and "0.0.1" in text
    assert "    42 " in text and "+5.00%" in text and "beyond tolerance" in text
    assert "tox -e capture_predictions" in text


def test_a_small_shift_of_every_house_fails_on_the_aggregates() -> None:
    prices = {i: 100_000.0 + 1_000 * i for i in range(1, 101)}
    shifted = {i: p * 1.008 for i, p in prices.items()}  # each within 1 %, mean 0.8 %
    report = compare_predictions(_frame(prices), _frame(shifted), TOLERANCES)
    assert report.moved.empty
    assert not report.passed
    failed = [s.name for s in report.statistics if not s.passed]
    assert failed == ["mean"]
    assert "<- shifted" in report.format()


def test_missing_added_and_refused_houses_fail() -> None:
    reference = _frame({1: 100_000.0, 2: 200_000.0, 3: 300_000.0, 4: 400_000.0})
    current = _frame({1: 100_000.0, 2: 200_000.0, 4: float("nan"), 5: 500_000.0})
    report = compare_predictions(reference, current, TOLERANCES)
    assert not report.passed
    assert report.missing_ids == [3]
    assert report.added_ids == [5]
    assert report.status_changed_ids == [4]
    text = report.format()
    assert "in the reference but not predicted now: 3" in text
    assert "predicted now but not in the reference: 5" in text
    assert "refused on the other: 4" in text


def test_duplicated_ids_are_an_error() -> None:
    reference = _frame({1: 100_000.0, 2: 200_000.0})
    current = pd.concat([reference, reference.head(1)], ignore_index=True)
    with pytest.raises(ValueError, match="Id twice"):
        compare_predictions(reference, current, TOLERANCES)
