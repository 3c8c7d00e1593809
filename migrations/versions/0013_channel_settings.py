"""channel_settings: SMTP, SMS gateway and WeCom robot settings saved by administrators
(over the environment's), their secrets sealed

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "channel_settings",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("config", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()),
                                                   "postgresql"), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("updated_by", ID, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_channel_settings")),
    )


def downgrade() -> None:
    op.drop_table("channel_settings")
