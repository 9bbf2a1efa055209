"""Watching the model in service: the prediction log's schema and the drift
report that compares logged houses with the training profile.

Nothing here is imported by ``make_prediction``; the log needs the ``[log]``
extra (SQLAlchemy, Alembic, psycopg), the drift plot the ``[drift]`` extra.
"""
