"""Expression indexes for fields declared ``indexed``.

The index expression is the field's ``ValueKind.accessor`` — the very expression the
query compiler emits — so the database matches the two and uses the index. It is keyed
``(app, form, <field>, id)``: an equality filter plus the default ``id`` order (and keyset
pages) is answered from the index alone, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Index, select
from sqlalchemy.orm import Session

from platform_core.models import Record, StoreIndex
from platform_core.store.fields import FieldSet


def index_name(app: str, form: str, field: str) -> str:
    digest = hashlib.sha256(f"{app}.{form}.{field}".encode()).hexdigest()[:10]
    return f"ix_rec_{form[:20]}_{field[:20]}_{digest}"


def ensure_index(session: Session, fields: FieldSet, field: str) -> str:
    """Create (once) the expression index of ``fields.form``'s ``field``; its name."""
    dialect = session.get_bind().dialect.name
    name = index_name(fields.app, fields.form, field)
    if session.get(StoreIndex, name) is not None:
        return name
    accessor = fields.accessor(field, dialect)
    index = Index(name, Record.app, Record.form, accessor.expr, Record.id)
    index.create(session.connection(), checkfirst=False)
    session.add(StoreIndex(name=name, app=fields.app, form=fields.form, field=field,
                           kind=fields.kinds[field]))
    session.flush()
    return name


def indexes_of(session: Session, app: str, form: str) -> list[StoreIndex]:
    stmt = select(StoreIndex).where(StoreIndex.app == app, StoreIndex.form == form)
    return list(session.execute(stmt.order_by(StoreIndex.name)).scalars())
