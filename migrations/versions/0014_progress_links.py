"""progress_links: signed, expiring, revocable links to a record's customer progress page

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "progress_links",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("app", sa.String(length=64), nullable=False),
        sa.Column("form", sa.String(length=64), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", ID, nullable=True),
        sa.Column("last_opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("open_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"],
                                name=op.f("fk_progress_links_record_id_records"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_progress_links")),
        sa.UniqueConstraint("nonce", name=op.f("uq_progress_links_nonce")),
    )
    with op.batch_alter_table("progress_links", schema=None) as batch_op:
        batch_op.create_index("ix_progress_links_record_id", ["record_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("progress_links", schema=None) as batch_op:
        batch_op.drop_index("ix_progress_links_record_id")
    op.drop_table("progress_links")
