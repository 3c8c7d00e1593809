"""shared rate-limit windows (every process counts against one budget) and resumable
form migrations (a cursor and a lease on form_migrations)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 00:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rate_windows",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_windows")),
    )
    with op.batch_alter_table("rate_windows", schema=None) as batch_op:
        batch_op.create_index("ix_rate_windows_window_end", ["window_end"], unique=False)

    with op.batch_alter_table("form_migrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_id", sa.BigInteger(), server_default="0",
                                      nullable=False))
        batch_op.add_column(sa.Column("worker", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("actor", JSON, nullable=True))
        batch_op.create_index("ix_form_migrations_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("form_migrations", schema=None) as batch_op:
        batch_op.drop_index("ix_form_migrations_status")
        batch_op.drop_column("actor")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("worker")
        batch_op.drop_column("last_id")

    with op.batch_alter_table("rate_windows", schema=None) as batch_op:
        batch_op.drop_index("ix_rate_windows_window_end")

    op.drop_table("rate_windows")
