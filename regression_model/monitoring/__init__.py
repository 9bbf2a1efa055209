"""Watching the model in service: the prediction log's schema and the drift
report that compares logged houses with the training profile.

Nothing here is imported by ``make_prediction``; the log needs the ``[log]``
extra (SQLAlchemy, Alembic, psycopg), the drift plot the ``[drift]`` extra.
Where the log is (:func:`log_url`) needs neither.
"""

from regression_model.monitoring.log_location import (
    DATABASE_URL_VAR,
    LOG_PATH_VAR,
    log_url,
    log_url_from_environment,
)

__all__ = ["DATABASE_URL_VAR", "LOG_PATH_VAR", "log_url", "log_url_from_environment"]
