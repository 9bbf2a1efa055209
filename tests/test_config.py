from __future__ import annotations

from pathlib import Path

import pytest

from regression_model.config.core import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_FILE,
    ConfigError,
    get_config,
    load_config,
)


def _write_variant(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_CONFIG_FILE.read_text()
    assert old in text, f"fixture text {old!r} not in config.yml"
    path = tmp_path / "config.yml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_packaged_config_loads_typed_values() -> None:
    config = load_config()
    assert config.app.pipeline_name == "regression_model"
    assert config.model.target == "SalePrice"
    assert len(config.model.features) == 79
    assert config.model.numerical_ranges["MoSold"] == (1.0, 12.0)
    assert config.model.coded_vars["MSSubClass"][:3] == [20, 30, 40]
    assert config.model.quality_mappings["Ex"] == 5
    assert config.model.alpha_grid == [0.001, 0.0015, 0.002, 0.003]
    assert config.model.spline_vars[:2] == ["LotFrontage", "LotArea"]
    assert config.model.price_bands[0] == 100_000.0
    assert len(config.sha256) == 64


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        # a missing key
        ("target: SalePrice\n", "", "target"),
        # a wrong scalar type
        ("cv_folds: 5", "cv_folds: five", "cv_folds"),
        ("trim_threshold: 4.0", "trim_threshold: tiny", "trim_threshold"),
        # an unknown key
        ("target: SalePrice\n", "target: SalePrice\nlearning_rate: 3\n", "learning_rate"),
        # a group naming a variable that does not exist
        (
            "  - ExterQual\n  - ExterCond\n  - BsmtQual",
            "  - ExterQuality\n  - ExterCond\n  - BsmtQual",
            "quality_vars",
        ),
        ("temporal_vars:\n  - YearBuilt", "temporal_vars:\n  - YearBuild", "temporal_vars"),
        (
            "  - LotArea\n  - GrLivArea\n  - FirstFlrSF",
            "  - LotArea\n  - GrLivArea\n  - Neighborhood",
            "log_vars",
        ),
        # inconsistent values
        ("  MoSold: 1, 12", "  MoSold: 12, 1", "numerical_ranges"),
        ("  MoSold: 1, 12", "  MoSold: 1, 5, 12", "numerical_ranges"),
        ("  LotArea: 1, 10000000", "  LotArea: 0, 10000000", "log_vars"),
        ("cv_folds: 5", "cv_folds: 1", "cv_folds"),
        ("cv_repeats: 3", "cv_repeats: 0", "cv_repeats"),
        ("tuning_folds: 5", "tuning_folds: 1", "tuning_folds"),
        ("alpha_grid: 0.001,", "alpha_grid: -0.001,", "alpha_grid"),
        ("alpha_grid: 0.001, 0.0015,", "alpha_grid: 0.001, 0.001,", "alpha_grid"),
        ("trim_threshold: 4.0", "trim_threshold: 0", "trim_threshold"),
        ("price_bands: 100000, 150000", "price_bands: 150000, 100000", "price_bands"),
        (
            "min_improvement_over_baselines: 0.25",
            "min_improvement_over_baselines: 1.5",
            "min_improvement_over_baselines",
        ),
        ("spline_knots: 5", "spline_knots: 1", "spline_knots"),
        ("spline_vars:\n  - LotFrontage", "spline_vars:\n  - Neighborhood", "spline_vars"),
        ("slice_vars:\n  - Neighborhood", "slice_vars:\n  - GrLivArea", "slice_vars"),
        ("slice_decade_var: YearBuilt", "slice_decade_var: Neighborhood", "slice_decade_var"),
        ("baseline_group_var: Neighborhood", "baseline_group_var: LotArea", "baseline_group_var"),
        ("  Missing: 0\n", "", "quality_mappings"),
        # NaN or an infinity, which strictyaml reads as floats
        ("  GrLivArea: 1, 100000", "  GrLivArea: nan, 100000", "numerical_ranges.GrLivArea"),
        ("  GrLivArea: 1, 100000", "  GrLivArea: 1, inf", "numerical_ranges.GrLivArea"),
        ("trim_threshold: 4.0", "trim_threshold: nan", "trim_threshold"),
        ("max_label_length: 40", "max_label_length: 0", "max_label_length: must be at least 1"),
        ("max_label_length: 40", "max_label_length: -1", "max_label_length: must be at least 1"),
        # the id column or the target as an alias, or as an input variable
        ("  ThreeSsnPortch: ThreeSsnPorch", "  Id: LotArea", "input_aliases: ['Id']"),
        ("  ThreeSsnPortch: ThreeSsnPorch", "  SalePrice: LotArea", "input_aliases"),
        ("id_column: Id", "id_column: GrLivArea", "id_column: 'GrLivArea' is an input variable"),
        ("target: SalePrice", "target: GrLivArea", "target: 'GrLivArea' is an input variable"),
        ("target: SalePrice", "target: Id", "id_column and target"),
        (
            "  - MoSold\n  - YrSold\n\ncategorical_vars:",
            "  - MoSold\n\ncategorical_vars:",
            "YrSold",
        ),
    ],
)
def test_broken_config_fails_at_load_naming_the_key(
    tmp_path: Path, old: str, new: str, named: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(_write_variant(tmp_path, old, new))
    assert named in str(excinfo.value)


def test_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_bytes(
        DEFAULT_CONFIG_FILE.read_bytes().replace(b"target: SalePrice", b"target: \x80")
    )
    with pytest.raises(ConfigError, match=r"is not UTF-8 text.*byte 0x80"):
        load_config(path)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yml")


def test_alternative_config_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write_variant(tmp_path, "trim_threshold: 4.0", "trim_threshold: 5.0")
    monkeypatch.setenv(CONFIG_ENV_VAR, str(path))
    assert get_config().model.trim_threshold == 5.0
    assert get_config().source == path.resolve()
    monkeypatch.delenv(CONFIG_ENV_VAR)
    assert get_config().model.trim_threshold == 4.0
