from __future__ import annotations

import pandas as pd
import pytest

from regression_model.config.core import Config, get_config
from regression_model.data import load_dataset


@pytest.fixture(scope="session")
def config() -> Config:
    return get_config()


@pytest.fixture(scope="session")
def test_data(config: Config) -> pd.DataFrame:
    return load_dataset(config.app.test_data_file)


@pytest.fixture(scope="session")
def train_data(config: Config) -> pd.DataFrame:
    return load_dataset(config.app.training_data_file)
