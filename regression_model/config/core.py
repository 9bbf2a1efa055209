"""Load ``config.yml``: strictyaml schema first (``config/yaml_schema.py``),
then typed pydantic objects.

strictyaml rejects missing keys, unknown keys and wrong scalar types with the
line and key that caused it; pydantic then checks the relations between
fields (every group names known variables, ranges are ordered, ...).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from strictyaml import YAMLError, load

from regression_model.config.yaml_schema import SCHEMA

# This file is regression_model/config/core.py (no import of the package: no cycle).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PACKAGE_ROOT / "config.yml"
DATASET_DIR = PACKAGE_ROOT / "datasets"
DEFAULT_TRAINED_MODEL_DIR = PACKAGE_ROOT / "trained_models"

#: Environment variable naming an alternative config file.
CONFIG_ENV_VAR = "REGRESSION_MODEL_CONFIG"
#: Environment variable naming an alternative directory for trained artifacts.
ARTIFACT_DIR_ENV_VAR = "REGRESSION_MODEL_ARTIFACT_DIR"


class ConfigError(ValueError):
    """The config file is missing, unreadable or inconsistent."""


#: Every section: frozen, no unknown key, and no NaN or infinity in a float
#: (strictyaml reads "nan" and "inf" as floats; a range, a threshold or a
#: penalty that is not finite is a mistake).
_STRICT = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class AppConfig(BaseModel):
    """Names and files: what the package is and where its data lives."""

    model_config = _STRICT

    package_name: str
    pipeline_name: str
    training_data_file: str
    test_data_file: str
    #: sold houses added to the training data (regression_model.training.market)
    market_data_files: tuple[str, ...] = ()


class IntervalConfig(BaseModel):
    """The price ranges: their coverages, the model of a house's difficulty
    that sets each one's width, and the quality gates on them."""

    model_config = _STRICT

    coverages: list[float]
    difficulty_categorical_vars: list[str]
    difficulty_numerical_vars: list[str]
    difficulty_penalty: float = Field(gt=0)
    difficulty_min_label_houses: int = Field(ge=1)
    max_coverage_gap: float = Field(gt=0, lt=1)
    max_slice_shortfall: float = Field(gt=0, lt=1)
    slice_significance: float = Field(gt=0, lt=1)

    @property
    def adaptive(self) -> bool:
        """Whether a house's width may depend on its inputs at all."""
        return bool(self.difficulty_categorical_vars or self.difficulty_numerical_vars)

    @model_validator(mode="after")
    def _check_coverages(self) -> Self:
        coverages = self.coverages
        if not coverages or coverages != sorted(set(coverages)):
            raise ValueError("intervals.coverages: must be increasing shares")
        if not all(0.5 <= c < 1 for c in coverages):
            raise ValueError("intervals.coverages: each must be in [0.5, 1)")
        return self


