"""The compiled model tables price every house as the fitted pipeline does,
refuse the same rows with the same errors, explain each price exactly, and
serve without scikit-learn."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import FunctionTransformer

from regression_model import load_model, make_prediction
from regression_model.config.core import Config, get_config
from regression_model.data import load_dataset
from regression_model.scoring.tables import FORMAT, ModelTables
from regression_model.scoring.terms import TablesFormatError
from regression_model.training.compiler import CompileError, compile_tables

pytestmark = pytest.mark.training

CONFIG = get_config().model
RAW_NAMES = {safe: raw for raw, safe in CONFIG.variables_to_rename.items()}
TOLERANCE = 1e-9


def _assert_same_results(inputs: Any) -> None:
    tables = make_prediction(input_data=inputs)
    pipeline = make_prediction(input_data=inputs, engine="pipeline")
    assert tables["errors"] == pipeline["errors"]
    for compiled, fitted in zip(tables["predictions"], pipeline["predictions"], strict=True):
        assert (compiled is None) == (fitted is None)
        if compiled is not None:
            assert compiled == pytest.approx(fitted, rel=TOLERANCE)


@pytest.mark.parametrize("file_name", ["train.csv", "test.csv"])
def test_every_bundled_house_is_priced_as_the_pipeline_prices_it(file_name: str) -> None:
    houses = load_dataset(file_name)
    _assert_same_results(houses)
    _assert_same_results(houses.head(3))  # the row-by-row validation of small frames


def _training_labels() -> dict[str, list[str]]:
    manifest = load_model(engine="pipeline").manifest
    return {f["name"]: list(f["categories"]) for f in manifest["features"] if "categories" in f}


@st.composite
def houses(draw: st.DrawFn, labels: dict[str, list[str]]) -> dict[str, Any]:
    """A house with any mix of missing fields, extreme but valid numbers,
    known, rare and unseen labels, and now and then an invalid value."""
    house: dict[str, Any] = {}
    for name in CONFIG.numerical_vars:
        choice = draw(st.integers(0, 9))
        if choice < 3:
            continue  # missing: imputed
        low, high = CONFIG.numerical_ranges[name]
        if name in CONFIG.integer_vars:
            value: Any = draw(st.sampled_from([int(low), int(high), draw(st.integers(low, high))]))
        else:
            value = draw(st.sampled_from([low, high, draw(st.floats(low, high))]))
        if choice == 9:
            value = draw(st.sampled_from([-1e9, "text", True, math.inf]))
        house[RAW_NAMES.get(name, name)] = value
    for name in CONFIG.categorical_vars:
        known = labels.get(name) or ["x"]
        options = st.one_of(
            st.none(),
            st.just("NA"),
            st.sampled_from(known),
            st.text(min_size=1, max_size=8).filter(str.strip),  # unseen (or invalid code)
        )
        if name in CONFIG.coded_vars:
            options = st.one_of(st.none(), st.sampled_from(CONFIG.coded_vars[name]), st.just(25))
        if draw(st.booleans()):
            house[name] = draw(options)
    return house


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_houses_get_the_same_prices_and_errors(data: st.DataObject) -> None:
    batch = data.draw(st.lists(houses(_training_labels()), min_size=1, max_size=8))
    _assert_same_results(batch)
    _assert_same_results(pd.DataFrame(batch * 3))  # a frame large enough to go by columns
    # Scored row by row (alone) or with NumPy (in a batch): the same bits.
    alone = [make_prediction(input_data=house)["predictions"][0] for house in batch]
    assert make_prediction(input_data=batch * 3)["predictions"] == alone * 3


def test_a_house_gets_the_same_bits_alone_and_in_any_batch(test_data: pd.DataFrame) -> None:
    whole = make_prediction(input_data=test_data)["predictions"]
    records = test_data.to_dict(orient="records")
    for i in (0, 7, 1458):
        assert make_prediction(input_data=records[i])["predictions"] == [whole[i]]
        assert make_prediction(input_data=test_data.iloc[[i]])["predictions"] == [whole[i]]


def test_explanations_add_up_to_each_price(test_data: pd.DataFrame) -> None:
    result = make_prediction(input_data=test_data.head(40), explain=True)
    explanations = result["explanations"]
    assert len(explanations) == 40
    for price, explanation in zip(result["predictions"], explanations, strict=True):
        assert price is not None and explanation is not None
        factors = explanation["factors"]
        logs = [f["log_effect"] for f in factors]
        assert logs == sorted(logs, key=abs, reverse=True)
        assert math.fsum([explanation["log_baseline"], *logs]) == pytest.approx(
            math.log(price), rel=1e-13
        )
        assert explanation["baseline"] * math.prod(f["factor"] for f in factors) == pytest.approx(
            price, rel=1e-12
        )
        dollars = math.fsum([explanation["baseline"], *(f["dollars"] for f in factors)])
        assert dollars == pytest.approx(price, rel=1e-12)
        assert {f["variable"] for f in factors} <= set(CONFIG.features)


def test_explanations_are_none_for_unpriced_houses() -> None:
    result = make_prediction(input_data=[{"GrLivArea": -1}, {"GrLivArea": 1500}], explain=True)
    assert result["predictions"][0] is None
    assert result["explanations"][0] is None
    assert result["explanations"][1] is not None
    assert "explanations" not in make_prediction(input_data={"GrLivArea": 1500})


def test_unknown_engine_and_pipeline_explanations_are_refused() -> None:
    with pytest.raises(ValueError, match="engine must be one of tables, pipeline"):
        make_prediction(input_data={"GrLivArea": 1500}, engine="onnx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="engine='tables'"):
        make_prediction(input_data={"GrLivArea": 1500}, engine="pipeline", explain=True)


def test_a_step_without_a_compile_rule_fails_naming_it(config: Config) -> None:
    fitted = load_model(engine="pipeline").estimator
    steps = fitted.regressor_.steps
    fitted.regressor_.steps = [*steps[:3], ("mystery", FunctionTransformer()), *steps[3:]]
    try:
        with pytest.raises(CompileError, match=r"step 'mystery' \(.*FunctionTransformer\)"):
            compile_tables(fitted, config.model)
    finally:
        fitted.regressor_.steps = steps


def test_serving_never_unpickles_nor_imports_training_libraries() -> None:
    code = (
        "import sys\n"
        "from regression_model import make_prediction\n"
        "result = make_prediction(input_data={'GrLivArea': 1500, 'Neighborhood': 'NAmes'},"
        " explain=True)\n"
        "assert result['predictions'][0] > 0, result\n"
        "loaded = sorted(m for m in ('sklearn', 'feature_engine', 'joblib', 'pandas',"
        " 'scipy') if m in sys.modules)\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_large_frames_are_scored_in_chunks_with_the_same_bits(
    test_data: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = make_prediction(input_data=test_data)
    monkeypatch.setattr("regression_model.scoring.chunks.CHUNK_ROWS", 100)
    broken = test_data.copy()
    broken.loc[250, "GrLivArea"] = -5
    chunked = make_prediction(input_data=broken, explain=True)
    expected = list(whole["predictions"])
    expected[250] = None
    assert chunked["predictions"] == expected
    assert chunked["errors"] == [
        {
            "row": 250,
            "field": "GrLivArea",
            "message": "-5 is out of range: must be between 1 and 100000",
        }
    ]
    assert len(chunked["explanations"]) == len(test_data)


def test_scoring_block_by_block_gives_the_same_bits(
    test_data: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NumPy scores a batch in blocks of rows (for the cache): any block size
    gives every house the bits it gets in one block (1459 houses < BLOCK_ROWS)."""
    whole = make_prediction(input_data=test_data, explain=True)
    for rows in (7, 100, 1000):
        monkeypatch.setattr("regression_model.scoring.tables.BLOCK_ROWS", rows)
        assert make_prediction(input_data=test_data, explain=True) == whole


