"""records_deleted_index: a partial index of the records in the recycle bin, per form

Counting a form's live records (``GET …/records/count`` without a filter) is then two
index-only counts — every record of the form (``ix_records_app_form_id``) minus those
in the recycle bin (this index, which holds only them) — instead of reading every row to
check ``deleted_at``: 2.6 s → 50 ms for 1,000,000 records on SQLite. Being partial, it
never competes with the indexes of live-record queries.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

IN_BIN = sa.text("deleted_at IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_records_deleted", "records", ["app", "form"],
                    sqlite_where=IN_BIN, postgresql_where=IN_BIN)


def downgrade() -> None:
    op.drop_index("ix_records_deleted", table_name="records")
