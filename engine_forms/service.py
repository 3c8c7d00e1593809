"""The records service: permission check → handler → audit, in the caller's transaction.

The route's rule (``platform_core.security.guard``) has already checked the form action;
here the rest of the authorization happens, always the same way:

- **rows**: the action's row scope is one more filter in the same SQL query, so a record
  outside it is "not found" (404, exactly like a record that does not exist);
- **fields**: hidden fields are absent from every output; naming one in a filter, sort,
  projection or write is refused as "not permitted" (422 ``field_not_permitted``: the
  key is in the form's definition anyway, its values never are); a write to a field
  that is read-only for the caller is refused (403), and so is any system key (id,
  owner, department, versions, timestamps);
- **masking**: fields flagged ``mask`` are shown masked unless the caller may unmask;
  they cannot be sorted or range-filtered (the order would leak them), and unmasking one
  value is an audited action;
- **encryption**: fields flagged ``encrypt`` are sealed before writing and opened for
  output (``engine_forms.sealing``).

Every change, export and unmasking is appended to the audit log in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.orm import Session

from engine_forms import records as handler
from engine_forms.forms import Published, published
from engine_forms.probing import rationed
from engine_forms.reading import present
from engine_forms.sealing import EXACT_OPS, FieldCrypt
from platform_core.errors import InvalidInput, NotFound, QueryError
from platform_core.models import Record
from platform_core.security import audit
from platform_core.security.crypto import Keyring
from platform_core.security.permissions import Forbidden, FormAccess
from platform_core.security.principal import Principal, row_filter
from platform_core.store import Query, query_records
from platform_core.store.fields import SYSTEM_FIELDS
from platform_core.store.query import TitleSort, check_shape


class FieldReadOnly(Forbidden):
    code = "field_read_only"


class SystemField(InvalidInput):
    code = "system_field"


class FieldNotPermitted(InvalidInput):
    """A field of the form that the caller's roles hide, named in a filter, sort,
    projection or write. Its key is part of the form's definition, so "unknown field"
    would mislead without hiding anything; its values stay out of every answer."""

    code, title = "field_not_permitted", "Field not permitted"

    def __init__(self, key: str, *, path: str | None = None):
        where = f"{path}: " if path else ""
        super().__init__(f"{where}field {key!r} is not permitted", field=key,
                         **({"path": path} if path else {}))


def _refuse_unreadable(pub: Published, access: FormAccess, key: str, path: str) -> None:
    """Nothing for a field the caller can read; otherwise "not permitted" for a field of
    the form, "unknown field" for one that is not."""
    if _readable(pub, access, key):
        return
    if pub.spec.field(key) is not None:
        raise FieldNotPermitted(key, path=path)
    raise QueryError(f"unknown field {key!r} of form {pub.spec.key}", path=path)


@dataclass(frozen=True)
class Caller:
    """Who acts on a form, with what rights, from where."""

    principal: Principal
    access: FormAccess
    keyring: Keyring | None
    client: str | None = None
    # lookups showing a field masked for the caller in its own form → that field's spec
    lookup_masks: Mapping[str, Any] = field(default_factory=dict)

    def crypt(self, pub: Published) -> FieldCrypt:
        return FieldCrypt(pub, self.keyring)

    def audit(self, session: Session, action: str, pub: Published, record_id: int | None,
              **detail: Any) -> None:
        target = f"{pub.app}.{pub.spec.key}" + (f"/{record_id}" if record_id else "")
        audit.append(session, actor=self.principal.actor, action=action, target=target,
                     detail=detail, client=self.client)


# -- fields ------------------------------------------------------------------------------


def masked_keys(pub: Published, access: FormAccess) -> frozenset[str]:
    """Fields shown masked to this caller: those flagged ``mask`` unless they may unmask,
    and those their roles give at level ``masked`` (always, whatever else they hold)."""
    by_level = frozenset(f.key for f in pub.spec.fields if access.level(f.key) == "masked") \
        if access.masks() else frozenset()
    if access.allows("unmask"):
        return by_level
    return by_level | frozenset(f.key for f in pub.spec.fields
                                if f.sensitive and f.sensitive.mask)


def _readable(pub: Published, access: FormAccess, key: str) -> bool:
    return key in SYSTEM_FIELDS or (pub.spec.field(key) is not None and access.readable(key))


def _leaves(node: Any, path: str) -> Iterator[tuple[Any, Any, str]]:
    if not isinstance(node, dict):
        return
    for op in ("and", "or"):
        if isinstance(node.get(op), list):
            for i, child in enumerate(node[op]):
                yield from _leaves(child, f"{path}.{op}[{i}]")
    if "not" in node:
        yield from _leaves(node["not"], f"{path}.not")
    if "field" in node:
        yield node.get("field"), node.get("op"), path


def _sort_keys(sort: Any) -> list[Any]:
    items = sort.split(",") if isinstance(sort, str) else sort if isinstance(sort, list) else []
    # keys that are not strings are left to the store, which names them as malformed
    keys = [i.removeprefix("-") if isinstance(i, str) else i.get("field")
            for i in items if isinstance(i, str | dict)]
    return [k for k in keys if isinstance(k, str)]


def check_query(pub: Published, access: FormAccess, *, filter: Any, sort: Any,
                fields: list[str] | None) -> None:
    """Refuse filtering, sorting or projecting by a field the caller cannot see (it
    would leak values through which rows match or their order)."""
    check_shape(filter)  # from here on every leaf names its field and operator by strings
    masked = masked_keys(pub, access)
    sealed = {f.key for f in pub.spec.fields if f.sensitive and f.sensitive.encrypt}
    for key, op, path in _leaves(filter, "filter"):
        _refuse_unreadable(pub, access, key, path)
        if key in masked and op not in EXACT_OPS:
            raise QueryError(f"{key} is masked for you: only exact matches are possible",
                             path=path)
    for i, key in enumerate(_sort_keys(sort)):
        _refuse_unreadable(pub, access, key, f"sort[{i}]")
        if key in masked or key in sealed:
            raise QueryError(f"{key} is {'masked' if key in masked else 'encrypted'}: it "
                             "cannot be sorted by", path=f"sort[{i}]")
    for key in fields or ():
        _refuse_unreadable(pub, access, key, "fields")


def check_payload(pub: Published, access: FormAccess, payload: Mapping[str, Any],
                  allowed: dict[str, bool] | None = None) -> None:
    """Refuse system keys and fields the caller may not write (mass assignment).
    ``allowed`` remembers each key's answer across the payloads of one bulk."""
    system = sorted(k for k in payload if k in SYSTEM_FIELDS or k in ("deleted_at",
                                                                       "schema_version"))
    if system:
        raise SystemField(f"{system[0]}: a system field is set by Qiao, never by a payload",
                          field=system[0])
    allowed = {} if allowed is None else allowed
    for key in payload:
        if key not in allowed:
            allowed[key] = pub.spec.field(key) is None or access.writable(key)
    locked = sorted(k for k in payload if not allowed[k])
    if locked:
        hidden = [k for k in locked if not access.readable(k)]
        if hidden:
            raise FieldNotPermitted(hidden[0])
        raise FieldReadOnly(f"{locked[0]}: this field is read-only for you", field=locked[0],
                            fields=locked)


