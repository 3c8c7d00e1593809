"""The platform's own tables (SQLAlchemy 2 typed models). ``migrations/`` mirrors them.

``records`` holds every form's records as one JSON document each (JSONB on PostgreSQL);
beside it live links (relations), history (one diff per change) and the outbox.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL; INTEGER on SQLite so the id is the rowid and autoincrements.
Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Record(Base):
    """One record of any form. ``data`` is the single source of truth."""

    __tablename__ = "records"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(64))
    form: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(Json)
    schema_version: Mapped[int] = mapped_column(Integer, default=1)
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    owner_id: Mapped[int | None] = mapped_column(Id)
    department_id: Mapped[int | None] = mapped_column(Id)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(Id)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[int | None] = mapped_column(Id)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_records_app_form_id", "app", "form", "id"),
                      # a list sorted by creation time pages from the index (0019)
                      Index("ix_records_app_form_created", "app", "form", "created_at", "id"),
                      # only the recycle bin: a form's live count is two index-only counts
                      Index("ix_records_deleted", "app", "form",
                            sqlite_where=text("deleted_at IS NOT NULL"),
                            postgresql_where=text("deleted_at IS NOT NULL")))


class RecordLink(Base):
    """A relation: record ``source_id`` points at ``target_id`` through field ``field``."""

    __tablename__ = "record_links"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("source_id", "field", "target_id", name="uq_record_links_triple"),
        Index("ix_record_links_target_id", "target_id"),
        Index("ix_record_links_target_field_source", "target_id", "field", "source_id"),
    )


class RecordHistory(Base):
    """One diff per change of a record: ``{field: [old, new]}``; the record's timeline."""

    __tablename__ = "record_history"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    row_version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    diff: Mapped[dict[str, Any]] = mapped_column(Json)
    actor_id: Mapped[int | None] = mapped_column(Id)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_record_history_record_id", "record_id", "id"),
                      Index("ix_record_history_record_at", "record_id", "at"))


class OutboxEvent(Base):
    """A domain event, written in the same transaction as the change it describes.

    The dispatcher (rules engine) claims rows with a lease (``claimed_until``) and marks
    them ``processed_at``; ``attempts`` and ``last_error`` feed the dead-letter list.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(64))
    app: Mapped[str | None] = mapped_column(String(64))
    form: Mapped[str | None] = mapped_column(String(64))
    record_id: Mapped[int | None] = mapped_column(Id)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(2000))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # The pending rows in id order: a claim reads them so and stops after its batch
    # (migration 0023; the index it replaced, led by processed_at and available_at, made
    # each claim read and sort every pending row — a drain quadratic in its backlog).
    __table_args__ = (Index("ix_outbox_due", "id", sqlite_where=text("processed_at IS NULL"),
                            postgresql_where=text("processed_at IS NULL")),)


class StoreIndex(Base):
    """An expression index the store created for a field declared ``indexed``."""

    __tablename__ = "store_indexes"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    app: Mapped[str] = mapped_column(String(64))
    form: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    unique: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StoreProjection(Base):
    """A typed projection the store built for one form (``store.projection``): a table
    ``name`` with one column per field of ``kinds``, kept in step by triggers on
    ``records``. Derived data: dropping and rebuilding it loses nothing."""

    __tablename__ = "store_projections"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    app: Mapped[str] = mapped_column(String(64))
    form: Mapped[str] = mapped_column(String(64))
    kinds: Mapped[dict[str, str]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IdempotencyKey(Base):
    """The first response to a POST sent with an ``Idempotency-Key``, kept 24 hours so a
    retry gets it again instead of writing twice. Keys are per user; the request's hash
    catches a key reused for a different request."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Id)
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)  # None: first request running
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    body: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),
                      Index("ix_idempotency_keys_expires_at", "expires_at"))
