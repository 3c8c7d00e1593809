"""Values as people read them, the same on every page (lists, record pages, task pages,
drill-downs): option labels instead of codes, names of users and departments, titles of
linked records (linking to them), money as ``¥1,500,000.00`` with ``150 万元`` beside
it, dates and times in China time, 是/否, subtables as small tables.

``Shown`` is built once per page for a form and the documents it shows: it looks up the
names and titles those documents need in a few queries (one per kind, one per linked
form), each through the records service as the viewer, so a linked record the viewer
may not read shows as ``#id`` without a link, never with its title.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_forms import service
from engine_forms.forms import Published, published
from engine_forms.sealing import UNAVAILABLE, Unavailable
from engine_forms.service import Caller
from engine_forms.spec import FieldSpec
from frontend.i18n import _, current_locale
from platform_core.security.models import Department, User


def label_of(item: Any) -> str:
    """What metadata calls a field, a form, a section or an option, in the page's
    language: its ``labels`` entry for that language, else its own (Chinese) label."""
    if isinstance(item, dict):
        own, labels = item.get("label", ""), item.get("labels")
    else:
        own = getattr(item, "label", None) or getattr(item, "name", None) \
            or getattr(item, "section", "")
        labels = getattr(item, "labels", None)
    locale = current_locale()
    return (labels or {}).get(locale.split("-")[0], own) if locale != "zh-CN" else own


def wan(value: Any) -> str:
    """``1500000`` → ``150 万元`` (for amounts of ten thousand and more), else ``""``."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return ""
    if abs(amount) < 10_000:
        return ""
    text = f"{amount / 10_000:,.2f}".rstrip("0").rstrip(".")
    return _("{amount} 万元").format(amount=text)


def money(value: Any) -> str:
    try:
        return f"¥{Decimal(str(value)):,.2f}"
    except (InvalidOperation, ValueError):
        return str(value)


def record_url(app: str, form: str, record_id: int) -> str:
    return f"/apps/{app}/forms/{form}/records/{record_id}"


