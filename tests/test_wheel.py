"""Build the wheel, install it in a fresh venv outside the source tree, predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from regression_model import __version__
from regression_model.config.core import PACKAGE_ROOT

REPO_ROOT = PACKAGE_ROOT.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not any((PACKAGE_ROOT / "trained_models").glob(f"*_v{__version__}.pkl")):
        pytest.fail("no trained artifact in the source tree: run `regression-model train` first")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (built,) = out.glob("*.whl")
    return built


@pytest.mark.slow
def test_wheel_contains_data_config_and_verified_artifact(wheel: Path) -> None:
    assert wheel.name.startswith(f"ames_regression_model-{__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for required in (
            "regression_model/VERSION",
            "regression_model/config.yml",
            "regression_model/datasets/train.csv",
            "regression_model/datasets/test.csv",
            f"regression_model/trained_models/regression_model_v{__version__}.pkl",
            f"regression_model/trained_models/regression_model_v{__version__}.json",
            f"regression_model/trained_models/regression_model_v{__version__}.tables.json",
            # the prediction log's migrations (Alembic reads them from the package)
            "regression_model/monitoring/migrations/env.py",
            "regression_model/monitoring/migrations/script.py.mako",
            "regression_model/monitoring/migrations/versions/0001_prediction_log.py",
            "regression_model/monitoring/migrations/versions/0002_ignored_fields.py",
            "regression_model/monitoring/migrations/versions/0003_price_ranges.py",
            "regression_model/monitoring/migrations/versions/0004_outcomes_and_shadow_prices.py",
            # the report's page template (read with importlib.resources)
            "regression_model/templates/report.html",
        ):
            assert required in names, required
        manifest = json.loads(
            archive.read(f"regression_model/trained_models/regression_model_v{__version__}.json")
        )
        assert manifest["version"] == __version__
        assert not any(n.startswith(("tests/", "research/", "api/")) for n in names)


@pytest.mark.slow
def test_wheel_installs_and_predicts_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    constraints = REPO_ROOT / "constraints.txt"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-c", str(constraints), str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    script = (
        "import json, regression_model\n"
        "from regression_model import make_prediction\n"
        "from regression_model.data import load_dataset\n"
        "houses = load_dataset('test.csv')\n"
        "result = make_prediction(input_data=houses)\n"
        "priced = sum(p is not None for p in result['predictions'])\n"
        "print(json.dumps({'file': regression_model.__file__, 'version': result['version'],\n"
        "  'priced': priced, 'errors': result['errors']}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGRESSION_MODEL_")}
    run = subprocess.run(
        [str(python), "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert report["file"].startswith(str(env_dir))
    assert report == {**report, "version": __version__, "priced": 1459, "errors": None}
    info = subprocess.run(
        [str(env_dir / "bin" / "regression-model"), "info"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert info.returncode == 0, info.stdout + info.stderr
    # A plain install prices with the compiled tables and has no training
    # libraries: the pickle is reported unusable until the [train] extra is added.
    details = json.loads(info.stdout)
    assert details["tables"]["usable"] is True
    assert details["artifact"]["usable"] is False
    assert "ames-regression-model[train]" in details["artifact"]["reason"]
    missing = subprocess.run(
        [str(python), "-c", "import sklearn"], capture_output=True, text=True, cwd=tmp_path
    )
    assert missing.returncode != 0
    # Files are read and written with pyarrow, an extra: the command says how to add it.
    houses = Path(report["file"]).parent / "datasets" / "test.csv"
    predict = subprocess.run(
        [str(env_dir / "bin" / "regression-model"), "predict", "--input", str(houses)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert predict.returncode == 2, predict.stderr
    assert "pip install 'ames-regression-model[arrow]'" in predict.stderr
