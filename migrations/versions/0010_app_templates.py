"""apps: menus and the template an app was installed from; unique field indexes limited
to their own form

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 23:40:00
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.add_column(sa.Column(
            "menus", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()),
                                            "postgresql"), nullable=True))
        batch.add_column(sa.Column("template", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("template_version", sa.String(length=32), nullable=True))
    _scope_unique_indexes()


LIVE = re.compile(r"WHERE\s*\(?\s*deleted_at IS NULL\s*\)?\s*$", re.I)


def _scope_unique_indexes() -> None:
    """A unique field's index covered the live records of every form, so two records of
    another form with the same value collided. Re-create each one limited to its form
    (a weaker condition, so it always builds)."""
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        'SELECT name, app, form FROM store_indexes WHERE "unique" = :yes'), {"yes": True}).all()
    for name, app, form in rows:
        if bind.dialect.name == "postgresql":
            found = bind.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                         ":n"), {"n": name}).scalar()
        else:
            found = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' "
                                         "AND name = :n"), {"n": name}).scalar()
        if not found or not LIVE.search(found):
            continue
        # app and form are checked keys ([a-z][a-z0-9_]*): safe inside quotes
        scoped = LIVE.sub(f"WHERE app = '{app}' AND form = '{form}' AND deleted_at IS NULL",
                          found)
        op.execute(f'DROP INDEX "{name}"')
        op.execute(scoped)


def downgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("template_version")
        batch.drop_column("template")
        batch.drop_column("menus")