def test_numeric_columns_of_every_kind_are_read_alike(test_data: pd.DataFrame) -> None:
    frame = test_data.head(30)
    typed = frame.astype({"GrLivArea": "Int64", "LotArea": "float32", "MSSubClass": "object"})
    first = make_prediction(input_data=frame)["predictions"]
    assert make_prediction(input_data=typed)["predictions"] == first
    assert np.isfinite(np.array(first, dtype=float)).all()


def _spline_terms() -> list[Any]:
    return [t for t in load_model().tables.numeric if t.spline is not None]


def test_the_configured_splines_are_compiled_into_the_tables() -> None:
    terms = _spline_terms()
    assert [t.variable for t in terms] == CONFIG.spline_vars
    assert load_model().tables.format == FORMAT == 3
    for term in terms:
        spline = term.spline
        assert spline is not None
        assert len(spline.coefficients) == len(spline.knots) - 1
        assert all(len(piece) == 4 for piece in spline.coefficients)  # cubic pieces


def _value_at(term: Any, t: float) -> float:
    """The raw input whose transformed value is ``t`` (inverting log and elapsed years)."""
    if term.log_offset is not None:
        t = math.exp(t) - term.log_offset
    if term.reference is not None:
        t = 2010 - t  # years before a sale in 2010
    return t


