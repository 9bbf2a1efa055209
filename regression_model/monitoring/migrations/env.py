"""Alembic environment of the prediction log: runs on the connection that
``prediction_log.migrate`` opened (and locked), or on ``sqlalchemy.url``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from regression_model.monitoring.log_store import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # plain `alembic -x` use: connect to the configured URL
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as own_connection:
        context.configure(connection=own_connection, target_metadata=metadata)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
