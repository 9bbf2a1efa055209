from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from regression_model import __version__
from regression_model.config.core import ARTIFACT_DIR_ENV_VAR, CONFIG_ENV_VAR, DEFAULT_CONFIG_FILE
from regression_model.data import dataset_path


def cli(
    *args: str, artifact_dir: Path | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (ARTIFACT_DIR_ENV_VAR, CONFIG_ENV_VAR)}
    if artifact_dir is not None:
        env[ARTIFACT_DIR_ENV_VAR] = str(artifact_dir)
    return subprocess.run(
        [sys.executable, "-m", "regression_model", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli-artifact")
    done = cli("train", artifact_dir=directory)
    assert done.returncode == 0, done.stderr
    assert "3 x 5-fold nested CV: RMSLE" in done.stdout
    assert "baseline small_linear: RMSLE" in done.stdout and "worst slice" in done.stdout
    return directory


def test_train_if_needed_skips_a_valid_artifact(artifact_dir: Path) -> None:
    done = cli("train", "--if-needed", artifact_dir=artifact_dir)
    assert done.returncode == 0
    assert done.stdout.startswith("up to date")


def test_train_if_needed_retrains_a_tampered_artifact(artifact_dir: Path, tmp_path: Path) -> None:
    for path in artifact_dir.iterdir():
        (tmp_path / path.name).write_bytes(
            path.read_bytes() + (b"x" if path.suffix == ".pkl" else b"")
        )
    done = cli("train", "--if-needed", artifact_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "does not match its manifest" in done.stderr
    assert "trained" in done.stdout


def test_predict_writes_id_price_and_errors(artifact_dir: Path, tmp_path: Path) -> None:
    houses = pd.read_csv(dataset_path("test.csv")).head(4)
    houses.loc[1, "GrLivArea"] = -10
    houses.loc[3, "KitchenQual"] = "Luxurious"
    source, output = tmp_path / "houses.csv", tmp_path / "prices.csv"
    houses.to_csv(source, index=False)
    done = cli(
        "predict", "--input", str(source), "--output", str(output), artifact_dir=artifact_dir
    )
    assert done.returncode == 3, done.stderr  # some rows were rejected
    assert "priced 2 of 4 rows" in done.stderr
    prices = pd.read_csv(output, keep_default_na=False)
    ranges = ["SalePrice_low_80", "SalePrice_high_80", "SalePrice_low_90", "SalePrice_high_90"]
    assert list(prices.columns) == ["Id", "SalePrice", *ranges, "errors"]
    assert prices["Id"].tolist() == houses["Id"].tolist()
    assert (
        prices.loc[1, "errors"] == "GrLivArea: -10 is out of range: must be between 1 and 100000"
    )
    assert prices.loc[3, "errors"].startswith("KitchenQual: unknown code 'Luxurious'")
    assert prices.loc[1, "SalePrice"] == "" and float(prices.loc[0, "SalePrice"]) > 0
    assert prices.loc[1, ranges].eq("").all()  # not priced: no range either
    low, price, high = (float(prices.loc[0, n]) for n in (ranges[0], "SalePrice", ranges[1]))
    assert low < price < high


def test_predict_all_of_test_csv(artifact_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "prices.csv"
    done = cli(
        "predict",
        "--input",
        str(dataset_path("test.csv")),
        "--output",
        str(output),
        artifact_dir=artifact_dir,
    )
    assert done.returncode == 0, done.stderr
    prices = pd.read_csv(output)
    assert len(prices) == 1459 and prices["SalePrice"].gt(0).all()


def test_info_prints_version_hashes_and_metrics(artifact_dir: Path) -> None:
    done = cli("info", artifact_dir=artifact_dir)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["version"] == __version__
    assert info["artifact"]["usable"] is True and len(info["artifact"]["sha256"]) == 64
    assert info["metrics"]["cross_validation"]["rmsle_mean"] < 0.115


def test_missing_artifact_is_an_actionable_error(tmp_path: Path) -> None:
    source = tmp_path / "one.csv"
    pd.read_csv(dataset_path("test.csv")).head(1).to_csv(source, index=False)
    done = cli("predict", "--input", str(source), artifact_dir=tmp_path)
    assert done.returncode == 2
    assert "no trained model" in done.stderr and "regression-model train" in done.stderr
    assert "Traceback" not in done.stderr


def test_alternative_config_and_quality_gate(tmp_path: Path) -> None:
    strict = tmp_path / "strict.yml"
    strict.write_text(
        DEFAULT_CONFIG_FILE.read_text().replace("max_cv_rmsle: 0.115", "max_cv_rmsle: 0.05")
    )
    done = cli("--config", str(strict), "train", artifact_dir=tmp_path / "out")
    assert done.returncode == 1
    assert "above max_cv_rmsle=0.05" in done.stderr and "no artifact was written" in done.stderr
    assert not (tmp_path / "out").exists()


def test_broken_config_names_the_key(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(DEFAULT_CONFIG_FILE.read_text().replace("cv_folds: 5", "cv_folds: many"))
    done = cli("--config", str(broken), "info")
    assert done.returncode == 2
    assert "cv_folds" in done.stderr and "Traceback" not in done.stderr


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "regression-model"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert done.stdout.strip() == __version__