def test_houses_at_below_between_and_beyond_the_knots_are_priced_as_the_pipeline_does(
    test_data: pd.DataFrame,
) -> None:
    """Each spline's pieces meet at the knots, and it goes on straight beyond
    the outer ones: houses placed at every knot, between knots and far out
    on either side get the pipeline's price, and the same bits alone as in a
    batch."""
    base = test_data.head(1).to_dict(orient="records")[0]
    base["YrSold"] = 2010
    houses = []
    for term in _spline_terms():
        knots = term.spline.knots
        spots = [*knots, *((a + b) / 2 for a, b in itertools.pairwise(knots))]
        spots += [knots[0] - 0.5 * (knots[-1] - knots[0]), 2 * knots[-1] - knots[0]]
        low, high = CONFIG.numerical_ranges[term.variable]
        for t in spots:
            value = min(max(_value_at(term, t), low), high)
            if term.variable in CONFIG.integer_vars:
                value = round(value)
            houses.append({**base, RAW_NAMES.get(term.variable, term.variable): value})
    assert len(houses) > 200
    _assert_same_results(houses)
    _assert_same_results(pd.DataFrame(houses))
    # one at a time (scored row by row in Python floats): the batch's bits
    batch = make_prediction(input_data=houses)["predictions"]
    alone = [make_prediction(input_data=house)["predictions"][0] for house in houses]
    assert alone == batch


def test_the_tables_round_trip_through_json_and_refuse_a_broken_spline() -> None:
    tables = load_model().tables
    data = tables.to_dict()
    assert ModelTables.from_dict(data) == tables
    curved = next(i for i, term in enumerate(data["numeric"]) if term["spline"])
    for broken in (
        {"knots": [3.0, 2.0, 1.0]},  # not increasing
        {"coefficients": [[0.0, 1.0]]},  # one piece for several intervals
        {"below": [1.0]},  # a line without its slope
        {"above": [1.0, float("nan")]},  # not a number
    ):
        tampered = {**data, "numeric": list(data["numeric"])}
        tampered["numeric"][curved] = {
            **data["numeric"][curved],
            "spline": {**data["numeric"][curved]["spline"], **broken},
        }
        with pytest.raises(TablesFormatError, match="malformed"):
            ModelTables.from_dict(tampered)
    with pytest.raises(TablesFormatError, match="format 1"):
        ModelTables.from_dict({**data, "format": 1})


def test_splines_made_before_a_later_transform_cannot_be_compiled(config: Config) -> None:
    fitted = load_model(engine="pipeline").estimator
    steps = fitted.regressor_.steps
    names = [name for name, _ in steps]
    splines, log = names.index("splines"), names.index("log")
    reordered = list(steps)
    reordered.insert(log, reordered.pop(splines))  # splines of the raw areas, then the log
    fitted.regressor_.steps = reordered
    try:
        with pytest.raises(CompileError, match="splines must come after every transform"):
            compile_tables(fitted, config.model)
    finally:
        fitted.regressor_.steps = steps


def test_a_missing_indicator_of_an_unknown_column_names_both_kinds_it_accepts() -> None:
    """A rule that accepts a number or a label (the missing-value flags) says
    so when the column is neither: the union of kinds is named in full."""
    from feature_engine.imputation import AddMissingIndicator

    from regression_model.training.compile_rules import RULES, CompileState

    step = AddMissingIndicator(variables=["LotFrontage"])
    step.variables_ = ["LotFrontage"]
    with pytest.raises(
        CompileError, match="column 'LotFrontage' is absent, expected number or label"
    ):
        RULES[AddMissingIndicator](step, "flags", CompileState(columns={}))
