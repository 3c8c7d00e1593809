"""list_views (saved and shared record lists) and recent_records (what a person opened)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 07:55:26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "list_views",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("app", sa.String(length=64), nullable=False),
        sa.Column("form", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("query", sa.String(length=4000), nullable=False),
        sa.Column("owner_id", ID, nullable=True),
        sa.Column("roles", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()),
                                                  "postgresql"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app"], ["apps.key"], name=op.f("fk_list_views_app_apps"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"],
                                name=op.f("fk_list_views_owner_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_views")),
    )
    op.create_table(
        "recent_records",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"],
                                name=op.f("fk_recent_records_record_id_records"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_recent_records_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recent_records")),
        sa.UniqueConstraint("user_id", "record_id", name=op.f("uq_recent_records_user_id")),
    )
    with op.batch_alter_table("recent_records") as batch:
        batch.create_index(batch.f("ix_recent_records_opened_at"), ["opened_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recent_records") as batch:
        batch.drop_index(batch.f("ix_recent_records_opened_at"))
    op.drop_table("recent_records")
    op.drop_table("list_views")
