"""Scoring: the verified artifact, input validation, the compiled tables and
the model object that ties them together (public as ``regression_model.Model``).
No scikit-learn, feature-engine or joblib here (except unpickling the fitted
pipeline, only when ``engine="pipeline"`` asks for it)."""
