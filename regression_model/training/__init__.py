"""Training: the pipeline and its estimator, evaluation and baselines, the
compiler that turns the fitted pipeline into scoring tables, and the model
report. Needs the ``[train]`` extra; nothing on the serving path imports it
(an import contract in ``tox -e checks``)."""