class ModelConfig(BaseModel):
    """Everything that shapes the features and the fitted model."""

    model_config = _STRICT

    id_column: str
    target: str
    variables_to_rename: dict[str, str]
    input_aliases: dict[str, str]
    training_exclusions: dict[str, float]
    numerical_vars: list[str]
    categorical_vars: list[str]
    categorical_vars_na_means_none: list[str]
    missing_label: str
    numerical_vars_with_na_indicator: list[str]
    temporal_vars: list[str]
    temporal_reference_var: str
    log_vars: list[str]
    log1p_vars: list[str]
    quality_vars: list[str]
    quality_mappings: dict[str, int]
    coded_vars: dict[str, list[int]]
    numerical_ranges: dict[str, tuple[float, float]]
    integer_vars: list[str]
    max_label_length: int
    rare_label_tolerance: float
    rare_label_n_categories: int
    rare_label: str
    spline_vars: list[str]
    spline_knots: int
    alpha_grid: list[float]
    trim_threshold: float
    tuning_folds: int
    max_iter: int
    random_state: int
    cv_folds: int
    cv_repeats: int
    baseline_group_var: str
    baseline_linear_vars: list[str]
    min_improvement_over_baselines: float
    slice_vars: list[str]
    slice_decade_var: str
    price_bands: list[float]
    min_slice_houses: int
    max_slice_rmsle: float
    plausible_price_range: tuple[float, float]
    max_cv_rmsle: float
    intervals: IntervalConfig

    @property
    def features(self) -> list[str]:
        """Every input variable the model uses, numerical first."""
        return [*self.numerical_vars, *self.categorical_vars]

    @property
    def price_band_labels(self) -> list[str]:
        """The labels of the price bands ``price_bands`` cut: "under $100k",
        "$100k-$150k", ..., "$300k and over" (training's slices, the
        ranges' slices and realised performance all label houses so)."""

        def dollars(value: float) -> str:
            return f"${value / 1000:,.0f}k"

        edges = self.price_bands
        inner = [f"{dollars(low)}-{dollars(high)}" for low, high in itertools.pairwise(edges)]
        return [f"under {dollars(edges[0])}", *inner, f"{dollars(edges[-1])} and over"]

    @property
    def nominal_vars(self) -> list[str]:
        """Categorical variables that are one-hot encoded (not quality scales)."""
        return [v for v in self.categorical_vars if v not in self.quality_vars]

    @property
    def categorical_vars_imputed_frequent(self) -> list[str]:
        return [v for v in self.categorical_vars if v not in self.categorical_vars_na_means_none]

    @property
    def quality_codes(self) -> list[str]:
        """Codes a client may send for a quality scale (not the missing label)."""
        return [c for c in self.quality_mappings if c != self.missing_label]

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        problems: list[str] = []
        numerical, categorical = set(self.numerical_vars), set(self.categorical_vars)
        features = numerical | categorical

        def unknown(key: str, names: object, allowed: set[str], kind: str) -> None:
            extra = sorted(set(names) - allowed)  # type: ignore[call-overload]
            if extra:
                problems.append(f"{key}: unknown {kind} variable(s) {extra}")

        if overlap := sorted(numerical & categorical):
            problems.append(f"numerical_vars and categorical_vars overlap: {overlap}")
        for key in ("numerical_vars", "categorical_vars"):
            names = getattr(self, key)
            if len(names) != len(set(names)):
                problems.append(f"{key}: a variable is listed twice")
        for key in (
            "numerical_vars_with_na_indicator",
            "temporal_vars",
            "log_vars",
            "log1p_vars",
            "integer_vars",
            "numerical_ranges",
            "spline_vars",
            "baseline_linear_vars",
        ):
            unknown(key, getattr(self, key), numerical, "numerical")
        for key in ("categorical_vars_na_means_none", "quality_vars", "coded_vars", "slice_vars"):
            unknown(key, getattr(self, key), categorical, "categorical")
        unknown("slice_decade_var", [self.slice_decade_var], numerical, "numerical")
        intervals = self.intervals
        unknown(
            "intervals.difficulty_numerical_vars",
            intervals.difficulty_numerical_vars,
            numerical,
            "numerical",
        )
        unknown(
            "intervals.difficulty_categorical_vars",
            intervals.difficulty_categorical_vars,
            categorical,
            "categorical",
        )
        unknown("baseline_group_var", [self.baseline_group_var], categorical, "categorical")
        unknown("training_exclusions", self.training_exclusions, features, "")
        unknown("variables_to_rename", self.variables_to_rename.values(), features, "")
        unknown("input_aliases", self.input_aliases.values(), features, "")
        if taken := sorted(set(self.input_aliases) & (features | set(self.variables_to_rename))):
            problems.append(f"input_aliases: already the name of a variable: {taken}")
        if self.temporal_reference_var not in numerical:
            problems.append(
                f"temporal_reference_var: unknown numerical variable "
                f"{self.temporal_reference_var!r}"
            )
        for key in ("id_column", "target"):
            if (name := getattr(self, key)) in features:
                problems.append(f"{key}: {name!r} is an input variable, it cannot be the {key}")
        if self.id_column == self.target:
            problems.append(f"id_column and target: both are {self.target!r}")
        if taken := sorted(set(self.input_aliases) & {self.id_column, self.target}):
            problems.append(f"input_aliases: {taken} is the id_column or target, not an alias")
        if self.max_label_length < 1:
            problems.append("max_label_length: must be at least 1")
        if missing := sorted(numerical - set(self.numerical_ranges)):
            problems.append(f"numerical_ranges: no range for {missing}")
        for name, (low, high) in self.numerical_ranges.items():
            if low > high:
                problems.append(f"numerical_ranges: {name} has min {low} > max {high}")
        for name in self.log_vars:
            if name in self.numerical_ranges and self.numerical_ranges[name][0] <= 0:
                problems.append(
                    f"numerical_ranges: {name} is in log_vars, so its minimum must be > 0"
                )
        if self.missing_label not in self.quality_mappings:
            problems.append(
                f"quality_mappings: no value for the missing label {self.missing_label!r}"
            )
        low, high = self.plausible_price_range
        if not 0 < low < high:
            problems.append("plausible_price_range: must be 'min, max' with 0 < min < max")
        for key in ("cv_folds", "tuning_folds", "spline_knots"):
            if getattr(self, key) < 2:
                problems.append(f"{key}: must be at least 2")
        if self.cv_repeats < 1:
            problems.append("cv_repeats: must be at least 1")
        if not self.alpha_grid or min(self.alpha_grid) <= 0:
            problems.append("alpha_grid: must list penalties > 0")
        if len(set(self.alpha_grid)) != len(self.alpha_grid):
            problems.append("alpha_grid: a penalty is listed twice")
        if self.trim_threshold <= 0:
            problems.append("trim_threshold: must be > 0")
        if (
            not self.price_bands
            or self.price_bands != sorted(set(self.price_bands))
            or (self.price_bands[0] <= 0)
        ):
            problems.append("price_bands: must be increasing prices > 0")
        if not 0 <= self.min_improvement_over_baselines < 1:
            problems.append("min_improvement_over_baselines: must be a share in [0, 1)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class DriftConfig(BaseModel):
    """When logged houses count as drifting away from the training data."""

    model_config = _STRICT

    psi: float = Field(gt=0)
    ks_statistic: float = Field(gt=0, le=1)
    ks_p_value: float = Field(gt=0, lt=1)
    unseen_share: float = Field(gt=0, le=1)
    price_shift: float = Field(gt=0)
    min_records: int = Field(ge=1)


class PerformanceConfig(BaseModel):
    """When realised errors (sale prices that came back) are judged, and how."""

    model_config = _STRICT

    min_outcomes: int = Field(ge=1)
    rmsle_margin: float = Field(ge=0)
    coverage_margin: float = Field(ge=0, lt=1)


class Config(BaseModel):
    """The whole configuration, as loaded from one YAML file."""

    model_config = ConfigDict(frozen=True)

    app: AppConfig
    model: ModelConfig
    drift: DriftConfig
    performance: PerformanceConfig
    source: Path
    sha256: str


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a config file.

    ``path`` defaults to ``$REGRESSION_MODEL_CONFIG``, then to the packaged
    ``config.yml``. Raises :class:`ConfigError` naming the offending key.
    """
    source = Path(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_FILE)
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {source}: {exc}") from exc
    try:
        data = load(raw.decode("utf-8"), SCHEMA, label=str(source)).data
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {source} is not UTF-8 text: {exc}") from exc
    except YAMLError as exc:
        raise ConfigError(f"invalid config file {source}:\n{exc}") from exc
    app_keys = set(AppConfig.model_fields)
    try:
        return Config(
            app=AppConfig(**{k: v for k, v in data.items() if k in app_keys}),
            model=ModelConfig(
                **{
                    k: v
                    for k, v in data.items()
                    if k not in app_keys and k not in ("drift", "performance")
                }
            ),
            drift=DriftConfig(**data["drift"]),
            performance=PerformanceConfig(**data["performance"]),
            source=source.resolve(),
            sha256=hashlib.sha256(raw).hexdigest(),
        )
    except ValidationError as exc:
        raise ConfigError(f"invalid config file {source}:\n{exc}") from exc


@functools.cache
def _cached_config(path: Path | None) -> Config:
    return load_config(path)


def get_config() -> Config:
    """The active config (``$REGRESSION_MODEL_CONFIG`` or the packaged file), loaded once."""
    env = os.environ.get(CONFIG_ENV_VAR)
    return _cached_config(Path(env) if env else None)


def trained_model_dir() -> Path:
    """Where artifacts are written and read (``$REGRESSION_MODEL_ARTIFACT_DIR`` overrides)."""
    return Path(os.environ.get(ARTIFACT_DIR_ENV_VAR) or DEFAULT_TRAINED_MODEL_DIR)
