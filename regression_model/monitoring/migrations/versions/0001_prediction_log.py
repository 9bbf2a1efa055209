"""The prediction log: one row per house priced or rejected.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _json(none_as_null: bool = False) -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=none_as_null).with_variant(
        postgresql.JSONB(none_as_null=none_as_null), "postgresql"
    )


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column(
            "log_id",
            sa.String(32),
            primary_key=True,
            comment="one per request, made by the writer",
        ),
        sa.Column(
            "row", sa.Integer(), primary_key=True, comment="the house's position in the request"
        ),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("inputs", _json(), nullable=False),
        sa.Column("price", sa.Double(), nullable=True, comment="dollars; null when rejected"),
        sa.Column("errors", _json(none_as_null=True), nullable=True),
    )
    op.create_index("ix_predictions_request_id", "predictions", ["request_id"])
    op.create_index("ix_predictions_logged_at", "predictions", ["logged_at"])


def downgrade() -> None:
    op.drop_index("ix_predictions_logged_at", table_name="predictions")
    op.drop_index("ix_predictions_request_id", table_name="predictions")
    op.drop_table("predictions")
