"""Global search: one box finding records of every form the caller may read.

For a text typed in the top bar, for each app and form in turn:

1. the form is skipped unless the caller may ``read`` it;
2. the form's *searchable* fields that can match this text make one filter (see
   ``form_filter``) — no such field, no query: a text that is no phone number, ID number
   or e-mail never reaches a form whose only searchable field is a mobile;
3. one query through ``service.list_page`` — the caller's row scope, hidden fields,
   masks and encryption exactly as in the form's own list — newest first, ``limit + 1``
   rows (the extra one only says "more");
4. each hit is its title and one or two identifying values, as the caller sees them
   (masked where masked).

Searchable fields are those with an index (``indexed`` or ``unique``), so that every
query is answered from an expression index, not a scan of the form's records:

- phone, ID card and e-mail fields: **exact** match of the text as the field reads it
  (``138 0000 1234`` finds ``13800001234``); encrypted ones through their blind index;
- auto numbers (``LN-20261205-0001``): exact match;
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


def _variants(f: Any, text: str) -> list[str]:
    """An auto number is typed in any case (``ln-2026…``) but numbered in capitals."""
    return [text, text.upper()] if f.type == "auto_number" and text.upper() != text \
        else [text]


def _prefix(key: str, text: str) -> dict[str, Any]:
    return {"and": [{"field": key, "op": "gte", "value": text},
                    {"field": key, "op": "lt", "value": text + TOP}]}


def form_filter(pub: Published, access: FormAccess, text: str) -> tuple[Any, list[str]]:
    """The filter finding ``text`` in this form for a caller with ``access`` and the keys
    of the fields it looks into (exact matches first); ``(None, [])`` when no field can
    match — then there is no query."""
    exact: list[tuple[str, Any]] = []
    prefix: list[tuple[str, Any]] = []
    masked = service.masked_keys(pub, access)
    title = pub.spec.title_field
    for f in pub.spec.fields:
        if not access.readable(f.key) or not (f.indexed or f.unique) \
                or f.field_type.kind is None:
            continue
        sealed = bool(f.sensitive and f.sensitive.encrypt)
        if f.type in EXACT_TYPES:
            try:
                value = f.field_type.coerce(text, f)
            except ValueError:
                continue
            exact.append((f.key, {"field": f.key, "op": "eq", "value": value}))
        elif f.key == title and f.type in PREFIX_TYPES and not sealed \
                and f.key not in masked:
            for variant in _variants(f, text):
                prefix.append((f.key, _prefix(f.key, variant)))
        elif f.type in NUMBER_TYPES or (f.key == title and f.type in PREFIX_TYPES):
            for variant in _variants(f, text):
                exact.append((f.key, {"field": f.key, "op": "eq", "value": variant}))
    leaves = [leaf for _k, leaf in exact + prefix]
    keys = list(dict.fromkeys(k for k, _leaf in exact + prefix))
    if not leaves:
        return None, []
    return (leaves[0] if len(leaves) == 1 else {"or": leaves}), keys


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
    """One form's hits for ``text`` (one query), or None when no field can match."""
    filt, keys = form_filter(pub, caller.access, text)
    if filt is None:
        return None
    title = pub.spec.title_field
    readable_title = title is not None and caller.access.readable(title)
    shown = _shown_keys(pub, caller.access, keys)
    docs, _next = service.list_page(session, caller, pub, filter=filt, sort="-id",
                                    cursor=None, limit=limit + 1,
                                    fields=([title] if readable_title else []) + shown,
                                    deleted="exclude")
    found = FormHits(app=pub.app, form=pub.spec.key, pub=pub, more=len(docs) > limit)
    for doc in docs[:limit]:
        data = doc["data"]
        value = data.get(title) if readable_title else None
        found.hits.append(Hit(
            id=doc["id"], title=f"#{doc['id']}" if value in (None, "") else str(value),
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
