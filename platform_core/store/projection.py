"""Typed projections: one real table per form, one typed column per field.

A group-by over ``records.data`` pays for reading JSON on every row (3–4.5× a typed
table). A projection is a plain table ``qp_<form>_<digest>`` holding, per record of one
form, the system columns and every field as a typed column; reports aggregate over it.
Triggers on ``records`` keep it in step *in the writer's transaction*, so every write path
(the store's functions, migrations, raw SQL) is covered and a rolled-back write leaves it
as it was. The JSON document stays the source of truth: a projection can always be
dropped and rebuilt, and ``projection_of`` only answers one built with the form's current
kinds (otherwise the caller reads JSON).

A column holds what the JSON accessor of its kind reads (``ValueKind.accessor``), so a
filter compiled over ``ProjectedFields`` selects the records the same filter selects over
``records``. Two exceptions, both deliberate:

* money is integer fen (exact sums on both databases); ``CentsKind`` binds filter values
  as fen;
* on PostgreSQL a value of the wrong JSON type (a number field holding ``"abc"``, left
  by a change of field type) is NULL where the JSON accessor's cast would fail: a
  trigger must never make a write fail.

Sealed (encrypted) fields get no column, nor does a field keyed ``deleted_at`` (no
payload may set one; that column is the record's deletion time).

Lifecycle of ``ensure_projection``: look up the bookkeeping row → (PostgreSQL: lock
``records`` against writers, look again) → drop the old table → create the table and its
triggers → backfill with one INSERT … SELECT → record the kinds in ``store_projections``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, Table, delete, insert, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.type_api import TypeEngine

from platform_core.models import Record, StoreProjection
from platform_core.store.fields import SYSTEM_FIELDS, Accessor, FieldSet
from platform_core.store.kinds import KINDS, MoneyKind, check_key

# The record's columns a projection copies (``deleted_at`` too: reports choose).
SYSTEM_COLUMNS = (*SYSTEM_FIELDS, "deleted_at")
# Column types on PostgreSQL (ISO dates compare byte-wise: "C" spares the locale's
# collation on every comparison of a date filter); SQLite columns other than money have
# no declared type, so a value is stored exactly as ``json_extract`` returns it (no
# affinity conversion).
_PG_TYPES = {"text": 'TEXT COLLATE "C"', "number": "NUMERIC", "money": "BIGINT",
             "date": 'TEXT COLLATE "C"', "datetime": 'TEXT COLLATE "C"', "boolean": "BOOLEAN"}
# An amount PostgreSQL turns into fen without error or overflow (< 10^16 yuan).
_PG_AMOUNT = "^-?[0-9]{1,16}([.][0-9]*)?$"
_FEN_MAX = 2**63 - 1


def projection_name(app: str, form: str) -> str:
    """The projection table's name; built from checked keys and a digest only."""
    digest = hashlib.sha256(f"{check_key(app)}.{check_key(form)}".encode()).hexdigest()[:10]
    return f"qp_{form[:20]}_{digest}"


class CentsKind(MoneyKind):
    """Money as the projection stores it: integer fen. A filter value binds as fen
    (clamped to 64 bits, which no stored amount reaches)."""

    def bind(self, value: Any, dialect: str) -> Any:  # noqa: ARG002
        fen = int(self.to_decimal(value).scaleb(2))
        return max(-_FEN_MAX, min(_FEN_MAX, fen))


CENTS = CentsKind()


def from_fen(value: Any) -> Decimal | None:
    """An amount of fen read from a projection (a column, a SUM, an AVG) in yuan."""
    return None if value is None else Decimal(str(value)).scaleb(-2)


def _items(kinds: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kinds.items()))


