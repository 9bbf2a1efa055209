"""House-price regression model: config-driven training and prediction.

The public surface, what the API, the command line, batch scoring,
benchmarks and users import::

    import regression_model

    model = regression_model.load_model()        # verified, loaded once
    result = model.predict(houses)                # a DataFrame, list of dicts or dict
    result["predictions"], result["errors"], result["warnings"]

``make_prediction(input_data=...)`` is the same call. Everything else in the
package is internal and may change between versions.
"""

from regression_model.artifact import (
    ArtifactCompatibilityError,
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
)
from regression_model.config.core import ConfigError
from regression_model.predict import (
    ENGINES,
    CompiledModel,
    Engine,
    Model,
    PipelineModel,
    PredictionResult,
    load_model,
    make_prediction,
)
from regression_model.processing.validation import (
    WHOLE_ROW,
    IgnoredField,
    InputData,
    InputError,
    ValidationResult,
    house_input_model,
    validate_inputs,
)
from regression_model.version import __version__

__all__ = [
    "ENGINES",
    "WHOLE_ROW",
    "ArtifactCompatibilityError",
    "ArtifactError",
    "ArtifactIntegrityError",
    "ArtifactNotFoundError",
    "CompiledModel",
    "ConfigError",
    "Engine",
    "IgnoredField",
    "InputData",
    "InputError",
    "Model",
    "PipelineModel",
    "PredictionResult",
    "ValidationResult",
    "__version__",
    "house_input_model",
    "load_model",
    "make_prediction",
    "validate_inputs",
]
