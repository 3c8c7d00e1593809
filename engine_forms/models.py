"""Tables of the form engine: apps, forms (draft + published versions), counters,
attachments and record-migration jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from platform_core.models import Base, Id, Json, utcnow


class App(Base):
    """An app: a bundle of forms (and later flows, rules, reports) under a stable key."""

    __tablename__ = "apps"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(2000))
    # the app's navigation (``menus.json`` of its bundle) and, for an app installed from a
    # template, which one and its version
    menus: Mapped[list[Any] | None] = mapped_column(Json)
    template: Mapped[str | None] = mapped_column(String(64))
    template_version: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Form(Base):
    """A form's mutable draft and the number of its latest published version."""

    __tablename__ = "forms"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.key", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    draft: Mapped[dict[str, Any]] = mapped_column(Json)
    published_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("app", "key", name="uq_forms_app_key"),)


class FormVersion(Base):
    """One published, immutable version of a form, with its diff from the previous one."""

    __tablename__ = "form_versions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(64))
    form: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    changes: Mapped[dict[str, Any]] = mapped_column(Json)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_by: Mapped[int | None] = mapped_column(Id)

    __table_args__ = (UniqueConstraint("app", "form", "version",
                                       name="uq_form_versions_app_form_version"),)


class AutoNumberCounter(Base):
    """The last number handed out per field and period (gap-free: same transaction)."""

    __tablename__ = "auto_number_counters"

    app: Mapped[str] = mapped_column(String(64), primary_key=True)
    form: Mapped[str] = mapped_column(String(64), primary_key=True)
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Attachment(Base):
    """An uploaded file; bytes live under ``<data dir>/attachments``, never in the DB."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(64))
    form: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[int | None] = mapped_column(ForeignKey("records.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(Id)

    __table_args__ = (Index("ix_attachments_record_created", "record_id", "created_at"),)


class FormMigration(Base):
    """A background job converting existing records to a newly published version.

    ``last_id`` is its cursor (the highest record id it has dealt with, committed with
    each batch); ``worker`` and ``lease_until`` say who runs it, so a job whose process
    died is taken over at the next start (``engine_forms.versions.resume_migrations``)
    and continues after its cursor. ``actor`` is who published, for the records' history.
    """

    __tablename__ = "form_migrations"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(64))
    form: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int] = mapped_column(Integer)
    to_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[list[Any]] = mapped_column(Json, default=list)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    actor: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_form_migrations_status", "status"),)


class ListView(Base):
    """A saved list of a form: its filter conditions, columns and sort, as the list page's
    query string. ``owner_id`` set: one person's view; ``roles`` set (by an administrator
    or a form manager): published to those roles."""

    __tablename__ = "list_views"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.key", ondelete="CASCADE"))
    form: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(String(4000))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    roles: Mapped[list[str] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RecentRecord(Base):
    """A record a person opened lately (their home page lists the last ones)."""

    __tablename__ = "recent_records"
    __table_args__ = (UniqueConstraint("user_id", "record_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                index=True)


class ImportMapping(Base):
    """A saved column mapping of a form's imports (``engine_forms.imports.mapping``), by
    name, reused for the next file of the same shape."""

    __tablename__ = "import_mappings"
    __table_args__ = (UniqueConstraint("app", "form", "name", name="uq_import_mappings_name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.key", ondelete="CASCADE"))
    form: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    created_by: Mapped[int | None] = mapped_column(Id)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ImportBatch(Base):
    """One import of one file: a named batch, run in the background in chunks (each chunk
    one transaction that also moves ``rows_done``, so a killed worker leaves no half chunk
    and a re-run continues after the last committed one), and revertible."""

    __tablename__ = "import_batches"
    __table_args__ = (Index("ix_import_batches_form", "app", "form", "created_at"),
                      Index("ix_import_batches_status", "status"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(64))
    form: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(255))  # the upload, under the data directory
    mapping: Mapped[dict[str, Any]] = mapped_column(Json)
    options: Mapped[dict[str, Any]] = mapped_column(Json)  # mode, key, atomic, sheet, …
    dry_run: Mapped[bool] = mapped_column(default=False)
    # queued · running · done · failed · cancelled · reverted
    status: Mapped[str] = mapped_column(String(16), default="queued")
    rows_total: Mapped[int | None] = mapped_column(Integer)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    preview: Mapped[list[Any] | None] = mapped_column(Json)  # first rows as they are stored
    error: Mapped[str | None] = mapped_column(String(2000))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    worker: Mapped[str | None] = mapped_column(String(64))  # who holds the lease
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    user_id: Mapped[int | None] = mapped_column(Id)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reverted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revert_report: Mapped[dict[str, Any] | None] = mapped_column(Json)


class ImportRow(Base):
    """A record an import created or updated (with the values it replaced and the version
    it left), so that a re-run skips it and a revert can undo it."""

    __tablename__ = "import_rows"
    __table_args__ = (UniqueConstraint("batch_id", "row", name="uq_import_rows_batch_row"),
                      Index("ix_import_rows_record", "record_id"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id", ondelete="CASCADE"))
    row: Mapped[int] = mapped_column(Integer)  # the row number in the file
    record_id: Mapped[int] = mapped_column(Id)
    action: Mapped[str] = mapped_column(String(8))  # created · updated
    before: Mapped[dict[str, Any] | None] = mapped_column(Json)  # stored values replaced
    version_after: Mapped[int] = mapped_column(Integer)


class ImportProblem(Base):
    """A row of an import that could not be stored, with its column and reason."""

    __tablename__ = "import_problems"
    __table_args__ = (Index("ix_import_problems_batch_row", "batch_id", "row"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id", ondelete="CASCADE"))
    row: Mapped[int] = mapped_column(Integer)
    column: Mapped[str | None] = mapped_column(String(8))  # the sheet's letter, e.g. "C"
    header: Mapped[str | None] = mapped_column(String(200))
    field: Mapped[str | None] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(String(1000))
    reason_en: Mapped[str | None] = mapped_column(String(1000))