def _columns(kinds: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """The projected data fields, ``(key, kind)``: every field but the sealed ones and one
    keyed ``deleted_at`` (that column is the record's; no payload may set such a field)."""
    return [(key, kind) for key, kind in kinds if kind != "sealed" and key != "deleted_at"]


def _column_type(key: str, kind: str, dialect: str) -> TypeEngine[Any]:
    """The SQLAlchemy type of a data column: the JSON accessor's (binds alike)."""
    if kind == "money":
        return BigInteger()
    return KINDS.get(kind).accessor(Record.__table__.c.data, key, dialect).type


@dataclass(frozen=True)
class _Built:
    """A projection's Table object and the accessors of its columns, made together."""

    table: Table
    accessors: dict[str, Accessor]


_BUILT_LOCK = threading.Lock()


def _table(app: str, form: str, kinds: tuple[tuple[str, str], ...], dialect: str) -> Table:
    return _built(app, form, kinds, dialect).table


def _built(app: str, form: str, kinds: tuple[tuple[str, str], ...], dialect: str) -> _Built:
    """One Table object per projection and process. Made under a lock: a cache alone lets
    two threads (a dashboard's widgets run in parallel) each make one, and a statement
    taking its FROM from one and its columns from the other names the table twice
    (``FROM qp_x, qp_x``, an error on PostgreSQL — seen under the load test)."""
    with _BUILT_LOCK:
        return _make(app, form, kinds, dialect)


@lru_cache(maxsize=256)
def _make(app: str, form: str, kinds: tuple[tuple[str, str], ...], dialect: str) -> _Built:
    system = [Column(name, Record.__table__.c[name].type, primary_key=name == "id")
              for name in SYSTEM_COLUMNS]
    data = [Column(key, _column_type(key, kind, dialect)) for key, kind in _columns(kinds)]
    return _Built(Table(projection_name(app, form), MetaData(), *system, *data), {})


def _accessor(app: str, form: str, kinds: tuple[tuple[str, str], ...], key: str,
              dialect: str) -> Accessor:
    """The accessor of ``key``'s column, kept with the Table it reads (an accessor cached
    apart could outlive its table's cache entry and point at a Table no longer used)."""
    built = _built(app, form, kinds, dialect)
    found = built.accessors.get(key)
    if found is not None:
        return found
    column = built.table.c
    if key in SYSTEM_FIELDS:
        found = Accessor(key, column[key], None, SYSTEM_FIELDS[key][2], False)
    else:
        kind = dict(_columns(kinds)).get(key)
        if kind is None:
            raise KeyError(key)
        value_kind = CENTS if kind == "money" else KINDS.get(kind)
        found = Accessor(key, column[key], value_kind, True, value_kind.text_ops)
    built.accessors[key] = found  # two threads may both make it: equal, same columns
    return found


class ProjectedFields(FieldSet):
    """A form's fields as read from its projection: ``accessor`` gives the projection's
    column (money as fen through ``CentsKind``), so ``compile_filter`` compiles a filter
    onto the projection. Sealed fields have no column (``KeyError``). For filters over
    ``table(dialect)`` only; a list ``Query`` still reads ``records``."""

    def accessor(self, key: str, dialect: str) -> Accessor:
        return _accessor(self.app, self.form, _items(self.kinds), key, dialect)

    def table(self, dialect: str) -> Table:
        return _table(self.app, self.form, _items(self.kinds), dialect)


@dataclass(frozen=True)
class Projection:
    """A built projection: its table and the ``ProjectedFields`` whose accessors read it.

    Money columns hold integer fen (``money_in_fen``; ``from_fen`` converts back).
    """

    table: Table
    fields: ProjectedFields
    money_in_fen: bool = True

    def is_money(self, key: str) -> bool:
        return self.fields.kinds.get(key) == "money"


def _projection(fields: FieldSet, dialect: str) -> Projection:
    projected = ProjectedFields(fields.app, fields.form, dict(fields.kinds))
    return Projection(projected.table(dialect), projected)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _built_kinds(session: Session, name: str) -> dict[str, str] | None:
    stmt = select(StoreProjection.kinds).where(StoreProjection.name == name)
    return session.execute(stmt).scalar_one_or_none()


def has_projection(session: Session, app: str, form: str) -> bool:
    """Whether the form has a projection (current or not)."""
    return _built_kinds(session, projection_name(app, form)) is not None


def projection_of(session: Session, fields: FieldSet) -> Projection | None:
    """The form's projection if it exists and was built with exactly ``fields.kinds``.

    One primary-key SELECT per call, not cached across transactions: another process may
    drop or rebuild the projection at any time, and a rolled-back ``ensure`` leaves none.
    """
    if _built_kinds(session, projection_name(fields.app, fields.form)) != dict(fields.kinds):
        return None
    return _projection(fields, _dialect(session))


def ensure_projection(session: Session, fields: FieldSet) -> Projection:
    """The form's projection, built (or rebuilt, when the kinds differ) in the caller's
    transaction. On PostgreSQL writers to ``records`` wait until that commits (the
    backfill must see every committed record, and the triggers catch every later one)."""
    name, dialect = projection_name(fields.app, fields.form), _dialect(session)
    if _built_kinds(session, name) != dict(fields.kinds):
        if dialect == "postgresql":
            _lock_writers(session)  # then look again: a concurrent ensure may have built it
        if dialect != "postgresql" or _built_kinds(session, name) != dict(fields.kinds):
            _build(session, fields, name)
    return _projection(fields, dialect)


def rebuild_projection(session: Session, fields: FieldSet) -> Projection:
    """Build the projection again from ``records`` (after a suspected drift, or a restore).

    Same effect as drop + ensure; on PostgreSQL the triggers stay (their function is
    replaced), so readers of ``records`` are not blocked while the backfill runs.
    """
    if _dialect(session) == "postgresql":
        _lock_writers(session)
    _build(session, fields, projection_name(fields.app, fields.form))
    return _projection(fields, _dialect(session))


def drop_projection(session: Session, app: str, form: str) -> None:
    """Drop the form's projection: triggers, table, bookkeeping row (each if present)."""
    name = projection_name(app, form)
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        for suffix in _PG_TRIGGERS:
            conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS "{name}_{suffix}" ON records')
        conn.exec_driver_sql(f'DROP FUNCTION IF EXISTS "{name}_sync"()')
    else:
        for suffix in _SQLITE_TRIGGERS:
            conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS "{name}_{suffix}"')
    conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
    session.execute(delete(StoreProjection).where(StoreProjection.name == name))


def _lock_writers(session: Session) -> None:
    """PostgreSQL: writers of ``records`` wait for this transaction (readers do not); two
    builds of projections run one after the other."""
    session.execute(text("LOCK TABLE records IN SHARE ROW EXCLUSIVE MODE"))


def _build(session: Session, fields: FieldSet, name: str) -> None:
    conn = session.connection()
    kinds = _items(fields.kinds)
    sql = _Sql(name, fields.app, fields.form, _columns(kinds), conn.dialect)
    if sql.pg:
        names = [trigger for trigger, _ddl in sql.pg_triggers()]
        existing = set(session.execute(text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'records'::regclass "
            "AND tgname = ANY(:names)"), {"names": names}).scalars())
        statements = [f'DROP TABLE IF EXISTS "{name}"', sql.create_table(), sql.pg_function(),
                      *[ddl for trigger, ddl in sql.pg_triggers() if trigger not in existing]]
    else:
        statements = [*[f'DROP TRIGGER IF EXISTS "{name}_{s}"' for s in _SQLITE_TRIGGERS],
                      f'DROP TABLE IF EXISTS "{name}"', sql.create_table(),
                      *sql.sqlite_triggers()]
    for statement in [*statements, sql.backfill(), *scope_indexes(name)]:
        conn.exec_driver_sql(statement)
    session.execute(delete(StoreProjection).where(StoreProjection.name == name))
    session.execute(insert(StoreProjection).values(name=name, app=fields.app,
                                                   form=fields.form, kinds=dict(kinds)))


