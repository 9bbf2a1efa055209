"""Sale prices that come back (outcomes), and a challenger model's prices of
the logged houses (shadow prices).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per realised sale. `reference` is the outcome's identity, made
    # from what the client quotes: "request:<request_id>:<row>" for a house of
    # a logged request, "key:<key>" for the key it sent with the house (its
    # Id). Its primary key is what makes posting the same outcome twice store
    # it once.
    op.create_table(
        "outcomes",
        sa.Column("reference", sa.String(200), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=True, index=True),
        sa.Column("row", sa.Integer, nullable=True),
        sa.Column("house_key", sa.String(64), nullable=True, index=True),
        sa.Column("sale_price", sa.Double, nullable=False, comment="dollars"),
        sa.Column("sale_date", sa.Date, nullable=False, index=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    # A challenger's price of each logged house it shadowed: its own table,
    # written off the request path, so the predictions' insert is untouched.
    op.create_table(
        "shadow_prices",
        sa.Column("log_id", sa.String(32), primary_key=True),
        sa.Column("row", sa.Integer, primary_key=True),
        sa.Column("challenger_version", sa.String(64), primary_key=True),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("price", sa.Double, nullable=True, comment="dollars; null when refused"),
    )


def downgrade() -> None:
    op.drop_table("shadow_prices")
    op.drop_table("outcomes")
