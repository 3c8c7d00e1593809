"""The 360° view around a record's fields, from its form's ``view`` (``engine_forms.view``):
the header's key fields, tags and status, the figure cards, the related lists and the
quick actions.

Everything is read as the viewer may: a related list of a form they cannot read is left
out, its rows are within their row scope there, hidden fields are absent and masked ones
masked. A related list costs at most three statements — the linked ids (``record_links``,
indexed by target), one page of them through the form's scoped list query, and a count only
when the page is full — whatever the number of linked records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_forms import service
from engine_forms.forms import Published, published
from engine_forms.service import Caller
from engine_forms.view import RecordView, Related
from frontend.i18n import _
from frontend.workspace.pages_list import cells, default_columns
from frontend.workspace.values import Shown, label_of, money, record_url, wan
from platform_core.db import dumps
from platform_core.errors import DomainError
from platform_core.models import RecordLink

MAX_LINKED = 1000  # the newest linked records a related list looks at


@dataclass
class Figure:
    label: str
    text: Markup


@dataclass
class RelatedList:
    key: str  # form.via: the element ids
    label: str
    columns: list[Any]
    rows: list[Markup]
    total: int
    all_url: str
    new_url: str | None


@dataclass
class QuickAction:
    kind: str  # create | upload | message
    label: str
    url: str
    field: str | None = None
    accept: str = ""


@dataclass
class View360:
    facts: list[Figure] = field(default_factory=list)
    tags: Markup = Markup("")
    status: Markup = Markup("")
    cards: list[Figure] = field(default_factory=list)
    related: list[RelatedList] = field(default_factory=list)
    actions: list[QuickAction] = field(default_factory=list)


def _label(spec: Any, default: str) -> str:
    """A view item's own label in the page's language, else ``default``."""
    return label_of(spec) if spec.label else default


def build(s: Session, caller: Caller, pub: Published, doc: dict[str, Any],
          shown: Shown) -> View360 | None:
    """The view of ``doc`` (already read as ``caller``), or None if the form has none."""
    view: RecordView | None = pub.spec.view
    if view is None:
        return None
    data, access = doc["data"], caller.access
    out = View360()
    for key in view.header.fields:
        f = pub.spec.field(key)
        if f is not None and access.readable(key):
            out.facts.append(Figure(label_of(f), shown.text(f, data.get(key), full=True)))
    for attr in ("tags", "status"):
        key = getattr(view.header, attr)
        f = pub.spec.field(key) if key else None
        if f is not None and access.readable(f.key):
            setattr(out, attr, shown.text(f, data.get(f.key)))
    for card in view.cards:
        f = pub.spec.field(card.field)
        if f is not None and access.readable(f.key):
            out.cards.append(Figure(_label(card, label_of(f)), _figure(s, shown, f,
                                                                     data.get(f.key))))
    here = record_url(pub.app, pub.spec.key, doc["id"])
    for rel in view.related:
        found = _related(s, caller, pub, rel, doc["id"], here)
        if found is not None:
            out.related.append(found)
    out.actions = _actions(s, caller, pub, view, doc["id"], here)
    return out


def _figure(s: Session, shown: Shown, f: Any, value: Any) -> Markup:
    """A card's figure: an amount of money in 万元 (what people here say), the exact
    amount under it; anything else as the record page shows it."""
    if value is not None and _is_money(s, shown, f) and wan(value):
        return Markup("{}<small>{}</small>").format(wan(value), money(value))
    return shown.text(f, value)


def _is_money(s: Session, shown: Shown, f: Any) -> bool:
    if f.type == "formula":
        return f.config.get("result_kind") == "money"
    if f.type == "rollup" and f.config.get("aggregate") != "count" and f.config.get("field"):
        try:
            source = published(s, shown.pub.app, f.config["source"]).spec.field(
                f.config["field"])
        except DomainError:
            return False
        return source is not None and source.type == "money"
    return f.type == "money"


def _target(s: Session, pub: Published, form: str, via: str) -> Published | None:
    """The form ``form`` if its field ``via`` is a relation to ``pub``'s form."""
    try:
        target = published(s, pub.app, form)
    except DomainError:
        return None
    spec = target.spec.field(via)
    if spec is None or spec.type != "relation" or spec.config.get("target") != pub.spec.key:
        return None
    return target


def _related(s: Session, caller: Caller, pub: Published, rel: Related, record_id: int,
             here: str) -> RelatedList | None:
    target = _target(s, pub, rel.form, rel.via)
    if target is None:
        return None
    principal = caller.principal
    access = principal.access(pub.app, rel.form)
    if not access.allows("read") or not access.readable(rel.via):
        return None
    their = Caller(principal, access, caller.keyring, caller.client)
    ids = list(s.execute(select(RecordLink.source_id).where(
        RecordLink.target_id == record_id, RecordLink.field == rel.via)
        .order_by(RecordLink.source_id.desc()).limit(MAX_LINKED)).scalars())
    columns = [k for k in rel.columns if access.readable(k)] or \
        default_columns(target, access)
    docs: list[dict[str, Any]] = []
    total = 0
    if ids:
        where = {"field": "id", "op": "in", "value": ids}
        docs, _next = service.list_page(s, their, target, filter=where, sort=[rel.sort],
                                        cursor=None, limit=rel.limit, fields=columns,
                                        deleted="exclude")
        total = len(docs) if len(docs) < rel.limit else service.count(
            s, their, target, filter=where)
    shown = Shown.of(s, service.narrowed(s, their, target), target, docs)
    specs = [f for k in columns if (f := target.spec.field(k)) is not None]
    link = {"field": rel.via, "op": "eq", "value": record_id}
    base = f"/apps/{pub.app}/forms/{rel.form}"
    new_url = None
    if rel.new and access.allows("create") and access.writable(rel.via):
        new_url = f"{base}/new?" + urlencode({rel.via: record_id, "back": here})
    return RelatedList(key=f"{rel.form}-{rel.via}", label=_label(rel, label_of(target.spec)),
                       columns=specs, rows=cells(target, columns, docs, shown, bulky=False),
                       total=total, all_url=f"{base}?" + urlencode({"filter": dumps(link)}),
                       new_url=new_url)


def _actions(s: Session, caller: Caller, pub: Published, view: RecordView, record_id: int,
             here: str) -> list[QuickAction]:
    out = []
    principal = caller.principal
    for action in view.actions:
        if action.type == "create" and action.form and action.via:
            target = _target(s, pub, action.form, action.via)
            access = principal.access(pub.app, action.form)
            if target is None or not access.allows("create") or \
                    not access.writable(action.via):
                continue
            query = {action.via: record_id, "back": here}
            if action.start_flow:
                query["flow"] = action.start_flow
            out.append(QuickAction("create", _label(action, _("新建{name}").format(
                name=label_of(target.spec))),
                f"/apps/{pub.app}/forms/{action.form}/new?" + urlencode(query)))
        elif action.type == "upload" and action.field:
            f = pub.spec.field(action.field)
            if f is None or not caller.access.allows("update") or \
                    not caller.access.writable(f.key):
                continue
            accept = ",".join(f.config.get("accept") or [])
            out.append(QuickAction("upload", _label(action, _("上传{name}").format(
                name=label_of(f))), f"{here}/upload/{f.key}", field=f.key, accept=accept))
        elif action.type == "message" and caller.access.allows("read"):
            query = urlencode([("rule", k) for k in action.rules or ()])
            out.append(QuickAction("message", _label(action, _("发送消息")),
                                   f"{here}/message" + (f"?{query}" if query else "")))
    return out
