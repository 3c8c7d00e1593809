"""Global search: one box finding records of every form the caller may read.

For a text typed in the top bar, for each app and form in turn:

1. the form is skipped unless the caller may ``read`` it;
2. the form's *searchable* fields that can match this text make one filter (see
   ``form_filters``) — no such field, no query: a text that is no phone number, ID number
   or e-mail never reaches a form whose only searchable field is a mobile;
3. one query per field looked into (in practice one per form) through
   ``service.list_page`` — the caller's row scope, hidden fields, masks and encryption
   exactly as in the form's own list — newest first, ``limit + 1`` rows (the extra one
   only says "more");
4. each hit is its title and one or two identifying values, as the caller sees them
   (masked where masked).

Searchable fields are those with an index (``indexed`` or ``unique``), so that every
query is answered from an expression index, not a scan of the form's records:

- phone, ID card and e-mail fields: **exact** match of the text as the field reads it
  (``138 0000 1234`` finds ``13800001234``); encrypted ones through their blind index;
  a text read so by a field of the form is looked for there only;
- auto numbers (``LN-20261205-0001``): exact match, in capitals;
- the title (text or auto number): **prefix** match, as a range ``title >= text AND
  title < text + U+10FFFF`` — the index's own order (code points: ``C`` collation on
  PostgreSQL, binary on SQLite), so exact, and a range seek in the index. A masked or
  encrypted title is matched exactly only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from engine_forms import forms as forms_handler
from engine_forms import service
from engine_forms.forms import Published
from engine_forms.service import Caller
from platform_core.security.crypto import Keyring
from platform_core.security.permissions import FormAccess
from platform_core.security.principal import Principal

EXACT_TYPES = frozenset({"phone", "id_card", "email"})
NUMBER_TYPES = frozenset({"auto_number"})
PREFIX_TYPES = frozenset({"text", "auto_number"})
MAX_TEXT = 100
PER_FORM = 5
MAX_PER_FORM = 20
TOP = "\U0010ffff"  # the highest code point: ``text + TOP`` is above every ``text…``


@dataclass
class Hit:
    """One record found: its title and a few identifying values (label, shown value)."""

    id: int
    title: str
    values: list[tuple[str, Any]]


@dataclass
class FormHits:
    """The hits of one form, newest first; ``more`` when there were more than shown."""

    app: str
    form: str
    pub: Published
    hits: list[Hit] = field(default_factory=list)
    more: bool = False


def _prefix(key: str, text: str) -> dict[str, Any]:
    return {"and": [{"field": key, "op": "gte", "value": text},
                    {"field": key, "op": "lt", "value": text + TOP}]}


def form_filters(pub: Published, access: FormAccess, text: str) -> list[tuple[str, Any]]:
    """The filters finding ``text`` in this form for a caller with ``access``, one per
    field looked into (``(key, filter)``); none when no field can match — then no query.

    A text that a phone, ID or e-mail field of the form reads as its value is looked for
    there only (not also as the start of a title: no name starts with a mobile number).
    An auto number is matched in capitals (``ln-…`` finds ``LN-…``)."""
    exact: list[tuple[str, Any]] = []
    prefix: list[tuple[str, Any]] = []
    masked = service.masked_keys(pub, access)
    title = pub.spec.title_field
    for f in pub.spec.fields:
        if not access.readable(f.key) or not (f.indexed or f.unique) \
                or f.field_type.kind is None:
            continue
        sealed = bool(f.sensitive and f.sensitive.encrypt)
        value = text.upper() if f.type == "auto_number" else text
        if f.type in EXACT_TYPES:
            try:
                exact.append((f.key, {"field": f.key, "op": "eq",
                                      "value": f.field_type.coerce(text, f)}))
            except ValueError:
                continue
        elif f.key == title and f.type in PREFIX_TYPES and not sealed \
                and f.key not in masked:
            prefix.append((f.key, _prefix(f.key, value)))
        elif f.type in NUMBER_TYPES or (f.key == title and f.type in PREFIX_TYPES):
            exact.append((f.key, {"field": f.key, "op": "eq", "value": value}))
    return exact if any(pub.spec.field(k).type in EXACT_TYPES for k, _f in exact) \
        else exact + prefix


def _shown_keys(pub: Published, access: FormAccess, matched: list[str]) -> list[str]:
    """The identifying fields shown beside the title: the searched ones, then the phone,
    ID, e-mail and number fields the caller may read — two at most."""
    title = pub.spec.title_field
    keys = [k for k in matched if k != title]
    keys += [f.key for f in pub.spec.fields if f.type in EXACT_TYPES | NUMBER_TYPES
             and f.key != title and access.readable(f.key) and f.key not in keys]
    return keys[:2]


def search_form(session: Session, caller: Caller, pub: Published, text: str, *,
                limit: int = PER_FORM) -> FormHits | None:
    """One form's hits for ``text``, or None when no field can match (no query).

    One query per field looked into — in practice one: a form rarely has two fields that
    read the same text (two mobiles). Not one query with ``OR``: SQLite answers ``a = ? OR
    b = ?`` newest first by walking the whole form in id order rather than through the
    two indexes, which costs seconds at a million records."""
    filters = form_filters(pub, caller.access, text)
    if not filters:
        return None
    keys = list(dict.fromkeys(k for k, _f in filters))
    title = pub.spec.title_field
    readable_title = title is not None and caller.access.readable(title)
    shown = _shown_keys(pub, caller.access, keys)
    found = FormHits(app=pub.app, form=pub.spec.key, pub=pub)
    docs: dict[int, dict[str, Any]] = {}
    for _key, filt in filters:
        page, _next = service.list_page(
            session, caller, pub, filter=filt, sort="-id", cursor=None, limit=limit + 1,
            fields=([title] if readable_title else []) + shown, deleted="exclude")
        docs |= {d["id"]: d for d in page}
    newest = sorted(docs, reverse=True)
    found.more = len(newest) > limit
    for record_id in newest[:limit]:
        data = docs[record_id]["data"]
        value = data.get(title) if readable_title else None
        found.hits.append(Hit(
            id=record_id, title=f"#{record_id}" if value in (None, "") else str(value),
            values=[(k, data[k]) for k in shown if data.get(k) not in (None, "")]))
    return found


def search(session: Session, principal: Principal, keyring: Keyring | None, text: str, *,
           limit: int = PER_FORM, client: str | None = None) -> list[FormHits]:
    """Every readable form's hits for ``text``, form by form in app and form order; forms
    without a hit are left out."""
    text = text.strip()[:MAX_TEXT]
    if not text:
        return []
    limit = max(1, min(limit, MAX_PER_FORM))
    out: list[FormHits] = []
    for app in forms_handler.list_apps(session):
        for form in forms_handler.list_forms(session, app.key):
            if form.published_version is None:
                continue
            access = principal.access(app.key, form.key)
            if not access.allows("read"):
                continue
            pub = forms_handler.published(session, app.key, form.key)
            caller = Caller(principal, access, keyring, client)
            found = search_form(session, caller, pub, text, limit=limit)
            if found is not None and found.hits:
                out.append(found)
    return out


def as_json(results: list[FormHits]) -> dict[str, Any]:
    """The API's answer: per form its key, name and hits (values keyed by field)."""
    return {"groups": [
        {"app": r.app, "form": r.form, "form_name": r.pub.spec.name, "more": r.more,
         "items": [{"id": h.id, "title": h.title, "values": dict(h.values),
                    "url": f"/apps/{r.app}/forms/{r.form}/records/{h.id}"} for h in r.hits]}
        for r in results]}
