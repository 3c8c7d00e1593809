"""Saved lists ("views") of a form and the records a person opened lately.

A view is the list page's own query string (conditions, columns, sort, search), so
opening it is following a link and it never goes stale when the form changes: unknown
fields in it are ignored by the list page as in any URL. Everyone keeps their own
views; an administrator or the form's manager may publish one to roles, and then
those roles see it beside their own.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from engine_forms.models import ListView, RecentRecord
from platform_core.db import Database
from platform_core.errors import DomainError, InvalidInput, NotFound
from platform_core.models import Record, utcnow
from platform_core.security.principal import Principal

MAX_VIEWS = 50
KEEP_RECENT = 20


def can_publish(principal: Principal, app: str, form: str) -> bool:
    return principal.is_admin or principal.access(app, form).allows("manage")


def visible_views(session: Session, principal: Principal, app: str,
                  form: str) -> list[ListView]:
    """The person's own views of the form, then those published to one of their roles
    (all published ones for an administrator)."""
    rows = session.execute(select(ListView).where(
        ListView.app == app, ListView.form == form,
        or_(ListView.owner_id == principal.user_id, ListView.roles.is_not(None)))
        .order_by(ListView.owner_id.is_(None), ListView.name)).scalars().all()
    mine = set(principal.roles)
    return [v for v in rows if v.owner_id == principal.user_id or principal.is_admin
            or (v.roles and mine & set(v.roles))]


def save_view(session: Session, principal: Principal, app: str, form: str, *, name: str,
              query: str, roles: list[str]) -> ListView:
    name = name.strip()[:100]
    if not name:
        raise InvalidInput("a view needs a name", field="name")
    if len(query) > 4000:
        raise InvalidInput("this list's conditions are too long to save", field="query")
    if roles and not can_publish(principal, app, form):
        raise InvalidInput("only an administrator or the form's manager may publish a view "
                           "to roles", field="roles")
    count = len(visible_views(session, principal, app, form))
    if count >= MAX_VIEWS:
        raise InvalidInput(f"at most {MAX_VIEWS} views per form", field="name")
    view = ListView(app=app, form=form, name=name, query=query.lstrip("?"),
                    owner_id=None if roles else principal.user_id, roles=roles or None)
    session.add(view)
    session.flush()
    return view


def delete_view(session: Session, principal: Principal, app: str, form: str,
                view_id: int) -> None:
    view = session.get(ListView, view_id)
    if view is None or (view.app, view.form) != (app, form) or not (
            view.owner_id == principal.user_id
            or (view.owner_id is None and can_publish(principal, app, form))):
        raise NotFound(f"view {view_id} does not exist", view_id=view_id)
    session.delete(view)


def remember(session: Session, user_id: int, record_id: int,
             now: datetime | None = None) -> None:
    """Note that the user opened the record at ``now`` (their last 20 are kept): one
    UPDATE when they opened it before, else an INSERT and the trimming of their oldest."""
    now = now or utcnow()
    touched = session.execute(update(RecentRecord).where(
        RecentRecord.user_id == user_id, RecentRecord.record_id == record_id)
        .values(opened_at=now).execution_options(synchronize_session=False)).rowcount
    if touched:
        return
    session.add(RecentRecord(user_id=user_id, record_id=record_id, opened_at=now))
    session.flush()
    old = select(RecentRecord.id).where(RecentRecord.user_id == user_id).order_by(
        RecentRecord.opened_at.desc()).offset(KEEP_RECENT)
    session.execute(delete(RecentRecord).where(RecentRecord.id.in_(old.scalar_subquery()))
                    .execution_options(synchronize_session=False))


def recent(session: Session, user_id: int, limit: int = 8) -> list[dict[str, Any]]:
    """The user's recently opened live records, newest first (app, form, id)."""
    rows = session.execute(select(Record.id, Record.app, Record.form).join(
        RecentRecord, RecentRecord.record_id == Record.id).where(
        RecentRecord.user_id == user_id, Record.deleted_at.is_(None)).order_by(
        RecentRecord.opened_at.desc()).limit(limit)).all()
    return [{"id": i, "app": a, "form": f} for i, a, f in rows]


class RecentLog:
    """Records opened, written behind the pages: a record page notes the opening in
    memory and the notes go to the database together, one transaction at most every
    ``every`` seconds (or at ``most`` notes), instead of one write transaction per page
    view. Reading the list (the home page) writes what is pending first, so a person
    always sees the record they just opened. Best effort: a note still in memory when the
    process stops is lost, which costs a line of "recently opened", never data."""

    def __init__(self, db: Database, *, every: float = 2.0, most: int = 200) -> None:
        self.db, self.every, self.most = db, every, most
        self._pending: dict[tuple[int, int], datetime] = {}
        self._lock = threading.Lock()
        self._flushed = time.monotonic()

    def note(self, user_id: int, record_id: int) -> None:
        with self._lock:
            self._pending[(user_id, record_id)] = utcnow()
            due = (len(self._pending) >= self.most
                   or time.monotonic() - self._flushed >= self.every)
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            self._flushed = time.monotonic()
        if not pending:
            return
        try:
            with self.db.write() as s:
                for (user_id, record_id), at in sorted(pending.items(), key=lambda i: i[1]):
                    remember(s, user_id, record_id, at)
        except (DomainError, SQLAlchemyError):  # e.g. a user or record gone since
            logging.getLogger("qiao.pages").info("%d recently opened records not noted",
                                                 len(pending))


def recent_log(app: Any) -> RecentLog:
    """The app's log of opened records (one per running app)."""
    log = getattr(app.state, "recent_log", None)
    if log is None:
        log = app.state.recent_log = RecentLog(app.state.qiao.db)
    return log
