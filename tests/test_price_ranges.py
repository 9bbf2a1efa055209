"""Every priced house gets a range at each calibrated coverage: computed from
the tables for both engines, the same bits alone and in any batch, judged in
cross-validation and gated at training."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from regression_model import load_model, make_prediction
from regression_model.config.core import Config
from regression_model.scoring.intervals import UnknownCoverageError
from regression_model.training.intervals import Judged, Ranges, gate_problems

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def batch(test_data: pd.DataFrame) -> dict[str, list]:  # type: ignore[type-arg]
    result = make_prediction(input_data=test_data)
    return {"predictions": result["predictions"], "intervals": result["intervals"]}


def test_every_priced_house_has_nested_ranges_around_its_price(
    batch: dict[str, list],
    config: Config,  # type: ignore[type-arg]
) -> None:
    coverages = config.model.intervals.coverages
    assert load_model().coverages == coverages
    for price, ranges in zip(batch["predictions"], batch["intervals"], strict=True):
        assert (price is None) == (ranges is None)
        if price is None:
            continue
        assert [r["coverage"] for r in ranges] == coverages
        for narrow, wide in itertools.pairwise(ranges):
            assert wide["low"] < narrow["low"] < price < narrow["high"] < wide["high"]


def test_a_house_gets_the_same_range_bits_alone_and_in_any_batch(
    test_data: pd.DataFrame,
    batch: dict[str, list],  # type: ignore[type-arg]
) -> None:
    # up to 4 rows are scored row by row in Python floats, more with NumPy blocks
    for start in range(0, 60, 6):
        rows = test_data.iloc[start : start + 6]
        in_batch = batch["intervals"][start : start + 6]
        assert make_prediction(input_data=rows)["intervals"] == in_batch
        for offset, house in enumerate(rows.to_dict("records")):
            alone = make_prediction(input_data=house)["intervals"][0]
            assert alone == batch["intervals"][start + offset]


def test_the_pipeline_gives_the_same_ranges_within_1e_9(
    test_data: pd.DataFrame,
    batch: dict[str, list],  # type: ignore[type-arg]
) -> None:
    pipeline = make_prediction(input_data=test_data, engine="pipeline")["intervals"]
    worst = 0.0
    for tables_ranges, pipeline_ranges in zip(batch["intervals"], pipeline, strict=True):
        assert (tables_ranges is None) == (pipeline_ranges is None)
        for a, b in zip(tables_ranges or [], pipeline_ranges or [], strict=True):
            worst = max(worst, abs(a["low"] / b["low"] - 1), abs(a["high"] / b["high"] - 1))
    assert worst <= 1e-9


def test_a_caller_asks_for_some_coverages_and_never_an_uncalibrated_one(
    test_data: pd.DataFrame,
) -> None:
    both = make_prediction(input_data=test_data.head(3))["intervals"]
    ninety = make_prediction(input_data=test_data.head(3), coverages=[0.9])["intervals"]
    assert ninety == [[r for r in row if r["coverage"] == 0.9] for row in both]  # type: ignore[union-attr]
    assert make_prediction(input_data=test_data.head(2), coverages=[])["intervals"] == [[], []]
    with pytest.raises(UnknownCoverageError, match=r"0\.95.*ranges at 0\.8, 0\.9"):
        make_prediction(input_data=test_data.head(1), coverages=[0.95])


@pytest.mark.parametrize(
    ("coverages", "message"),
    [
        (0.8, r"a sequence of coverages, such as \[0\.8\].*got float 0\.8"),
        ("0.8", r"a sequence of coverages.*got str '0\.8'"),
        ({0.8}, r"a sequence of coverages.*got set"),
        (["0.8"], r"coverages must be numbers.*got str '0\.8'"),
        ([True], r"coverages must be numbers.*got bool True"),
    ],
)
def test_coverages_that_are_not_a_sequence_of_numbers_are_a_type_error(
    test_data: pd.DataFrame, coverages: object, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        make_prediction(input_data=test_data.head(1), coverages=coverages)  # type: ignore[arg-type]


def test_a_coverage_asked_twice_gets_one_range(test_data: pd.DataFrame) -> None:
    twice = make_prediction(input_data=test_data.head(2), coverages=(0.9, 0.8, 0.9))
    assert [[r["coverage"] for r in row] for row in twice["intervals"]] == [[0.9, 0.8]] * 2  # type: ignore[union-attr]


def test_an_unpriced_house_has_no_range(test_data: pd.DataFrame) -> None:
    house = test_data.iloc[0].to_dict()
    result = make_prediction(input_data=[house, {**house, "GrLivArea": -5}])
    assert result["predictions"][1] is None and result["intervals"][1] is None
    assert result["intervals"][0] is not None


def test_the_manifest_records_the_ranges_judged_in_cross_validation(config: Config) -> None:
    report = load_model().manifest["intervals"]
    settings = config.model.intervals
    assert report["quality_gate"]["passed"] is True
    assert report["compiled_check"]["max_relative_difference"] <= 1e-9
    assert [level["coverage"] for level in report["levels"]] == settings.coverages
    for level in report["levels"]:
        assert abs(level["cv_coverage"] - level["coverage"]) <= settings.max_coverage_gap
        # the adaptive range ships only when it is narrower than the constant one
        if report["kind"] == "adaptive":
            assert level["mean_width"] < level["constant"]["mean_width"]
            assert level["mean_width_vs_constant"] < 0
    assert report["slices"]["gated"] and "price band" not in report["slices"]["gated"]


def test_conformal_ranges_cover_new_draws_at_their_nominal_rate(config: Config) -> None:
    """On exchangeable errors the calibrated quantiles hold their coverage on
    houses they never saw (constant ranges; heavy-tailed, lopsided errors)."""
    rng = np.random.default_rng(7)
    seen, unseen = (rng.standard_t(3, size=n) * 0.1 - 0.02 for n in (3000, 50_000))
    houses = pd.DataFrame(index=range(3000))
    ranges = Ranges(config.model, houses, seen, adaptive=False)
    for coverage in (0.8, 0.9):
        low, high = ranges.quantiles(coverage)
        assert abs(np.mean((unseen >= low) & (unseen <= high)) - coverage) < 0.015
        # lopsided: the tails are cut at their own quantiles, not symmetrically
        assert math.isclose(np.mean(unseen < low), (1 - coverage) / 2, abs_tol=0.01)


def _judged(covered_share: dict[float, float], n: int = 1000) -> Judged:
    covered = {c: np.arange(n)[None, :] < round(share * n) for c, share in covered_share.items()}
    return Judged(covered, {c: np.ones((1, n)) for c in covered_share})


def _slices(houses: int, coverage: dict[str, float]) -> dict[str, object]:
    row = {"label": "Edwards", "houses": houses, "coverage": coverage}
    return {"by": {"Neighborhood": [row], "price band": [row]}, "gated": ["Neighborhood"]}


def test_the_gate_refuses_ranges_off_nominal_overall(config: Config) -> None:
    fine = {"0.8": 0.8, "0.9": 0.9}
    assert gate_problems(config.model, _judged({0.8: 0.79, 0.9: 0.91}), _slices(100, fine)) == []
    problems = gate_problems(config.model, _judged({0.8: 0.77, 0.9: 0.9}), _slices(100, fine))
    assert len(problems) == 1 and "80% price ranges cover 77.0%" in problems[0]


def test_the_gate_refuses_a_slice_short_beyond_chance_but_not_by_chance(config: Config) -> None:
    judged = _judged({0.8: 0.8, 0.9: 0.9})
    # 200 houses at 60 % for 80 %: far beyond chance
    problems = gate_problems(config.model, judged, _slices(200, {"0.8": 0.6, "0.9": 0.9}))
    assert len(problems) == 1 and "Neighborhood = Edwards" in problems[0]
    # 31 houses at 74 %: 6 points short, as often as not the luck of a small slice
    assert gate_problems(config.model, judged, _slices(31, {"0.8": 0.74, "0.9": 0.9})) == []
    # a slice under min_slice_houses is reported, never gated
    assert gate_problems(config.model, judged, _slices(29, {"0.8": 0.2, "0.9": 0.2})) == []
