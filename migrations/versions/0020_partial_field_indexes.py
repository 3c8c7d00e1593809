"""partial_field_indexes: each indexed field's index covers its own form's rows only

The expression indexes of ``indexed`` fields (``ix_rec_…``) covered every row of the
shared ``records`` table, so each insert or update of any form computed every form's
index expressions: a customer import paid for the loan cases' eight indexes as well, and
inserting 20,000 customers into the CRM took twice as long as with the customers' own
indexes alone. Rebuilt here with ``WHERE app = … AND form = …`` (as ``ensure_index`` now
creates them); the unique ones (``ux_rec_…``) were partial already.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 20:05:00
"""

from __future__ import annotations

import re

from alembic import op
from sqlalchemy import text

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_KEY = re.compile(r"[a-z][a-z0-9_]{0,62}")


def _definitions(bind) -> list[tuple[str, str, str, str]]:  # noqa: ANN001
    """(name, app, form, CREATE INDEX text) of each non-unique field index."""
    rows = bind.execute(text('SELECT name, app, form FROM store_indexes WHERE NOT "unique"')
                        ).all()
    out = []
    for name, app, form in rows:
        if bind.dialect.name == "postgresql":
            ddl = bind.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                               {"n": name}).scalar()
        else:
            ddl = bind.execute(text("SELECT sql FROM sqlite_master WHERE type = 'index' "
                                    "AND name = :n"), {"n": name}).scalar()
        if ddl and _KEY.fullmatch(app) and _KEY.fullmatch(form):
            out.append((name, app, form, ddl))
    return out


def _rebuild(bind, name: str, ddl: str) -> None:  # noqa: ANN001
    bind.execute(text(f'DROP INDEX IF EXISTS "{name}"'))  # our names: ix_rec_ + keys + digest
    bind.execute(text(ddl))


def upgrade() -> None:
    bind = op.get_bind()
    for name, app, form, ddl in _definitions(bind):
        if " WHERE " in ddl.upper():
            continue
        _rebuild(bind, name, f"{ddl} WHERE app = '{app}' AND form = '{form}'")


def downgrade() -> None:
    bind = op.get_bind()
    for name, _app, _form, ddl in _definitions(bind):
        where = ddl.upper().rfind(" WHERE ")
        if where >= 0:
            _rebuild(bind, name, ddl[:where])
