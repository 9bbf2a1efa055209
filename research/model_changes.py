"""What each change of model 0.2.0 is worth: the package's own evaluation
(repeated, nested cross-validation on train.csv) of the model with its
changes added one at a time, starting from model 0.1.0.

    python research/model_changes.py

Unlike train_research.py, this script uses the package: it measures config
variants with exactly the evaluation that training reports. test.csv is
never read. It imports public names only (``regression_model`` and
``regression_model.training``, the surface for studying and retraining the
model; tests/test_architecture.py checks it).
"""

from threadpoolctl import threadpool_limits

from regression_model import get_config
from regression_model.training import evaluate, load_training_data

config = get_config()
data = load_training_data(config)
final = config.model

# Each step adds one change to the one before; the last is the shipped config.
NO_TRIMMING = 1e9  # no residual is that many standard deviations away
steps = [
    ("0.1.0: Lasso, alpha 0.001", {"alpha_grid": [0.001], "spline_vars": [], "trim_threshold": NO_TRIMMING}),
    ("+ alpha chosen by nested CV", {"spline_vars": [], "trim_threshold": NO_TRIMMING}),
    ("+ cubic splines", {"trim_threshold": NO_TRIMMING}),
    ("+ trimmed refit (0.2.0)", {}),
]

print(f"{'model':32s} {'CV RMSLE':>9s} {'± folds':>8s} {'± repeats':>9s}  per repeat")
previous = None
with threadpool_limits(limits=1):
    for name, changes in steps:
        variant = final.model_copy(update=changes)
        result = evaluate(variant, data.X, data.y)
        summary = result.model.summary()
        repeats = result.model.repeat_rmsle()
        gain = "" if previous is None else f"  change {summary['rmsle_mean'] - previous:+.4f}"
        print(
            f"{name:32s} {summary['rmsle_mean']:9.4f} {summary['rmsle_std']:8.4f} "
            f"{summary['rmsle_repeat_std']:9.4f}  {' '.join(f'{r:.4f}' for r in repeats)}{gain}",
            flush=True,
        )
        previous = summary["rmsle_mean"]
    for baseline, cv in result.baselines.items():
        summary = cv.summary()
        print(f"baseline {baseline:23s} {summary['rmsle_mean']:9.4f} {summary['rmsle_std']:8.4f}")