def check_payloads(pub: Published, access: FormAccess,
                   payloads: list[Mapping[str, Any]]) -> None:
    """``check_payload`` of each payload, each key's right looked up once per bulk: the
    keys of all payloads are checked together, and only when one is refused is each
    payload checked in turn, so the error names the first payload's key as before."""
    allowed: dict[str, bool] = {}
    keys: set[str] = set()
    for payload in payloads:
        keys.update(payload)
    try:
        check_payload(pub, access, dict.fromkeys(keys), allowed)
    except (SystemField, FieldNotPermitted, FieldReadOnly):
        for payload in payloads:
            check_payload(pub, access, payload, allowed)
        raise


def narrowed(session: Session, caller: Caller, pub: Published) -> Caller:
    """The caller with lookups and rollups held to what they may see of the other form:
    a lookup of a field hidden there (or of a form they cannot read) is hidden here, a
    lookup of a field masked there is masked here, and a rollup over a hidden field or
    an unreadable form is hidden — computed fields must not leak what the form hides."""
    caps, masks = {}, {}
    for spec in pub.spec.fields:
        if spec.type == "lookup":
            target = pub.spec.field(spec.config["relation"]).config["target"]
            other, source = caller.principal.access(pub.app, target), spec.config["field"]
            if not (other.allows("read") and other.readable(source)):
                caps[spec.key] = "hidden"
            elif other.level(source) == "masked":
                shown = published(session, pub.app, target).spec.field(source)
                if shown is not None:
                    masks[spec.key] = shown
            elif not other.allows("unmask"):
                shown = published(session, pub.app, target).spec.field(source)
                if shown is not None and shown.sensitive and shown.sensitive.mask:
                    masks[spec.key] = shown
        elif spec.type == "rollup":
            other, source = (caller.principal.access(pub.app, spec.config["source"]),
                             spec.config.get("field"))
            if not other.allows("read") or (source and not other.readable(source)):
                caps[spec.key] = "hidden"
    if not caps and not masks:
        return caller
    return replace(caller, access=caller.access.capped(caps), lookup_masks=masks)


