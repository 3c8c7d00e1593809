"""Tables of the report engine: reports and dashboards (current spec plus immutable
versions) and the log of scheduled report e-mails (one row per report and period, so a
weekly e-mail goes out once however many workers or restarts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from platform_core.models import Base, Id, Json, utcnow


class _Definition:
    """A definition of an app: its current spec and version (the versions are kept in
    ``report_versions``)."""

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.key", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Report(_Definition, Base):
    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("app", "key", name="uq_reports_app_key"),)


class Dashboard(_Definition, Base):
    __tablename__ = "dashboards"
    __table_args__ = (UniqueConstraint("app", "key", name="uq_dashboards_app_key"),)


class SpecVersion(Base):
    """One saved, immutable version of a report or a dashboard."""

    __tablename__ = "report_versions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.key", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # report | dashboard
    key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    saved_by: Mapped[int | None] = mapped_column(Id)

    __table_args__ = (UniqueConstraint("app", "kind", "key", "version",
                                       name="uq_report_versions_app_kind_key_version"),)


class ReportDelivery(Base):
    """A scheduled report e-mail for one period (``2026-W48``): sent once."""

    __tablename__ = "report_deliveries"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.key", ondelete="CASCADE"))
    report: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(32))
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # sent | failed
    error: Mapped[str | None] = mapped_column(String(2000))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("app", "report", "period",
                                       name="uq_report_deliveries_app_report_period"),)
