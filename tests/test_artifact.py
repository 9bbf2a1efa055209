from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import pytest

from regression_model import __version__
from regression_model.config.core import ARTIFACT_DIR_ENV_VAR, Config, load_config
from regression_model.scoring.artifact import (
    ArtifactCompatibilityError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactPaths,
    LibraryVersionWarning,
    load_pipeline,
    load_tables,
    seal_manifest,
    verify_artifact,
)
from regression_model.training.train import ModelQualityError, run_training


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory: pytest.TempPathFactory, config: Config) -> Path:
    directory = tmp_path_factory.mktemp("artifact")
    run_training(config, artifact_dir=directory)
    return directory


@pytest.fixture
def artifact(trained_dir: Path, tmp_path: Path, config: Config) -> ArtifactPaths:
    """A private copy of a freshly trained artifact, free to tamper with."""
    for path in trained_dir.iterdir():
        shutil.copy(path, tmp_path / path.name)
    return ArtifactPaths.for_version(config, directory=tmp_path)


def test_manifest_records_hashes_versions_metrics_and_profile(
    artifact: ArtifactPaths, config: Config
) -> None:
    manifest = json.loads(artifact.manifest.read_text())
    assert artifact.pickle.name == f"regression_model_v{__version__}.pkl"
    assert manifest["version"] == __version__
    assert len(manifest["artifact"]["sha256"]) == 64
    assert manifest["config"]["sha256"] == config.sha256
    assert len(manifest["training_data"]["sha256"]) == 64
    assert (
        manifest["training_data"]["rows_used"] + manifest["training_data"]["rows_excluded"] == 1460
    )
    libraries = manifest["environment"]["libraries"]
    assert {"scikit-learn", "feature-engine", "pandas", "numpy"} <= set(libraries)
    assert manifest["environment"]["python"].count(".") == 2
    assert {"rmse", "rmsle", "mae", "r2"} <= set(manifest["metrics"]["training"])
    cv = manifest["metrics"]["cross_validation"]
    assert (cv["folds"], cv["repeats"]) == (5, 3)
    assert 0 < cv["rmsle_mean"] <= config.model.max_cv_rmsle
    assert 0 < cv["rmsle_repeat_std"] < cv["rmsle_std"]
    evaluation = manifest["evaluation"]
    assert len(evaluation["rmsle_per_repeat"]) == 3
    assert sum(evaluation["alphas_chosen"].values()) == 15
    assert evaluation["alpha"] in config.model.alpha_grid
    assert 0 < len(evaluation["trimmed"]["ids"]) < 50
    baselines = manifest["baselines"]
    assert set(baselines["models"]) == {"neighbourhood_median", "small_linear"}
    assert baselines["passed"] and baselines["improvement_over_best"] >= 0.25
    best = baselines["models"][baselines["best"]]["rmsle_mean"]
    assert cv["rmsle_mean"] < best == min(b["rmsle_mean"] for b in baselines["models"].values())
    slices = manifest["slices"]
    assert set(slices["by"]) == {
        "Neighborhood", "BldgType", "SaleCondition", "decade built", "price band"
    }  # fmt: skip
    for rows in slices["by"].values():
        assert sum(row["houses"] for row in rows) == manifest["training_data"]["rows_used"]
    worst = slices["worst"]
    assert worst["houses"] >= slices["min_houses"] and worst["rmsle"] <= slices["max_rmsle"]
    assert worst["rmsle"] == max(
        row["rmsle"]
        for rows in slices["by"].values()
        for row in rows
        if row["houses"] >= slices["min_houses"]
    )
    profile = {f["name"]: f for f in manifest["features"]}
    assert list(profile) == config.model.features
    assert profile["GrLivArea"]["type"] == "numerical"
    assert profile["GrLivArea"]["max"] <= 4500
    assert profile["LotFrontage"]["missing_share"] > 0.1
    assert profile["ExterQual"]["type"] == "categorical"
    assert set(profile["ExterQual"]["categories"]) == {"Ex", "Gd", "TA", "Fa"}


