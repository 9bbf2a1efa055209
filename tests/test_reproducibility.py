"""Same data and config give the same model, to the last bit, in any process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regression_model.config.core import ARTIFACT_DIR_ENV_VAR, Config
from regression_model.scoring.artifact import ArtifactPaths, load_pipeline
from regression_model.scoring.validation import validate_inputs

pytestmark = pytest.mark.training


def _train_in_subprocess(directory: Path, hash_seed: str) -> None:
    env = {**os.environ, ARTIFACT_DIR_ENV_VAR: str(directory), "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-m", "regression_model", "train"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_two_processes_train_bit_identical_models(
    tmp_path: Path, config: Config, test_data: pd.DataFrame, train_data: pd.DataFrame
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _train_in_subprocess(first, "1")
    _train_in_subprocess(second, "4242")

    manifests = [
        json.loads(ArtifactPaths.for_version(config, directory=d).manifest.read_text())
        for d in (first, second)
    ]
    for key in (
        "training_data",
        "config",
        "metrics",
        "evaluation",
        "baselines",
        "slices",
        "features",
    ):
        assert manifests[0][key] == manifests[1][key], key
    # joblib's pickle of the fitted pipeline, and the compiled tables, are
    # themselves byte-for-byte the same
    assert manifests[0]["artifact"]["sha256"] == manifests[1]["artifact"]["sha256"]
    assert manifests[0]["tables"]["sha256"] == manifests[1]["tables"]["sha256"]

    houses = pd.concat([test_data, train_data.drop(columns=["SalePrice"])], ignore_index=True)
    features = validate_inputs(houses, config.model).features
    assert len(features) == len(houses)
    prices = [load_pipeline(config, d)[0].predict(features) for d in (first, second)]
    assert prices[0].dtype == np.float64
    assert prices[0].tobytes() == prices[1].tobytes()
