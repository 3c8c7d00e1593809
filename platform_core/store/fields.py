"""``FieldSet``: what the store knows of one form's fields — key → value kind.

The form engine builds one from a form's spec; the store needs it to type filters, sorts
and indexes. System columns (``id``, ``created_at`` …) are always there and cannot be
shadowed by a data field. ``links`` are the fields that point at many records (their
ids are in ``record_links``): they filter by the ids they hold, through that table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from platform_core.models import Record
from platform_core.store.kinds import KINDS, ValueKind, aware_datetime, check_key

# system field → (column, kind key, nullable)
SYSTEM_FIELDS: dict[str, tuple[Any, str, bool]] = {
    "id": (Record.id, "number", False),
    "row_version": (Record.row_version, "number", False),
    "owner_id": (Record.owner_id, "number", True),
    "department_id": (Record.department_id, "number", True),
    "created_by": (Record.created_by, "number", True),
    "updated_by": (Record.updated_by, "number", True),
    "created_at": (Record.created_at, "timestamp", False),
    "updated_at": (Record.updated_at, "timestamp", False),
}


@dataclass(frozen=True)
class Accessor:
    """A typed SQL view of one field, plus how to bind values compared with it."""

    name: str
    expr: ColumnElement[Any]
    kind: ValueKind | None  # None for system columns
    nullable: bool
    text_ops: bool
    links: bool = False  # a relation to many records: ``expr`` is the record's id

    def bind(self, value: Any, dialect: str) -> Any:
        if self.kind is not None:
            return self.kind.bind(value, dialect)
        if self.links:
            return _bind_id(value)
        return _bind_system(self.name, value)

    def sort_value(self, record: Any) -> Any:
        """The JSON-able value of this field in ``record`` (for keyset cursors)."""
        if self.kind is None:
            value = getattr(record, self.name)
            return value.isoformat() if isinstance(value, datetime) else value
        raw = (record.data or {}).get(self.name)
        return None if raw is None else self.kind.to_storage(raw)


# Accessors are immutable and depend only on (field, kind, dialect): built once, shared.
# (SQLAlchemy expressions are immutable too, so one can appear in any number of queries.)
_SYSTEM_ACCESSORS = {key: Accessor(key, column, None, nullable, False)
                     for key, (column, _kind, nullable) in SYSTEM_FIELDS.items()}


@lru_cache(maxsize=4096)
def _data_accessor(key: str, kind: ValueKind, dialect: str) -> Accessor:
    return Accessor(key, kind.accessor(Record.data, key, dialect), kind, True, kind.text_ops)


def _bind_system(name: str, value: Any) -> Any:
    """System columns compare as what they are: integers or aware timestamps."""
    if SYSTEM_FIELDS[name][1] == "number":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {type(value).__name__}")
        if not -(2**63) <= value < 2**63:
            raise ValueError("expected an integer within 64 bits")
        return value
    return aware_datetime(value)


def _bind_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise ValueError("expected a record id (a positive integer)")
    return value


@lru_cache(maxsize=1024)
def _link_accessor(key: str) -> Accessor:
    return Accessor(key, Record.id, None, False, False, links=True)


@dataclass(frozen=True)
class FieldSet:
    """The data fields of ``app``/``form`` and their value kinds."""

    app: str
    form: str
    kinds: Mapping[str, str] = field(default_factory=dict)
    links: frozenset[str] = frozenset()  # relations to many records

    def __post_init__(self) -> None:
        check_key(self.app)
        check_key(self.form)
        for key, kind in self.kinds.items():
            check_key(key)
            if key in SYSTEM_FIELDS:
                raise ValueError(f"field key {key!r} is reserved for a system field")
            KINDS.get(kind)
        for key in self.links:
            check_key(key)
            if key in SYSTEM_FIELDS or key in self.kinds:
                raise ValueError(f"field key {key!r} is a system field or has a kind")

    def kind(self, key: str) -> ValueKind:
        return KINDS.get(self.kinds[key])

    def accessor(self, key: str, dialect: str) -> Accessor:
        """The typed SQL expression for ``key``; ``KeyError`` if the form has no such field."""
        system = _SYSTEM_ACCESSORS.get(key)
        if system is not None:
            return system
        if key not in self.kinds:
            if key in self.links:
                return _link_accessor(key)
            raise KeyError(key)
        return _data_accessor(key, self.kind(key), dialect)

    def coerce(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``data`` against the kinds; ``None`` means blank and is kept as null."""
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key not in self.kinds:
                raise ValueError(f"{key}: unknown field of {self.app}.{self.form}")
            try:
                out[key] = None if value is None else self.kind(key).to_storage(value)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return out
