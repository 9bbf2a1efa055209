"""The shape of ``config.yml`` for strictyaml: every key, its type, which are
optional. strictyaml refuses a missing or unknown key, or a value of the wrong
type, naming its line; ``config/core.py`` then checks the values' relations."""

from __future__ import annotations

from strictyaml import (
    CommaSeparated,
    EmptyList,
    Float,
    Int,
    Map,
    MapPattern,
    Optional,
    Seq,
    Str,
)

SCHEMA = Map(
    {
        "package_name": Str(),
        "pipeline_name": Str(),
        "training_data_file": Str(),
        "test_data_file": Str(),
        Optional("market_data_files"): EmptyList() | Seq(Str()),
        "id_column": Str(),
        "target": Str(),
        "variables_to_rename": MapPattern(Str(), Str()),
        "input_aliases": MapPattern(Str(), Str()),
        "training_exclusions": MapPattern(Str(), Float()),
        "numerical_vars": Seq(Str()),
        "categorical_vars": Seq(Str()),
        "categorical_vars_na_means_none": Seq(Str()),
        "missing_label": Str(),
        "numerical_vars_with_na_indicator": Seq(Str()),
        "temporal_vars": Seq(Str()),
        "temporal_reference_var": Str(),
        "log_vars": Seq(Str()),
        "log1p_vars": Seq(Str()),
        "quality_vars": Seq(Str()),
        "quality_mappings": MapPattern(Str(), Int()),
        "coded_vars": MapPattern(Str(), CommaSeparated(Int())),
        "numerical_ranges": MapPattern(Str(), CommaSeparated(Float())),
        "integer_vars": Seq(Str()),
        "max_label_length": Int(),
        "rare_label_tolerance": Float(),
        "rare_label_n_categories": Int(),
        "rare_label": Str(),
        "spline_vars": Seq(Str()),
        "spline_knots": Int(),
        "alpha_grid": CommaSeparated(Float()),
        "trim_threshold": Float(),
        "tuning_folds": Int(),
        "max_iter": Int(),
        "random_state": Int(),
        "cv_folds": Int(),
        "cv_repeats": Int(),
        "baseline_group_var": Str(),
        "baseline_linear_vars": Seq(Str()),
        "min_improvement_over_baselines": Float(),
        "slice_vars": Seq(Str()),
        "slice_decade_var": Str(),
        "price_bands": CommaSeparated(Float()),
        "min_slice_houses": Int(),
        "max_slice_rmsle": Float(),
        "plausible_price_range": CommaSeparated(Float()),
        "max_cv_rmsle": Float(),
        "intervals": Map(
            {
                "coverages": CommaSeparated(Float()),
                "difficulty_categorical_vars": Seq(Str()),
                "difficulty_numerical_vars": Seq(Str()),
                "difficulty_penalty": Float(),
                "difficulty_min_label_houses": Int(),
                "max_coverage_gap": Float(),
                "max_slice_shortfall": Float(),
                "slice_significance": Float(),
            }
        ),
        "drift": Map(
            {
                "psi": Float(),
                "ks_statistic": Float(),
                "ks_p_value": Float(),
                "unseen_share": Float(),
                "price_shift": Float(),
                "min_records": Int(),
            }
        ),
        "performance": Map(
            {"min_outcomes": Int(), "rmsle_margin": Float(), "coverage_margin": Float()}
        ),
    }
)