def test_verified_artifact_loads_and_predicts(artifact: ArtifactPaths, config: Config) -> None:
    estimator, manifest = load_pipeline(config, artifact.pickle.parent)
    assert manifest["version"] == __version__
    assert hasattr(estimator, "predict")
    tables, manifest = load_tables(config, artifact.tables.parent)
    assert tables.version == __version__
    assert manifest["tables"]["file"] == f"regression_model_v{__version__}.tables.json"
    assert manifest["tables"]["sha256"] == hashlib.sha256(artifact.tables.read_bytes()).hexdigest()
    assert manifest["compiled_tables_check"]["houses"] == 1458 + 1459
    assert manifest["compiled_tables_check"]["max_relative_difference"] <= 1e-9


def test_tables_load_without_the_pickle(artifact: ArtifactPaths, config: Config) -> None:
    artifact.pickle.unlink()
    tables, _ = load_tables(config, artifact.tables.parent)
    assert tables.intercept > 0
    with pytest.raises(ArtifactNotFoundError, match="regression-model train"):
        load_pipeline(config, artifact.pickle.parent)


def test_edited_table_value_is_refused(artifact: ArtifactPaths, config: Config) -> None:
    # A plausible-looking edit (one neighbourhood made dearer) changes the
    # bytes, so the sha256 in the manifest no longer matches.
    tables = json.loads(artifact.tables.read_text())
    neighbourhood = next(t for t in tables["lookup"] if t["variable"] == "Neighborhood")
    neighbourhood["table"]["NAmes"] += 0.5
    artifact.tables.write_text(json.dumps(tables, indent=1) + "\n")
    with pytest.raises(ArtifactIntegrityError, match="does not match its manifest"):
        load_tables(config, artifact.tables.parent)
    with pytest.raises(ArtifactIntegrityError, match="modified or replaced"):
        verify_artifact(artifact, config)


def test_missing_tables_say_how_to_train(artifact: ArtifactPaths, config: Config) -> None:
    artifact.tables.unlink()
    with pytest.raises(ArtifactNotFoundError, match="regression-model train"):
        load_tables(config, artifact.tables.parent)


def test_unknown_tables_format_is_refused(artifact: ArtifactPaths, config: Config) -> None:
    manifest = json.loads(artifact.manifest.read_text())
    manifest["tables"]["format"] = 99
    artifact.manifest.write_text(json.dumps(seal_manifest(manifest)))
    with pytest.raises(ArtifactCompatibilityError, match="tables format 99"):
        load_tables(config, artifact.tables.parent)


def test_malformed_tables_with_a_matching_hash_are_refused(
    artifact: ArtifactPaths, config: Config
) -> None:
    # Even re-sealed by someone who updates the manifest, tables that are not
    # the expected layout are refused with a clear error, never half-used.
    tables = json.loads(artifact.tables.read_text())
    del tables["lookup"][0]["missing"]
    artifact.tables.write_text(json.dumps(tables))
    manifest = json.loads(artifact.manifest.read_text())
    manifest["tables"]["sha256"] = hashlib.sha256(artifact.tables.read_bytes()).hexdigest()
    artifact.manifest.write_text(json.dumps(seal_manifest(manifest)))
    with pytest.raises(ArtifactIntegrityError, match="unreadable"):
        load_tables(config, artifact.tables.parent)


def test_tampered_pickle_is_refused_before_unpickling(
    artifact: ArtifactPaths, config: Config, tmp_path: Path
) -> None:
    # A pickle that would run code on load: it must never be unpickled.
    marker = tmp_path / "pwned"
    joblib.dump(_Exploit(str(marker)), artifact.pickle)
    with pytest.raises(ArtifactIntegrityError, match="does not match its manifest"):
        load_pipeline(config, artifact.pickle.parent)
    assert not marker.exists()


def test_flipped_byte_is_refused(artifact: ArtifactPaths, config: Config) -> None:
    data = bytearray(artifact.pickle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.pickle.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="modified or replaced"):
        verify_artifact(artifact, config)


