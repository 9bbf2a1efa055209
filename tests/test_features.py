from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from feature_engine.encoding import OneHotEncoder
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from regression_model.training.features import (
    Mapper,
    SinglePassOneHotEncoder,
    TemporalVariableTransformer,
)


@pytest.fixture
def houses() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "YearBuilt": [2000.0, 1990.0, np.nan],
            "YrSold": [2008.0, 2010.0, 2006.0],
            "ExterQual": ["Gd", "TA", "Missing"],
        }
    )


def test_temporal_transformer_computes_elapsed_years_without_mutating(
    houses: pd.DataFrame,
) -> None:
    before = houses.copy()
    transformer = TemporalVariableTransformer(variables=["YearBuilt"], reference_variable="YrSold")
    result = transformer.fit(houses).transform(houses)
    pd.testing.assert_frame_equal(houses, before)
    assert result["YearBuilt"].tolist()[:2] == [8.0, 20.0]
    assert np.isnan(result["YearBuilt"].iloc[2])
    assert result["YrSold"].tolist() == [2008.0, 2010.0, 2006.0]


def test_mapper_maps_labels_without_mutating(houses: pd.DataFrame) -> None:
    before = houses.copy()
    mapper = Mapper(variables=["ExterQual"], mappings={"Missing": 0, "TA": 3, "Gd": 4})
    result = mapper.fit(houses).transform(houses)
    pd.testing.assert_frame_equal(houses, before)
    assert result["ExterQual"].tolist() == [4.0, 3.0, 0.0]


def test_mapper_refuses_labels_without_mapping(houses: pd.DataFrame) -> None:
    mapper = Mapper(variables=["ExterQual"], mappings={"Missing": 0, "TA": 3})
    with pytest.raises(ValueError, match="ExterQual: labels without a mapping: \\['Gd'\\]"):
        mapper.fit(houses)


@pytest.mark.parametrize(
    "transformer",
    [
        TemporalVariableTransformer(variables=["YearBuilt"], reference_variable="YrSold"),
        Mapper(variables=["ExterQual"], mappings={"Missing": 0, "TA": 3, "Gd": 4}),
    ],
)
def test_transformers_follow_the_estimator_contract(
    transformer: object, houses: pd.DataFrame
) -> None:
    params = transformer.get_params()  # type: ignore[attr-defined]
    cloned = clone(transformer)
    assert cloned.get_params() == params
    with pytest.raises(NotFittedError):
        cloned.transform(houses)
    cloned.fit(houses)
    assert cloned.n_features_in_ == 3
    assert not hasattr(transformer, "n_features_in_")


def test_transformers_name_missing_columns(houses: pd.DataFrame) -> None:
    transformer = TemporalVariableTransformer(
        variables=["GarageYrBlt"], reference_variable="YrSold"
    )
    with pytest.raises(ValueError, match="GarageYrBlt"):
        transformer.fit(houses)


def test_single_pass_one_hot_encoder_equals_feature_engine() -> None:
    train = pd.DataFrame(
        {"Street": ["Pave", "Grvl", "Pave"], "Alley": ["a", "b", "c"], "n": [1, 2, 3]}
    )
    new = pd.DataFrame({"Street": ["Grvl", "Atlantis"], "Alley": ["c", "a"], "n": [4, 5]})
    ours = SinglePassOneHotEncoder(variables=["Street", "Alley"]).fit(train)
    reference = OneHotEncoder(variables=["Street", "Alley"]).fit(train)
    before = new.copy()
    pd.testing.assert_frame_equal(ours.transform(new), reference.transform(new))
    pd.testing.assert_frame_equal(new, before)
    assert ours.transform(new)["Street_Grvl"].tolist() == [1, 0]  # unseen label: all zeros
    with pytest.raises(ValueError, match="NaN"):
        ours.transform(new.assign(Street=[None, "Pave"]))
