"""The differential check bites: a model trained with another hyperparameter fails it.

Trains in-process, into a temporary artifact directory, from a copy of the
active config whose candidate Lasso penalties (``alpha_grid``) are doubled,
then runs the same comparison
as the differential test and expects it to flag the change with a report that
names the houses that moved most. The shipped artifact is not touched.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from regression_model.config.core import (
    ARTIFACT_DIR_ENV_VAR,
    CONFIG_ENV_VAR,
    Config,
    load_config,
)
from regression_model.training.train import run_training

from .compare import compare_predictions, current_predictions, load_tolerances, read_predictions

pytestmark = pytest.mark.training


def _config_with_alphas(config: Config, factor: float, folder: Path) -> Path:
    grid = ", ".join(repr(alpha * factor) for alpha in config.model.alpha_grid)
    text, replaced = re.subn(
        r"^alpha_grid: .*$", f"alpha_grid: {grid}", config.source.read_text(), flags=re.MULTILINE
    )
    assert replaced == 1, f"no single `alpha_grid:` line in {config.source}"
    path = folder / "config.yml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_a_model_trained_with_other_alphas_is_flagged(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    perturbed = _config_with_alphas(config, 2, tmp_path)
    artifact_dir = tmp_path / "trained_models"
    run_training(load_config(perturbed), artifact_dir=artifact_dir)
    monkeypatch.setenv(CONFIG_ENV_VAR, str(perturbed))
    monkeypatch.setenv(ARTIFACT_DIR_ENV_VAR, str(artifact_dir))

    tolerances = load_tolerances()
    report = compare_predictions(read_predictions(), current_predictions(), tolerances)
    text = report.format()
    print(text)

    assert not report.passed
    assert len(report.moved) > 0
    assert report.n_compared == len(read_predictions())
    most_moved = report.changes.head(tolerances.report_top)
    assert most_moved["relative_change"].abs().iloc[0] > tolerances.per_house_relative_change
    assert "FAILED" in text and "houses that moved most" in text
    for house in most_moved["Id"]:
        assert re.search(rf"^\s+{house} ", text, flags=re.MULTILINE), f"house {house} not named"
    assert "tox -e capture_predictions" in text


def test_the_perturbed_config_differs_only_in_alphas(config: Config, tmp_path: Path) -> None:
    perturbed = load_config(_config_with_alphas(config, 2, tmp_path))
    original, changed = config.model.model_dump(), perturbed.model.model_dump()
    assert {k for k in original if original[k] != changed[k]} == {"alpha_grid"}
    assert changed["alpha_grid"] == [2 * alpha for alpha in original["alpha_grid"]]
    assert perturbed.sha256 != config.sha256


def test_report_table_is_ordered_by_largest_move() -> None:
    reference = pd.DataFrame(
        {"Id": [1, 2, 3], "prediction": [100.0, 100.0, 100.0], "version": "a"}
    )
    current = reference.assign(prediction=[101.0, 90.0, 103.0], version="b")
    report = compare_predictions(reference, current, load_tolerances())
    assert report.changes["Id"].tolist() == [2, 3, 1]
