"""Production corroborates research.

``research/train_research.py`` is written the way a data scientist writes a
notebook, without importing this package or reading its config. Run on the
bundled data, it must price every house in train.csv and test.csv as
``make_prediction`` does with the trained artifact, to a relative 1e-9. (Both
fit the same Lasso bit for bit; research predicts with BLAS's ``X @ coef``, the
package sums each row on its own so a house's bits never depend on its batch,
which leaves differences of about 2e-15.)

The artifact is expected to exist (``regression-model train`` runs first in
tox); if it does not, this test fails with ``ArtifactNotFoundError``, whose
message says how to train it.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regression_model import ENGINES, Engine, load_model, make_prediction
from regression_model.config.core import get_config
from regression_model.data import dataset_path

pytestmark = pytest.mark.training

RESEARCH_SCRIPT = Path(__file__).resolve().parents[1] / "research" / "train_research.py"
RELATIVE_TOLERANCE = 1e-9


def read_research_prices(path: Path) -> tuple[list[int], np.ndarray]:
    """Ids and prices, parsed with ``float`` so every digit written is kept."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    ids = [int(row["Id"]) for row in rows]
    return ids, np.array([float(row["SalePrice"]) for row in rows], dtype="float64")


@pytest.fixture(scope="module")
def research_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    app = get_config().app
    out = tmp_path_factory.mktemp("research")
    completed = subprocess.run(
        [
            sys.executable,
            str(RESEARCH_SCRIPT),
            "--train",
            str(dataset_path(app.training_data_file)),
            "--test",
            str(dataset_path(app.test_data_file)),
            "--output-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, (
        f"research script failed ({completed.returncode}):\n{completed.stderr}"
    )
    return out


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("which", ["train", "test"])
def test_package_predicts_what_research_predicts(
    research_dir: Path, which: str, engine: Engine
) -> None:
    # Load first: a missing or unusable artifact fails here, with its own
    # actionable message, before any comparison.
    load_model()
    config = get_config()
    file_name = config.app.training_data_file if which == "train" else config.app.test_data_file
    data = pd.read_csv(dataset_path(file_name))
    features = data.drop(columns=[config.model.target], errors="ignore")

    ids, expected = read_research_prices(research_dir / f"predictions_{which}.csv")
    assert ids == data[config.model.id_column].tolist(), "research rows are not the file's rows"

    result = make_prediction(input_data=features, engine=engine)
    assert result["errors"] is None, f"package refused rows: {result['errors'][:5]}"
    predictions = result["predictions"]
    assert len(predictions) == len(data)
    assert all(p is not None for p in predictions)

    actual = np.array(predictions, dtype="float64")
    relative = np.abs(actual - expected) / np.abs(expected)
    worst = int(np.argmax(relative))
    print(f"{which}: {len(actual)} houses, max relative difference {relative[worst]:.3g}")
    assert relative[worst] <= RELATIVE_TOLERANCE, (
        f"{which}.csv row {worst} (Id {ids[worst]}): package {actual[worst]!r} vs research "
        f"{expected[worst]!r}, relative difference {relative[worst]:.3g} > "
        f"{RELATIVE_TOLERANCE:g}; {int((relative > RELATIVE_TOLERANCE).sum())} row(s) differ"
    )