@dataclass
class Shown:
    """Display text for one form's documents on one page, as ``viewer`` may see them."""

    session: Session
    caller: Caller
    pub: Published
    masked: frozenset[str] = frozenset()
    users: dict[int, str] = field(default_factory=dict)
    departments: dict[int, str] = field(default_factory=dict)
    titles: dict[str, dict[int, str]] = field(default_factory=dict)  # target form → titles
    readable_forms: set[str] = field(default_factory=set)
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # field → files
    forms: dict[str, Published] = field(default_factory=dict)  # published forms, per page

    @classmethod
    def of(cls, session: Session, caller: Caller, pub: Published,
           docs: Iterable[Mapping[str, Any]], *, owners: bool = False) -> Shown:
        """``owners``: also the names of the records' owners and departments (a record
        page's header; a list shows only its columns)."""
        shown = cls(session, caller, pub, service.masked_keys(pub, caller.access)
                    | frozenset(caller.lookup_masks))
        viewer = caller.principal
        if viewer.user_id and viewer.display_name:  # mostly the owner: no query for them
            shown.users[viewer.user_id] = viewer.display_name
        shown.prepare(list(docs), owners=owners)
        return shown

    def prepare(self, docs: list[Mapping[str, Any]], *, owners: bool = False) -> None:
        users: set[int] = set()
        departments: set[int] = set()
        linked: dict[str, set[int]] = {}
        for doc in docs:
            if owners:
                users |= {doc.get(k) for k in ("owner_id", "created_by", "updated_by")
                          if isinstance(doc.get(k), int)}
                if isinstance(doc.get("department_id"), int):
                    departments.add(doc["department_id"])
            data = doc.get("data") or {}
            if doc.get("_unavailable") and isinstance(data, dict):
                # a value no key opens: its cell shows a marker, not a blank (values.text)
                data.update(dict.fromkeys(doc["_unavailable"], UNAVAILABLE))
            for f in self.pub.spec.fields:
                value = data.get(f.key)
                ids = _ids(value)
                if f.type == "user":
                    users |= ids
                elif f.type == "department":
                    departments |= ids
                elif f.type == "relation" and ids:
                    linked.setdefault(f.config["target"], set()).update(ids)
                elif f.type == "subtable" and isinstance(value, list):
                    for column in f.config["fields"]:
                        cells = {r.get(column["key"]) for r in value if isinstance(r, dict)}
                        found = {c for c in cells if isinstance(c, int)}
                        if column["type"] == "user":
                            users |= found
                        elif column["type"] == "department":
                            departments |= found
        self.add_users(users)
        self.add_departments(departments)
        for form, ids in linked.items():
            self.add_titles(form, ids)

    def add_files(self, data: Mapping[str, Any]) -> None:
        """The uploaded files an attachment field of ``data`` names (for one record)."""
        from engine_forms.models import Attachment

        wanted = {i for f in self.pub.spec.fields if f.type == "attachment"
                  for i in _ids(data.get(f.key))}
        if not wanted:
            return
        rows = self.session.execute(select(Attachment).where(
            Attachment.id.in_(wanted), Attachment.app == self.pub.app,
            Attachment.form == self.pub.spec.key)).scalars()
        base = f"/api/v1/apps/{self.pub.app}/forms/{self.pub.spec.key}/attachments/"
        for a in sorted(rows, key=lambda a: a.id):
            self.files.setdefault(a.field, []).append({
                "id": a.id, "name": a.filename, "size": a.size, "url": base + str(a.id),
                "image": a.content_type.startswith("image/"),
                "preview": preview_kind(a.content_type)})

    def add_users(self, ids: set[int]) -> None:
        wanted = ids - set(self.users)
        if wanted:
            self.users |= dict(self.session.execute(select(User.id, User.display_name)
                                                    .where(User.id.in_(wanted))).all())

    def add_departments(self, ids: set[int]) -> None:
        wanted = ids - set(self.departments)
        if wanted:
            self.departments |= dict(self.session.execute(
                select(Department.id, Department.name).where(Department.id.in_(wanted))).all())

    def form(self, key: str) -> Published:
        """A published form of this app, read once per page (each read is a query)."""
        if key not in self.forms:
            self.forms[key] = published(self.session, self.pub.app, key)
        return self.forms[key]

    def add_titles(self, form: str, ids: set[int]) -> None:
        target = self.form(form)
        access = self.caller.principal.access(self.pub.app, form)
        if access.allows("read"):
            self.readable_forms.add(form)
        caller = Caller(self.caller.principal, access, self.caller.keyring)
        self.titles.setdefault(form, {}).update(
            service.titles(self.session, caller, target, ids))

    # -- text --------------------------------------------------------------------------

    def user(self, user_id: Any) -> str:
        return self.users.get(user_id, f"#{user_id}") if user_id else ""

    def department(self, department_id: Any) -> str:
        return self.departments.get(department_id, f"#{department_id}") if department_id \
            else ""

    def title(self, form: str, record_id: int) -> Markup:
        """A linked record's title linking to it, or ``#id`` when the viewer may not
        read it."""
        found = self.titles.get(form, {}).get(record_id)
        if found is None:
            return Markup(f'<span class="muted">#{int(record_id)}</span>')
        # f-strings of escaped parts: Markup.format is several times slower, per cell
        return Markup(f'<a href="{escape(record_url(self.pub.app, form, record_id))}">'
                      f'{escape(found)}</a>')

    def text(self, f: FieldSpec, value: Any, *, full: bool = False) -> Markup:
        """``value`` of field ``f`` for reading (HTML-safe); ``full`` shows subtables and
        attachments in full (record page) instead of a count (list cell)."""
        if isinstance(value, Unavailable):
            shown = escape(_("无法解密"))  # outside the f-string, where Babel finds it
            return Markup(f'<span class="muted" data-unavailable>{shown}</span>')
        if value is None or value == "" or value == []:
            return Markup("")
        if f.key in self.masked and isinstance(value, str):
            return escape(value)
        return self._typed(f, value, full)

    def _typed(self, f: FieldSpec, value: Any, full: bool) -> Markup:
        kind = f.type
        if kind == "formula":
            kind = {"money": "money", "boolean": "boolean"}.get(
                f.config.get("result_kind", ""), "plain")
        if kind == "money":
            hint = wan(value)
            extra = f' <small class="muted">({escape(hint)})</small>' if hint else ""
            return Markup(f"{escape(money(value))}{extra}")
        if kind == "boolean":
            return escape(_("是") if value else _("否"))
        if kind == "textarea" and full:  # HTML folds line breaks into spaces
            return Markup("<br>").join(escape(line) for line in str(value).split("\n"))
        if kind == "user":
            return escape(self.user(value))
        if kind == "department":
            return escape(self.department(value))
        if kind == "relation":
            ids = ids_of(value)
            return Markup("、").join(self.title(f.config["target"], i) for i in ids)
        if kind == "select":
            return _chip(f, value)
        if kind == "multiselect":
            return Markup(" ").join(_chip(f, v) for v in value)
        if kind == "subtable":
            return self._subtable(f, value) if full else escape(
                _("{n} 行").format(n=len(value)))
        if kind == "attachment":
            files = self.files.get(f.key) if full else None
            if files:
                return Markup("").join(Markup(
                    '<a class="file" href="{}"{}>{}</a>').format(
                    x["url"], _preview_attribute(x["preview"]), x["name"]) for x in files)
            return escape(_("{n} 个文件").format(n=len(value)))
        if kind == "lookup":
            return self._lookup(f, value, full)
        if kind == "rollup":
            return self._rollup(f, value)
        if kind == "phone" and full:  # a tap calls (a masked number is no link)
            return Markup(f'<a href="tel:{escape(value)}">{escape(value)}</a>')
        if kind == "email" and full:
            return Markup(f'<a href="mailto:{escape(value)}">{escape(value)}</a>')
        if kind == "plain":
            return escape(str(value))
        return escape(f.field_type.format(value, f))

    def _lookup(self, f: FieldSpec, value: Any, full: bool) -> Markup:
        relation = self.pub.spec.field(f.config["relation"])
        source = self.form(relation.config["target"]).spec.field(f.config["field"]) \
            if relation is not None else None
        if source is None or (f.key in self.masked and isinstance(value, str)):
            return escape(str(value))
        return self._typed(source, value, full)

    def _rollup(self, f: FieldSpec, value: Any) -> Markup:
        if f.config["aggregate"] != "count" and f.config.get("field"):
            source = self.form(f.config["source"]).spec.field(f.config["field"])
            if source is not None and source.type == "money":
                return self._typed(source, value, False)
        return escape(f"{value:,}" if isinstance(value, int) else str(value))

    def _subtable(self, f: FieldSpec, rows: list[Any]) -> Markup:
        columns = subtable_columns(f)
        labels = [escape(label_of(c)) for c in columns]
        head = "".join(f"<th>{label}</th>" for label in labels)
        body = "".join(
            "<tr>" + "".join(f'<td data-label="{label}">{self.text(c, r.get(c.key))}</td>'
                             for c, label in zip(columns, labels, strict=True)) + "</tr>"
            for r in rows if isinstance(r, dict))
        return Markup(f'<table class="subtable cards"><thead><tr>{head}</tr></thead>'
                      f"<tbody>{body}</tbody></table>")


