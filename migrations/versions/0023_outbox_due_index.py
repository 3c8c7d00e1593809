"""outbox_due_index: the pending outbox rows indexed in id order

The dispatcher claims the next batch of due events in id order. The index on pending
rows was ``ix_outbox_pending (processed_at, available_at, id)``, ordered by
``available_at`` first, so each claim (and each look for events nobody wants) read every
pending row and sorted them to keep a hundred: draining a backlog took time quadratic in
its size. The partial index ``ix_outbox_due (id) WHERE processed_at IS NULL`` replaces
it: a claim reads the pending rows in id order and stops after its batch, and the
metrics' count of pending rows reads only them, as before.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 18:30:00
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.create_index("ix_outbox_due", "outbox", ["id"],
                    sqlite_where=text("processed_at IS NULL"),
                    postgresql_where=text("processed_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.create_index("ix_outbox_pending", "outbox", ["processed_at", "available_at", "id"])