# The row scopes' columns: a salesperson's reports read ``owner_id = me`` and a team
# lead's ``department_id IN (…)`` — a twentieth of a form, not a scan of all of it.
SCOPE_COLUMNS = ("owner_id", "department_id")


def scope_indexes(name: str) -> list[str]:
    """The DDL of the projection's indexes on the row scopes' columns (made after the
    backfill: one sort, not an insert per row)."""
    return [f'CREATE INDEX IF NOT EXISTS "{name}_{column}" ON "{name}" ("{column}")'
            for column in SCOPE_COLUMNS]


_SQLITE_TRIGGERS = ("ins", "upd", "out", "del")
_PG_TRIGGERS = ("put", "out", "del", "trunc")


class _Sql:
    """The DDL and DML text of one projection. Every name and literal in it is a checked
    key (``check_key``: ASCII snake_case) or derived from one; values never enter it."""

    def __init__(self, name: str, app: str, form: str, columns: list[tuple[str, str]],
                 dialect: Dialect):
        self.name, self.app, self.form = name, check_key(app), check_key(form)
        self.columns = [(check_key(key), kind) for key, kind in columns]
        self.dialect, self.pg = dialect, dialect.name == "postgresql"
        names = [*SYSTEM_COLUMNS, *[key for key, _ in self.columns]]
        self.names = ", ".join(f'"{c}"' for c in names)
        self.updates = ", ".join(f'"{c}" = excluded."{c}"' for c in names if c != "id")

    def in_form(self, row: str) -> str:
        return f"{row}.app = '{self.app}' AND {row}.form = '{self.form}'"

    def values(self, row: str) -> str:
        """The projected values of record ``row`` (``NEW`` or the backfill's ``r``)."""
        system = [f'{row}."{c}"' for c in SYSTEM_COLUMNS]
        data = [self.value(f"{row}.data", key, kind) for key, kind in self.columns]
        return ", ".join(system + data)

    def value(self, data: str, key: str, kind: str) -> str:
        if self.pg:
            raw = f"({data} ->> '{key}')"
            if kind in ("number", "boolean"):
                cast = "numeric" if kind == "number" else "boolean"
                return f"CASE WHEN jsonb_typeof({data} -> '{key}') = '{kind}' " \
                       f"THEN {raw}::{cast} END"
            if kind == "money":
                return f"CASE WHEN {raw} ~ '{_PG_AMOUNT}' " \
                       f"THEN round({raw}::numeric * 100)::bigint END"
            return raw
        raw = f"json_extract({data}, '$.{key}')"
        if kind == "money":
            # Canonical "1234.50" → 123450 exactly; any other value as CAST(… AS REAL)
            # reads it (what the JSON accessor compares), in fen.
            return f"CASE WHEN {raw} GLOB '*.[0-9][0-9]' " \
                   f"THEN CAST(REPLACE({raw}, '.', '') AS INTEGER) " \
                   f"ELSE CAST(ROUND({raw} * 100) AS INTEGER) END"
        return raw

    def create_table(self) -> str:
        cols = []
        for c in SYSTEM_COLUMNS:
            declared = Record.__table__.c[c].type.compile(dialect=self.dialect)
            cols.append(f'"{c}" {declared}' + (" PRIMARY KEY" if c == "id" else ""))
        for key, kind in self.columns:
            declared = _PG_TYPES[kind] if self.pg else "INTEGER" if kind == "money" else ""
            cols.append(f'"{key}" {declared}'.rstrip())
        return f'CREATE TABLE "{self.name}" ({", ".join(cols)})'

    def upsert(self, row: str) -> str:
        return (f'INSERT INTO "{self.name}" ({self.names}) VALUES ({self.values(row)}) '
                f"ON CONFLICT (id) DO UPDATE SET {self.updates}")

    def backfill(self) -> str:
        return (f'INSERT INTO "{self.name}" ({self.names}) SELECT {self.values("r")} '
                f"FROM records AS r WHERE {self.in_form('r')}")

    def sqlite_triggers(self) -> list[str]:
        n, new, old = self.name, self.in_form("NEW"), self.in_form("OLD")
        moved = f"{old} AND (NEW.id <> OLD.id OR NOT ({new}))"
        return [
            f'CREATE TRIGGER "{n}_ins" AFTER INSERT ON records WHEN {new} '
            f"BEGIN {self.upsert('NEW')}; END",
            f'CREATE TRIGGER "{n}_upd" AFTER UPDATE ON records WHEN {new} '
            f"BEGIN {self.upsert('NEW')}; END",
            f'CREATE TRIGGER "{n}_out" AFTER UPDATE ON records WHEN {moved} '
            f'BEGIN DELETE FROM "{n}" WHERE id = OLD.id; END',
            f'CREATE TRIGGER "{n}_del" AFTER DELETE ON records WHEN {old} '
            f'BEGIN DELETE FROM "{n}" WHERE id = OLD.id; END',
        ]

    def pg_function(self) -> str:
        n = self.name
        return (f'CREATE OR REPLACE FUNCTION "{n}_sync"() RETURNS trigger '
                "LANGUAGE plpgsql AS $qiao$\nBEGIN\n"
                f'  IF TG_OP = \'TRUNCATE\' THEN\n    TRUNCATE "{n}";\n'
                f'  ELSIF TG_OP = \'DELETE\' OR NOT ({self.in_form("NEW")}) THEN\n'
                f'    DELETE FROM "{n}" WHERE id = OLD.id;\n'
                f"  ELSE\n    {self.upsert('NEW')};\n"
                "    IF TG_OP = 'UPDATE' THEN\n      IF OLD.id <> NEW.id THEN\n"
                f'        DELETE FROM "{n}" WHERE id = OLD.id;\n'
                "      END IF;\n    END IF;\n  END IF;\n  RETURN NULL;\nEND\n$qiao$")

    def pg_triggers(self) -> list[tuple[str, str]]:
        n, new, old = self.name, self.in_form("NEW"), self.in_form("OLD")
        run = f'EXECUTE FUNCTION "{n}_sync"()'
        return [
            (f"{n}_put", f'CREATE TRIGGER "{n}_put" AFTER INSERT OR UPDATE ON records '
                         f"FOR EACH ROW WHEN ({new}) {run}"),
            (f"{n}_out", f'CREATE TRIGGER "{n}_out" AFTER UPDATE ON records '
                         f"FOR EACH ROW WHEN ({old} AND NOT ({new})) {run}"),
            (f"{n}_del", f'CREATE TRIGGER "{n}_del" AFTER DELETE ON records '
                         f"FOR EACH ROW WHEN ({old}) {run}"),
            (f"{n}_trunc", f'CREATE TRIGGER "{n}_trunc" AFTER TRUNCATE ON records '
                           f"FOR EACH STATEMENT {run}"),
        ]
