"""Training: the pipeline and its estimator, evaluation and baselines, the
compiler that turns the fitted pipeline into scoring tables, and the model
report. Needs the ``[train]`` extra; nothing on the serving path imports it
(an import contract in ``tox -e checks``).

Public for those who study or retrain the model (``research/``, a data
scientist): ``run_training`` (what ``regression-model train`` does),
``load_training_data`` (the training houses by the config's rules),
``evaluate`` (repeated nested cross-validation with the baselines on the same
folds) and ``build_pipeline``. The modules below are internal.
"""

from regression_model.training.evaluation import Evaluation, evaluate
from regression_model.training.pipeline import build_pipeline
from regression_model.training.train import (
    TrainingData,
    TrainingResult,
    load_training_data,
    run_training,
)

__all__ = [
    "Evaluation",
    "TrainingData",
    "TrainingResult",
    "build_pipeline",
    "evaluate",
    "load_training_data",
    "run_training",
]