def test_tampered_manifest_hash_is_refused(artifact: ArtifactPaths, config: Config) -> None:
    manifest = json.loads(artifact.manifest.read_text())
    manifest["artifact"]["sha256"] = "0" * 64
    artifact.manifest.write_text(json.dumps(seal_manifest(manifest)))
    with pytest.raises(ArtifactIntegrityError):
        verify_artifact(artifact, config)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"version": "0.1.0"}'])
def test_broken_manifest_is_refused(artifact: ArtifactPaths, config: Config, content: str) -> None:
    artifact.manifest.write_text(content)
    with pytest.raises(ArtifactIntegrityError, match="train it with"):
        verify_artifact(artifact, config)


def test_library_version_mismatch_is_refused(artifact: ArtifactPaths, config: Config) -> None:
    manifest = json.loads(artifact.manifest.read_text())
    manifest["environment"]["libraries"]["scikit-learn"] = "0.24.2"
    artifact.manifest.write_text(json.dumps(seal_manifest(manifest)))
    with pytest.raises(
        ArtifactCompatibilityError, match=r"scikit-learn 0\.24\.2.*install scikit-learn==0\.24\.2"
    ):
        verify_artifact(artifact, config)


def test_patch_level_library_difference_is_accepted(
    artifact: ArtifactPaths, config: Config
) -> None:
    manifest = json.loads(artifact.manifest.read_text())
    major, minor, *_ = manifest["environment"]["libraries"]["feature-engine"].split(".")
    manifest["environment"]["libraries"]["feature-engine"] = f"{major}.{minor}.999"
    artifact.manifest.write_text(json.dumps(seal_manifest(manifest)))
    assert verify_artifact(artifact, config)["version"] == __version__


def _resealed(artifact: ArtifactPaths, edit_manifest: Any = None, edit_tables: Any = None) -> None:
    """Edit the manifest or the tables and record the result as a trainer
    would (the tables' sha256, the seal): only the checks after the seal see it."""
    manifest = json.loads(artifact.manifest.read_text())
    if edit_tables is not None:
        tables = json.loads(artifact.tables.read_text())
        edit_tables(tables)
        artifact.tables.write_text(json.dumps(tables))
        manifest["tables"]["sha256"] = hashlib.sha256(artifact.tables.read_bytes()).hexdigest()
    if edit_manifest is not None:
        edit_manifest(manifest)
    artifact.manifest.write_text(json.dumps(seal_manifest(manifest)))


@pytest.mark.parametrize(
    ("library", "loads_tables"),
    [("numpy", False), ("pandas", True), ("joblib", True), ("feature-engine", True)],
)
def test_each_library_that_computes_the_prices_is_checked(
    artifact: ArtifactPaths, config: Config, library: str, loads_tables: bool
) -> None:
    _resealed(artifact, lambda m: m["environment"]["libraries"].update({library: "0.1.0"}))
    refused = pytest.raises(ArtifactCompatibilityError, match=rf"{library} 0\.1\.0.*==0\.1\.0")
    with refused:
        load_pipeline(config, artifact.pickle.parent)
    if loads_tables:  # the tables are scored with numpy only
        assert load_tables(config, artifact.tables.parent)[0].version == __version__
    else:  # plain data: they load, and the other numpy is told
        with pytest.warns(LibraryVersionWarning, match=r"numpy 0\.1\.0.*last bits"):
            assert load_tables(config, artifact.tables.parent)[0].version == __version__


@pytest.mark.parametrize("libraries", [["numpy", "2.4"], "numpy 2.4", None])
def test_libraries_that_are_not_a_mapping_are_refused(
    artifact: ArtifactPaths, config: Config, libraries: object
) -> None:
    _resealed(artifact, lambda m: m["environment"].update({"libraries": libraries}))
    for load in (load_tables, load_pipeline):
        with pytest.raises(
            ArtifactIntegrityError, match=r"environment\.libraries is not a mapping"
        ):
            load(config, artifact.tables.parent)


