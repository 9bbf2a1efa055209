"""House-price regression model: config-driven training and prediction.

The public surface, what the API, the command line, batch scoring,
benchmarks and users import::

    import regression_model

    model = regression_model.load_model()        # verified, loaded once
    result = model.predict(houses)                # a DataFrame, list of dicts or dict
    result["predictions"], result["errors"], result["warnings"]

``make_prediction(input_data=...)`` is the same call. Public modules too:
``regression_model.batch`` (``score_file``: files in bounded memory),
``regression_model.batch.dask_scoring`` (the same on a cluster),
``regression_model.batch.resample`` (large test inputs),
``regression_model.monitoring`` (the prediction log, drift) and
``regression_model.export`` (the model as SQL; the ``[sql]`` extra).
Everything else is internal and may change between versions; import-linter
contracts (``tox -e checks``) keep the service and the benchmarks to these.
"""

from regression_model.config.core import Config, ConfigError, get_config
from regression_model.data import example_houses, load_dataset
from regression_model.predict import make_prediction
from regression_model.scoring.artifact import (
    ArtifactCompatibilityError,
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    LibraryVersionWarning,
)
from regression_model.scoring.challenger import challenger_label, load_challenger
from regression_model.scoring.explanation import Explanation, Factor
from regression_model.scoring.house_key import MAX_KEY_LENGTH
from regression_model.scoring.intervals import PriceRange, UnknownCoverageError
from regression_model.scoring.model import (
    ENGINES,
    CompiledModel,
    Engine,
    Model,
    PipelineModel,
    PredictionResult,
    load_model,
)
from regression_model.scoring.report_files import Report, ReportUnavailableError
from regression_model.scoring.rules import json_type
from regression_model.scoring.schema import house_input_model, model_fields
from regression_model.scoring.unknown_fields import IgnoredField, shown_name
from regression_model.scoring.validation import InputData, validate_inputs
from regression_model.scoring.validation_result import WHOLE_ROW, InputError, ValidationResult
from regression_model.version import __version__

__all__ = [
    "ENGINES",
    "MAX_KEY_LENGTH",
    "WHOLE_ROW",
    "ArtifactCompatibilityError",
    "ArtifactError",
    "ArtifactIntegrityError",
    "ArtifactNotFoundError",
    "CompiledModel",
    "Config",
    "ConfigError",
    "Engine",
    "Explanation",
    "Factor",
    "IgnoredField",
    "InputData",
    "InputError",
    "LibraryVersionWarning",
    "Model",
    "PipelineModel",
    "PredictionResult",
    "PriceRange",
    "Report",
    "ReportUnavailableError",
    "UnknownCoverageError",
    "ValidationResult",
    "__version__",
    "challenger_label",
    "example_houses",
    "get_config",
    "house_input_model",
    "json_type",
    "load_challenger",
    "load_dataset",
    "load_model",
    "make_prediction",
    "model_fields",
    "shown_name",
    "validate_inputs",
]
