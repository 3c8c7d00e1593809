"""A record's timeline, as one viewer may read it, and the form engine's sources.

The order of events for one page (:func:`page`):

1. the record must be in the viewer's read scope (404 otherwise, as everywhere);
2. **related records**: one ``record_links`` query finds the records that link *to*
   this one (a customer's cases and follow-ups), the newest :data:`RELATED_PER_RELATION`
   per relation; then one scoped query per related form keeps only those the viewer may
   read (the form's read right and row scope, in SQL) and gives their titles;
3. every registered source of the asked kinds (``platform_core.timeline``) runs one
   statement over these records, after the cursor, newest first, page + 1 rows;
4. the answers are merged newest first; people are named with one query.

Field rights hold in every entry: a change shows only the fields the viewer may read, a
masked field masked on both sides, an encrypted one opened only with the keyring; an
attachment shows only when its field is readable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.orm import Session

from engine_forms import service
from engine_forms.forms import Published, published
from engine_forms.models import Attachment
from engine_forms.reading import iso
from engine_forms.service import Caller
from platform_core.errors import InvalidInput
from platform_core.models import Record, RecordHistory, RecordLink
from platform_core.timeline import (
    KINDS,
    SOURCES,
    Ask,
    Entry,
    Position,
    Subject,
    keyset,
    merge,
    register_source,
)

PAGE = 30
MAX_PAGE = 100
# a record's timeline includes the entries of at most this many linking records per
# relation (the newest), so a customer with thousands of follow-ups stays cheap
RELATED_PER_RELATION = 100
# what a related record's "created" entry shows besides its title
FACT_TYPES = ("date", "datetime", "select")
# detail keys that hold user ids (named on the page)
PEOPLE_KEYS = ("assignee_id", "from_user", "to_user", "user", "users")


class UnknownKind(InvalidInput):
    code = "unknown_kind"


@dataclass(frozen=True)
class FormView:
    """How the viewer reads one form (a subject's ``view``)."""

    pub: Published
    caller: Caller
    masked: frozenset[str]


def view_of(session: Session, caller: Caller, pub: Published) -> FormView:
    caller = service.narrowed(session, caller, pub)
    return FormView(pub, caller, service.masked_keys(pub, caller.access)
                    | frozenset(caller.lookup_masks))


def parse_kinds(raw: str | Iterable[str] | None) -> tuple[str, ...]:
    """``changes,flow`` → the kinds asked for; nothing means all; an unknown one is a
    clear error naming the known ones."""
    items = ([k.strip() for k in raw.split(",")] if isinstance(raw, str)
             else list(raw or ()))
    items = [k for k in items if k]
    bad = [k for k in items if k not in KINDS]
    if bad:
        raise UnknownKind(f"kinds: unknown kind {bad[0]!r} (known: {', '.join(KINDS)})",
                          field="kinds")
    return tuple(items) or KINDS


def page(session: Session, caller: Caller, pub: Published, record_id: int, *,
         kinds: tuple[str, ...] = KINDS, cursor: str | None = None, limit: int = PAGE,
         now: datetime | None = None) -> dict[str, Any]:
    """One page of the record's timeline, newest first: ``items``, ``next_cursor``
    (None on the last page) and ``people`` (user id → name) for the entries' actors."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit: between 1 and {MAX_PAGE}", field="limit")
    after = Position.decode(cursor) if cursor else None
    own = view_of(session, caller, pub)
    service.load_scoped(session, own.caller, pub, record_id, "read", include_deleted=True)
    subjects = [Subject(record_id, pub.app, pub.spec.key, view=own)]
    subjects += related(session, caller, pub.app, record_id)
    ask = Ask(subjects, limit + 1, after, now)
    batches = [source.fetch(session, ask) for _key, source in SOURCES.items()
               if source.kind in kinds]
    entries, next_position = merge(batches, limit)
    # a change of only fields the viewer cannot see is no entry for them (filtered after
    # the merge, so the cursor still moves past it)
    entries = [e for e in entries if e.action != "update" or e.changes]
    return {"items": entries, "next_cursor": next_position.encode() if next_position else None,
            "people": people(session, entries)}


def related(session: Session, caller: Caller, app: str, record_id: int) -> list[Subject]:
    """The records linking to ``record_id`` that the viewer may read, newest first per
    relation — one links query, then one scoped query per related form."""
    rank = func.row_number().over(partition_by=(RecordLink.field, Record.form),
                                  order_by=RecordLink.source_id.desc()).label("rank")
    linked = (select(RecordLink.source_id, Record.form, rank)
              .join(Record, Record.id == RecordLink.source_id)
              .where(RecordLink.target_id == record_id, RecordLink.source_id != record_id,
                     Record.app == app, Record.deleted_at.is_(None))).subquery()
    rows = session.execute(select(linked.c.source_id, linked.c.form)
                           .where(linked.c.rank <= RELATED_PER_RELATION)).all()
    by_form: dict[str, set[int]] = {}
    for source_id, form in rows:
        by_form.setdefault(form, set()).add(source_id)
    out = []
    for form, ids in sorted(by_form.items()):
        access = caller.principal.access(app, form)
        if not access.allows("read"):
            continue
        other = published(session, app, form)
        view = view_of(session, Caller(caller.principal, access, caller.keyring,
                                       caller.client), other)
        titles = service.titles(session, view.caller, other, ids)  # row scope, in SQL
        out += [Subject(i, app, form, related=True, title=titles[i], view=view)
                for i in sorted(titles, reverse=True)]
    return out


def people(session: Session, entries: list[Entry]) -> dict[int, str]:
    """The names of everyone the entries mention (one query)."""
    from platform_core.security.models import User

    ids: set[int] = set()
    for e in entries:
        if e.actor_id:
            ids.add(e.actor_id)
        for key in PEOPLE_KEYS:
            value = e.detail.get(key)
            ids |= {v for v in (value if isinstance(value, list) else [value])
                    if isinstance(v, int)}
        for c in e.changes:
            if c["field"] == "owner_id":
                ids |= {v for v in (c["from"], c["to"]) if isinstance(v, int)}
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
    return dict(rows.all())


def as_json(result: dict[str, Any]) -> dict[str, Any]:
    """The API's shape of a page."""
    names = result["people"]

    def doc(e: Entry) -> dict[str, Any]:
        s = e.subject
        return {"at": iso(e.at), "kind": e.kind, "action": e.action, "name": e.name,
                "record": {"app": s.app, "form": s.form, "id": s.id, "related": s.related,
                           "title": s.title},
                "actor": None if e.actor_id is None else
                {"id": e.actor_id, "name": names.get(e.actor_id)},
                "changes": e.changes, "detail": e.detail, "position": e.position.encode()}

    return {"items": [doc(e) for e in result["items"]],
            "next_cursor": result["next_cursor"]}


# -- the form engine's sources -------------------------------------------------------------


def _changes(session: Session, ask: Ask) -> list[Entry]:
    """修改: one entry per saved change (update, delete, restore, transfer, migrate)."""
    stmt = select(RecordHistory).where(RecordHistory.record_id.in_(ask.ids()))
    rows = session.execute(keyset(stmt, time_col=RecordHistory.at, id_col=RecordHistory.id,
                                  source="forms.changes", ask=ask)).scalars()
    subjects, out = ask.by_id(), []
    for h in rows:
        subject = subjects[h.record_id]
        view: FormView = subject.view
        diff = service.visible_diff(view.pub, view.caller, h.diff, view.masked)
        out.append(Entry(Position(h.at, "forms.changes", h.id), "changes", h.action,
                         subject, actor_id=h.actor_id, changes=_pairs(view.pub, diff)))
    return out


def _pairs(pub: Published, diff: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, pair in diff.items():
        if not isinstance(pair, list) or len(pair) != 2:
            continue
        spec = pub.spec.field(key)
        out.append({"field": key, "label": spec.label if spec is not None else None,
                    "from": pair[0], "to": pair[1]})
    return out


def _created(session: Session, ask: Ask) -> list[Entry]:
    """修改: the record's own creation."""
    ids = [s.id for s in ask.subjects if not s.related]
    return [Entry(Position(r.created_at, "forms.created", r.id), "changes", "create",
                  ask.subject(r.id), actor_id=r.created_by)
            for r in _records(session, ask, ids, "forms.created")]


def _related_created(session: Session, ask: Ask) -> list[Entry]:
    """跟进: a related record created (a follow-up with its summary and next date, a case
    opened for the customer) — its title and its dates/choices the viewer may read."""
    ids = [s.id for s in ask.subjects if s.related]
    out = []
    for r in _records(session, ask, ids, "forms.related"):
        subject = ask.subject(r.id)
        view: FormView = subject.view
        data = service.shape(view.pub, view.caller, [{"data": r.data}])[0]["data"]
        title = view.pub.spec.title_field
        facts = [{"field": f.key, "label": f.label, "type": f.type, "value": data[f.key]}
                 for f in view.pub.spec.fields
                 if f.type in FACT_TYPES and f.key != title and data.get(f.key) not in
                 (None, "", [])][:3]
        out.append(Entry(Position(r.created_at, "forms.related", r.id), "follow_ups",
                         "created", subject, actor_id=r.created_by, name=subject.title,
                         detail={"facts": facts}))
    return out


def _records(session: Session, ask: Ask, ids: list[int], source: str) -> list[Record]:
    if not ids:
        return []
    stmt = select(Record).where(Record.id.in_(ids))
    return list(session.execute(keyset(stmt, time_col=Record.created_at, id_col=Record.id,
                                       source=source, ask=ask)).scalars())


def _attachments(session: Session, ask: Ask) -> list[Entry]:
    """附件: a file added to a field the viewer may read."""
    readable = []
    views: dict[str, FormView] = {s.form: s.view for s in ask.subjects}
    for form, view in views.items():
        keys = [f.key for f in view.pub.spec.fields
                if f.type == "attachment" and view.caller.access.readable(f.key)]
        if keys:
            readable.append(and_(Attachment.form == form, Attachment.field.in_(keys)))
    stmt = select(Attachment).where(Attachment.record_id.in_(ask.ids()),
                                    or_(*readable) if readable else false())
    rows = session.execute(keyset(stmt, time_col=Attachment.created_at,
                                  id_col=Attachment.id, source="forms.attachments", ask=ask))
    out = []
    for a in rows.scalars():
        subject = ask.subject(a.record_id)
        spec = subject.view.pub.spec.field(a.field)
        out.append(Entry(Position(a.created_at, "forms.attachments", a.id), "attachments",
                         "attached", subject, actor_id=a.created_by, name=a.filename,
                         detail={"attachment_id": a.id, "field": a.field,
                                 "label": spec.label if spec is not None else a.field,
                                 "size": a.size, "content_type": a.content_type}))
    return out


def register_builtins() -> None:
    """The form engine's timeline sources (idempotent)."""
    register_source("forms.changes", "changes", _changes)
    register_source("forms.created", "changes", _created)
    register_source("forms.related", "follow_ups", _related_created)
    register_source("forms.attachments", "attachments", _attachments)
