"""Property tests: whatever JSON-like values a client sends, every row ends up
with a price or with errors naming a field — never an exception, never lost."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regression_model.config.core import get_config
from regression_model.data import load_dataset
from regression_model.predict import make_prediction
from regression_model.scoring.column_validation import validate_columns
from regression_model.scoring.rules import Problem
from regression_model.scoring.schema import schema_for
from regression_model.scoring.validation import frame_rows, validate_rows
from regression_model.scoring.validation_result import WHOLE_ROW

CONFIG = get_config().model
RAW_NAMES = {safe: raw for raw, safe in CONFIG.variables_to_rename.items()}
FIELDS = [RAW_NAMES.get(name, name) for name in CONFIG.features]
#: Every name a field may be sent by (rows may name a field twice).
NAMES = [name for rule in schema_for(CONFIG).rules for name in rule.sources]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=60),
    st.sampled_from(["Ex", "Gd", "TA", "NA", "", "60", "CollgCr"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)
rows = st.dictionaries(
    st.one_of(st.sampled_from([*NAMES, CONFIG.id_column]), st.text(max_size=10)),
    json_values,
    max_size=12,
)


@pytest.fixture(scope="module")
def real_house() -> dict[str, Any]:
    house = load_dataset("test.csv").iloc[3].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in house.items()}


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(rows, max_size=6), overrides=rows)
def test_any_rows_get_a_price_or_named_errors(
    real_house: dict[str, Any], batch: list[dict[str, Any]], overrides: dict[str, Any]
) -> None:
    inputs = [*batch, {**real_house, **overrides}]
    result = make_prediction(input_data=inputs)
    predictions, errors = result["predictions"], result["errors"] or []
    assert len(predictions) == len(inputs)
    failed = {e["row"] for e in errors}
    for row, price in enumerate(predictions):
        if price is None:
            assert row in failed, f"row {row} has neither a price nor an error"
        else:
            assert row not in failed
            assert math.isfinite(price) and price > 0
    known = set(NAMES) | {WHOLE_ROW, CONFIG.id_column}
    for error in errors:
        assert error["field"] in known
        assert isinstance(error["message"], str) and error["message"]


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_valid_values_are_always_priced(data: st.DataObject) -> None:
    """Any combination of in-range values and known codes is priced."""
    house: dict[str, Any] = {}
    for name in CONFIG.numerical_vars:
        if data.draw(st.booleans()):
            low, high = CONFIG.numerical_ranges[name]
            if name in CONFIG.integer_vars:
                value: Any = data.draw(st.integers(int(low), int(high)))
            else:
                value = data.draw(st.floats(low, high))
            house[RAW_NAMES.get(name, name)] = value
    for name in CONFIG.quality_vars:
        house[name] = data.draw(st.sampled_from([*CONFIG.quality_codes, None]))
    house["MSSubClass"] = data.draw(st.sampled_from(CONFIG.coded_vars["MSSubClass"]))
    result = make_prediction(input_data=pd.DataFrame([house]))
    prediction = result["predictions"][0]
    if prediction is None:
        # only the extrapolation guard may refuse an in-range house
        assert result["errors"] is not None
        assert [e["field"] for e in result["errors"]] == [WHOLE_ROW]
    else:
        assert result["errors"] is None
        assert math.isfinite(prediction) and prediction > 0


@settings(max_examples=150, deadline=None)
@given(batch=st.lists(rows, min_size=1, max_size=8))
def test_row_and_column_drivers_give_the_same_verdicts(batch: list[dict[str, Any]]) -> None:
    """Small frames are checked value by value, large ones column by column:
    on the same frame both give the same errors and the same values."""
    frame = pd.DataFrame(batch)
    schema = schema_for(CONFIG)
    by_rows = validate_rows(frame_rows(frame), schema)
    by_columns = validate_columns(frame, schema)
    assert by_rows.errors == by_columns.errors
    pd.testing.assert_frame_equal(by_rows.features, by_columns.features)


@settings(max_examples=400, deadline=None)
@given(
    field=st.sampled_from(CONFIG.features),
    value=st.one_of(
        json_scalars,
        st.integers(min_value=-(10**400), max_value=10**400),
        st.sampled_from([0, -0.0, 1.5, 1e308, 2**53 + 1, "20", "Po", "Fa", "Pave", "NAmes"]),
    ),
)
def test_each_value_gets_the_verdict_of_its_rule(field: str, value: Any) -> None:
    """``validate_rows`` decides the plain cases inline (numbers in range,
    labels it has accepted before): always as the field's rule would."""
    schema = schema_for(CONFIG)
    rule = next(r for r in schema.rules if r.name == field)
    for _ in range(2):  # the second time, a label accepted once is known
        verdict = rule.check(value)
        result = validate_rows([{field: value}], schema)
        problems = [e.message for e in result.errors if e.field == field]
        if isinstance(verdict, Problem):
            assert problems == [verdict.message]
            continue
        assert problems == []
        position = schema.rules.index(rule)
        if rule.numerical:
            got = result.numbers[0, position]
            assert (math.isnan(got) and verdict is None) or got == verdict
            if verdict is not None:
                assert math.copysign(1, got) == math.copysign(1, verdict)
        else:
            labels = result.labels(position - len(schema.numerical))
            assert labels[0] == verdict
