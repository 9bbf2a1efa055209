"""The prediction log keeps the model's fields only: the names of the fields
a house sent that the model ignored go in their own column.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites no rows (SQLite and PostgreSQL
    # both only change the table's definition).
    op.add_column(
        "predictions",
        sa.Column(
            "ignored_fields",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True), "postgresql"
            ),
            nullable=True,
            comment="names of the fields sent that the model ignored (null: none)",
        ),
    )


def downgrade() -> None:
    # SQLite before 3.35 has no DROP COLUMN: batch mode copies the table there.
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("ignored_fields")