def preview_kind(content_type: str) -> str:
    """How the preview dialog shows a file of this type: ``pdf``, ``image`` or not at all
    (``""``: its link just downloads it). ``static/workspace.js`` says the same of an upload."""
    if content_type == "application/pdf":
        return "pdf"
    return "image" if content_type.startswith("image/") else ""


def _preview_attribute(kind: str) -> Markup:
    return Markup(f' data-preview="{kind}"') if kind else Markup("")


def subtable_columns(f: FieldSpec) -> list[FieldSpec]:
    """A subtable's columns as field specs (built once per subtable field spec)."""
    key = id(f)
    cached = _COLUMNS.get(key)
    if cached is None or cached[0] is not f:
        if len(_COLUMNS) > 1024:
            _COLUMNS.clear()
        cached = _COLUMNS[key] = (f, [FieldSpec.model_validate(c) for c in f.config["fields"]])
    return cached[1]


_COLUMNS: dict[int, tuple[FieldSpec, list[FieldSpec]]] = {}


def _chip(f: FieldSpec, value: Any) -> Markup:
    label = next((label_of(o) for o in f.config.get("options", []) if o["value"] == value),
                 str(value))
    return Markup(f'<span class="chip">{escape(label)}</span>')


def ids_of(value: Any) -> list[int]:
    """Record, user or department ids in a value (as stored, or as typed in a page)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for v in items:
        if isinstance(v, str) and v.strip().isdecimal():
            v = int(v)
        if isinstance(v, int) and not isinstance(v, bool):
            out.append(v)
    return out


def _ids(value: Any) -> set[int]:
    return set(ids_of(value))