@pytest.mark.parametrize("file", ["tables", "pickle"])
def test_a_model_file_that_is_a_directory_is_refused(
    artifact: ArtifactPaths, config: Config, file: str
) -> None:
    path = artifact.tables if file == "tables" else artifact.pickle
    path.unlink()
    path.mkdir()
    load = load_tables if file == "tables" else load_pipeline
    with pytest.raises(ArtifactIntegrityError, match="is unreadable"):
        load(config, artifact.tables.parent)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.update({"intervals": None}), "has no price ranges"),
        (lambda t: t["numeric"].__setitem__(0, [1, 2]), "unreadable.*malformed model tables"),
    ],
)
def test_resealed_tables_without_ranges_or_with_a_malformed_term_are_refused(
    artifact: ArtifactPaths, config: Config, edit: Any, message: str
) -> None:
    _resealed(artifact, edit_tables=edit)
    with pytest.raises(ArtifactIntegrityError, match=message):
        load_tables(config, artifact.tables.parent)  # both engines read the ranges from them
    with pytest.raises(ArtifactIntegrityError, match=message):
        verify_artifact(artifact, config)


def test_a_deeply_nested_manifest_is_refused(artifact: ArtifactPaths, config: Config) -> None:
    artifact.manifest.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ArtifactIntegrityError, match="unreadable"):
        load_tables(config, artifact.tables.parent)
    nested: Any = []
    for _ in range(sys.getrecursionlimit() // 2):  # read, but too deep to hash back
        nested = [nested]
    artifact.manifest.write_text(json.dumps({"nested": nested}))
    with pytest.raises(ArtifactIntegrityError):
        load_tables(config, artifact.tables.parent)


def test_edited_manifest_is_refused(artifact: ArtifactPaths, config: Config) -> None:
    manifest = json.loads(artifact.manifest.read_text())
    manifest["metrics"]["cross_validation"]["rmsle_mean"] = 0.01
    artifact.manifest.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match="edited after training"):
        verify_artifact(artifact, config)


def test_other_config_is_refused(artifact: ArtifactPaths, tmp_path: Path) -> None:
    variant = tmp_path / "other.yml"
    text = load_config().source.read_text()
    variant.write_text(text.replace("trim_threshold: 4.0", "trim_threshold: 5.0"))
    with pytest.raises(ArtifactCompatibilityError, match="different config"):
        verify_artifact(artifact, load_config(variant))


def test_missing_artifact_says_how_to_train(tmp_path: Path, config: Config) -> None:
    with pytest.raises(ArtifactNotFoundError, match="regression-model train"):
        load_pipeline(config, tmp_path)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("max_cv_rmsle: 0.115", "max_cv_rmsle: 0.01", "above max_cv_rmsle=0.01"),
        (
            "min_improvement_over_baselines: 0.25",
            "min_improvement_over_baselines: 0.9",
            r"below the best baseline's \(small_linear",
        ),
        ("max_slice_rmsle: 0.25", "max_slice_rmsle: 0.05", "above max_slice_rmsle=0.05"),
    ],
)
def test_each_quality_gate_fails_training_without_writing(
    tmp_path: Path, old: str, new: str, reason: str
) -> None:
    strict = tmp_path / "strict.yml"
    text = load_config().source.read_text()
    assert old in text
    strict.write_text(text.replace(old, new))
    with pytest.raises(ModelQualityError, match=reason) as failure:
        run_training(load_config(strict), artifact_dir=tmp_path / "out")
    assert "no artifact was written" in str(failure.value)
    assert not (tmp_path / "out").exists()


def test_other_versions_artifacts_are_kept(
    trained_dir: Path, tmp_path: Path, config: Config
) -> None:
    old = tmp_path / "regression_model_v0.0.1.pkl"
    old.write_bytes(b"an older release")
    run_training(config, artifact_dir=tmp_path)
    assert old.read_bytes() == b"an older release"
    assert ArtifactPaths.for_version(config, directory=tmp_path).pickle.exists()


def test_importing_the_package_loads_no_model(tmp_path: Path) -> None:
    # With no artifact anywhere, importing every module must still work.
    code = (
        "import regression_model.scoring.model, regression_model.training.pipeline, "
        "regression_model.training.train, regression_model.cli; "
        "import regression_model.scoring.model as p; assert not p._loaded; print('ok')"
    )
    env = {ARTIFACT_DIR_ENV_VAR: str(tmp_path), "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (Path(self.path), "unpickled!"))  # type: ignore[return-value]
