"""The prediction log keeps each priced house's price ranges.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One JSON column holding the ranges as the response gave them,
    # [{"coverage", "low", "high"}], not a low and a high column per coverage:
    # the coverages are the model's configuration (config.yml, `intervals:`)
    # and a client may ask for some of them only, so a retrained model with
    # other coverages logs into the same table with no migration, and each
    # row says which coverages it holds. Nullable, no default: adding it
    # rewrites no rows, and the records logged before it read as null.
    op.add_column(
        "predictions",
        sa.Column(
            "price_ranges",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True), "postgresql"
            ),
            nullable=True,
            comment="[{coverage, low, high}] in dollars, as answered (null: not priced)",
        ),
    )


def downgrade() -> None:
    # SQLite before 3.35 has no DROP COLUMN: batch mode copies the table there.
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("price_ranges")