def shape(pub: Published, caller: Caller, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """API documents as this caller may see them: hidden fields gone, masked fields
    masked, encrypted fields opened — a value no key opens is None and its field is
    listed under ``_unavailable`` (``FieldCrypt.shown``)."""
    access, crypt = caller.access, caller.crypt(pub)
    masks = {k: pub.spec.field(k) for k in masked_keys(pub, access)} | dict(
        caller.lookup_masks)
    for doc in docs:
        data, unavailable = crypt.shown(doc["data"])
        unavailable = [k for k in unavailable if access.readable(k)]
        if unavailable:
            doc["_unavailable"] = unavailable
        out = {}
        for key, value in data.items():
            spec = pub.spec.field(key)
            if spec is None or not access.readable(key):
                continue
            mask = masks.get(key)
            out[key] = (mask.field_type.mask(value, mask)
                        if mask is not None and value is not None else value)
        doc["data"] = out
    return docs


def view(session: Session, caller: Caller, pub: Published, rows: list[Any],
         fields: list[str] | None = None) -> list[dict[str, Any]]:
    """``rows`` as this caller may see them: computed fields filled in — rollups over only
    the source rows the caller may read, lookups only from linked records they may read —
    then shaped (hidden, masked, opened)."""
    scopes = {}
    for spec in pub.spec.fields:
        if fields is not None and spec.key not in fields:
            continue
        if spec.type == "rollup":
            other = spec.config["source"]
        elif spec.type == "lookup" and (rel := pub.spec.field(spec.config["relation"])):
            other = rel.config["target"]
        else:
            continue
        if other not in scopes:
            scopes[other] = row_filter(session, caller.principal,
                                       caller.principal.access(pub.app, other), "read")
    return shape(pub, caller, present(session, pub, rows, fields, scopes=scopes))


# -- rows --------------------------------------------------------------------------------


def scoped_query(session: Session, caller: Caller, action: str, user_filter: Any) -> Any:
    """The caller's filter AND the action's row scope."""
    scope = row_filter(session, caller.principal, caller.access, action)
    if scope is None:
        return user_filter
    return scope if user_filter is None else {"and": [user_filter, scope]}


def load_scoped(session: Session, caller: Caller, pub: Published, record_id: int,
                action: str, *, include_deleted: bool = False) -> Record:
    """The record if it exists, is of this form and is inside the action's row scope;
    otherwise 404 — the same answer whether it exists elsewhere or not at all."""
    rec = handler.load_record(session, pub, record_id, include_deleted=include_deleted)
    scope = row_filter(session, caller.principal, caller.access, action)
    if scope is not None:
        probe = {"and": [{"field": "id", "op": "eq", "value": record_id}, scope]}
        page = query_records(session, Query(pub.fields, filter=probe, limit=1,
                                            deleted="include" if include_deleted
                                            else "exclude"))
        if not page.records:
            raise NotFound(f"record {record_id} does not exist", record_id=record_id)
    return rec


# -- the operations ----------------------------------------------------------------------


def sort_titles(session: Session, caller: Caller, pub: Published,
                sort: Any) -> dict[str, TitleSort]:
    """The relations (to one record) in ``sort`` that sort by the linked record's title:
    those whose target form the caller may read and whose title field (text) they see
    in clear — neither hidden, masked nor encrypted for them — read within their read
    scope of the target (a link outside it sorts as a blank). Any other relation sorts
    by the linked record's id, which its value shows anyway."""
    out = {}
    for key in _sort_keys(sort):
        spec = pub.spec.field(key)
        if spec is None or spec.type != "relation" or spec.config.get("multiple") \
                or not caller.access.readable(key):
            continue
        target = published(session, pub.app, spec.config["target"])
        access = caller.principal.access(pub.app, target.spec.key)
        title = target.spec.title_field
        shown = target.spec.field(title) if title else None
        if shown is None or not access.allows("read") or not access.readable(title) \
                or title in masked_keys(target, access) \
                or target.fields.kinds.get(title) != "text":
            continue
        out[key] = TitleSort(target.fields, title,
                             row_filter(session, caller.principal, access, "read"))
    return out


def list_page(session: Session, caller: Caller, pub: Published, *, filter: Any, sort: Any,
              cursor: str | None, limit: int, fields: list[str] | None,
              deleted: str) -> tuple[list[dict[str, Any]], str | None]:
    caller = narrowed(session, caller, pub)
    check_query(pub, caller.access, filter=filter, sort=sort, fields=fields)
    crypt = caller.crypt(pub)
    query = Query(pub.fields, filter=scoped_query(session, caller, "read",
                                                  crypt.blind_filter(filter)),
                  sort=sort, cursor=cursor, limit=limit, deleted=deleted,
                  titles=sort_titles(session, caller, pub, sort))
    page = query_records(session, query)
    docs = view(session, caller, pub, page.records, fields)
    return docs, page.next_cursor


def read_one(session: Session, caller: Caller, pub: Published, record_id: int,
             fields: list[str] | None = None) -> dict[str, Any]:
    caller = narrowed(session, caller, pub)
    check_query(pub, caller.access, filter=None, sort=None, fields=fields)
    rec = load_scoped(session, caller, pub, record_id, "read")
    return view(session, caller, pub, [rec], fields)[0]


def _result(session: Session, caller: Caller, pub: Published, rec: Record) -> dict[str, Any]:
    caller = narrowed(session, caller, pub)
    return view(session, caller, pub, [rec])[0]


def create(session: Session, caller: Caller, pub: Published,
           payload: Mapping[str, Any]) -> dict[str, Any]:
    check_payload(pub, caller.access, payload)
    with rationed(session, caller, pub, [payload]):
        rec = handler.create(session, pub, payload, actor=caller.principal.actor,
                             crypt=caller.crypt(pub), reader=caller.principal)
    caller.audit(session, "record.create", pub, rec.id, fields=sorted(payload))
    return _result(session, caller, pub, rec)


def update(session: Session, caller: Caller, pub: Published, record_id: int,
           payload: Mapping[str, Any], *, expected_version: int) -> dict[str, Any]:
    check_payload(pub, caller.access, payload)
    load_scoped(session, caller, pub, record_id, "update")
    with rationed(session, caller, pub, [payload]):
        rec = handler.update(session, pub, record_id, payload,
                             expected_version=expected_version, actor=caller.principal.actor,
                             crypt=caller.crypt(pub), reader=caller.principal)
    caller.audit(session, "record.update", pub, record_id, fields=sorted(payload),
                 row_version=rec.row_version)
    return _result(session, caller, pub, rec)


def delete(session: Session, caller: Caller, pub: Published, record_id: int, *,
           expected_version: int | None) -> None:
    load_scoped(session, caller, pub, record_id, "delete")
    handler.delete(session, pub, record_id, actor=caller.principal.actor,
                   expected_version=expected_version)
    caller.audit(session, "record.delete", pub, record_id)


def restore(session: Session, caller: Caller, pub: Published,
            record_id: int) -> dict[str, Any]:
    load_scoped(session, caller, pub, record_id, "delete", include_deleted=True)
    rec = handler.restore(session, pub, record_id, actor=caller.principal.actor)
    caller.audit(session, "record.restore", pub, record_id)
    return _result(session, caller, pub, rec)


def history(session: Session, caller: Caller, pub: Published,
            record_id: int) -> list[dict[str, Any]]:
    """The record's timeline with only the fields the caller can see (masked as usual)."""
    from engine_forms.reading import iso
    from platform_core.store import history as store_history

    rec = load_scoped(session, caller, pub, record_id, "read", include_deleted=True)
    masked = masked_keys(pub, caller.access)
    items = [{"row_version": 1, "action": "create", "diff": {}, "actor_id": rec.created_by,
              "at": iso(rec.created_at)}]
    items += [{"row_version": h.row_version, "action": h.action,
               "diff": visible_diff(pub, caller, h.diff, masked),
               "actor_id": h.actor_id, "at": iso(h.at)}
              for h in store_history(session, record_id)]
    return items


def visible_diff(pub: Published, caller: Caller, diff: Mapping[str, Any],
                 masked: frozenset[str]) -> dict[str, Any]:
    """One history diff as the caller may see it: hidden fields absent, masked fields
    masked on both sides, encrypted values opened (with the caller's keyring)."""
    out = {}
    for key, pair in caller.crypt(pub).shown_diff(diff)[0].items():
        if key in ("owner_id", "department_id"):  # a transfer (system columns)
            out[key] = pair
            continue
        field = pub.spec.field(key)
        if field is None or not caller.access.readable(key):
            continue
        out[key] = ([None if v is None else field.field_type.mask(v, field) for v in pair]
                    if key in masked and isinstance(pair, list) else pair)
    return out


def transfer(session: Session, caller: Caller, pub: Published, record_id: int, *,
             owner_id: int) -> None:
    """Give the record to another active user (and their department): the caller needs
    ``update`` on it (its row scope); audited as ``record.transfer``."""
    from platform_core.security.models import User
    from platform_core.store import transfer_record

    load_scoped(session, caller, pub, record_id, "update")
    user = session.get(User, owner_id)
    if user is None or user.status != "active":
        raise InvalidInput(f"user {owner_id} does not exist or is disabled", field="owner_id")
    rec = transfer_record(session, record_id, owner_id=user.id,
                          department_id=user.department_id, actor=caller.principal.actor)
    caller.audit(session, "record.transfer", pub, record_id, owner_id=user.id,
                 row_version=rec.row_version)


def unmask(session: Session, caller: Caller, pub: Published, record_id: int,
           key: str) -> dict[str, Any]:
    """One masked value in clear — an explicit, audited action."""
    field = pub.spec.field(key)
    if field is None:
        raise InvalidInput(f"{key}: unknown field of form {pub.spec.key}", field=key)
    if not caller.access.readable(key):
        raise FieldNotPermitted(key)
    if not (field.sensitive and field.sensitive.mask):
        raise InvalidInput(f"{key}: this field is not masked", field=key)
    rec = load_scoped(session, caller, pub, record_id, "read")
    value = caller.crypt(pub).open_value(key, rec.data.get(key))
    caller.audit(session, "record.unmask", pub, record_id, field=key)
    return {"id": record_id, "field": key, "value": value}


def count(session: Session, caller: Caller, pub: Published, *, filter: Any,
          cap: int | None = None, deleted: str = "exclude") -> int:
    """How many records of the form the caller may read match ``filter`` (``deleted``:
    exclude, only or include the recycle bin, as the list)."""
    from platform_core.store import count_records

    if deleted not in ("exclude", "only", "include"):
        raise QueryError("deleted must be exclude, only or include", path="deleted")
    caller = narrowed(session, caller, pub)
    check_query(pub, caller.access, filter=filter, sort=None, fields=None)
    scoped = scoped_query(session, caller, "read", caller.crypt(pub).blind_filter(filter))
    return count_records(session, pub.fields, scoped, cap=cap, deleted=deleted)


# text fields a quick search looks into (part of the text); exact-match types below
SEARCH_CONTAINS = frozenset({"text", "auto_number"})
SEARCH_EXACT = frozenset({"phone", "id_card", "email"})


def search_filter(pub: Published, access: FormAccess, text: str) -> Any:
    """The filter of a quick search for ``text``: the title and indexed text fields
    contain it, or a phone, ID number or e-mail field equals it (typed as the field
    reads it: ``138 0000 1234`` finds ``13800001234``; an encrypted ID number is matched
    through its blind index). None when nothing can match."""
    text = text.strip()[:200]
    if not text:
        return None
    leaves = []
    for f in pub.spec.fields:
        if not access.readable(f.key) or (f.sensitive and f.sensitive.encrypt
                                          and f.type not in SEARCH_EXACT):
            continue
        if f.type in SEARCH_EXACT:
            try:
                leaves.append({"field": f.key, "op": "eq",
                               "value": f.field_type.coerce(text, f)})
            except ValueError:
                continue
        elif f.type in SEARCH_CONTAINS and (f.key == pub.spec.title_field or f.indexed
                                            or f.type == "auto_number") \
                and not (f.sensitive and f.sensitive.mask):
            leaves.append({"field": f.key, "op": "contains", "value": text})
    if not leaves:
        return {"field": "id", "op": "eq", "value": 0}  # matches nothing
    return leaves[0] if len(leaves) == 1 else {"or": leaves}


def titles(session: Session, caller: Caller, pub: Published,
           ids: set[int]) -> dict[int, str]:
    """The titles of records of ``pub``'s form as the caller's list shows them: only
    records in their read scope; a hidden title is no title, a masked one stays
    masked. Records without a title field show ``#id``."""
    title = pub.spec.title_field
    if not ids or not caller.access.allows("read"):
        return {}
    readable = title is not None and caller.access.readable(title)
    found: dict[int, str] = {}
    wanted = sorted(ids)
    for i in range(0, len(wanted), 1000):
        chunk = wanted[i:i + 1000]
        docs, _next = list_page(
            session, caller, pub, filter={"field": "id", "op": "in", "value": chunk},
            sort=None, cursor=None, limit=len(chunk), fields=[title] if readable else [],
            deleted="exclude")
        for d in docs:
            shown = d["data"].get(title) if readable else None
            found[d["id"]] = f"#{d['id']}" if shown in (None, "") else str(shown)
    return found
