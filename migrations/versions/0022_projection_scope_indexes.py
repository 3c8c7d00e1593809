"""projection_scope_indexes: index each typed projection on owner_id and department_id

A salesperson's report or dashboard reads its form's projection with ``owner_id = me``
and a team lead's with ``department_id IN (…)``; without an index each read scanned the
whole projection (a CRM at 1,000,000 records: every salesperson's dashboard read all
300,000 loan cases to find their own). ``ensure_projection`` now creates both indexes
after its backfill; this adds them to the projections built before.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import inspect, text

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_COLUMNS = ("owner_id", "department_id")  # platform_core.store.projection.SCOPE_COLUMNS


def _projections(bind) -> list[str]:  # noqa: ANN001
    """The projection tables that exist (names are ``qp_`` + checked key + digest)."""
    names = bind.execute(text("SELECT name FROM store_projections")).scalars().all()
    tables = set(inspect(bind).get_table_names())
    return [n for n in names if n in tables and n.replace("_", "").isalnum()]


def upgrade() -> None:
    bind = op.get_bind()
    for name in _projections(bind):
        for column in _COLUMNS:
            bind.execute(text(f'CREATE INDEX IF NOT EXISTS "{name}_{column}" '
                              f'ON "{name}" ("{column}")'))


def downgrade() -> None:
    bind = op.get_bind()
    for name in _projections(bind):
        for column in _COLUMNS:
            bind.execute(text(f'DROP INDEX IF EXISTS "{name}_{column}"'))
