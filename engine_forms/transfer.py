"""Moving many records at once: export, import, bulk create and upsert.

The same service rules as ``engine_forms.service`` (whose helpers these use): row scopes
in the query, field permissions, sealing, and one audit entry per action — here with the
row count or the ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy.orm import Session

from engine_forms import records as handler
from engine_forms.forms import Published
from engine_forms.probing import rationed
from engine_forms.service import (
    Caller,
    check_payload,
    check_payloads,
    check_query,
    create,
    load_scoped,
    narrowed,
    scoped_query,
    update,
    view,
)
from platform_core.errors import InvalidInput, NotFound
from platform_core.store import Query, query_records


def export_rows(session: Session, caller: Caller, pub: Published, *, filter: Any,
                sort: Any) -> tuple[list[str], list[str], Iterator[list[Any]]]:
    """(keys, labels, rows) of an export: the rows of the export scope, the fields the
    caller can see, masked values masked. The generator reads page by page."""
    caller = narrowed(session, caller, pub)
    check_query(pub, caller.access, filter=filter, sort=sort, fields=None)
    keys = [f.key for f in pub.spec.fields if caller.access.readable(f.key)
            and f.type not in ("attachment", "subtable")]
    labels = ["ID", *(pub.spec.field(k).label for k in keys), "创建时间 / created"]
    crypt = caller.crypt(pub)
    scoped = scoped_query(session, caller, "export", crypt.blind_filter(filter))
    from engine_forms.service import sort_titles  # relations sort by the linked title

    titles = sort_titles(session, caller, pub, sort)

    def rows() -> Iterator[list[Any]]:
        cursor = None
        while True:
            page = query_records(session, Query(pub.fields, filter=scoped, sort=sort,
                                                cursor=cursor, limit=1000, titles=titles))
            docs = view(session, caller, pub, page.records)
            for doc in docs:
                yield [doc["id"], *(doc["data"].get(k) for k in keys), doc["created_at"]]
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    return keys, labels, rows()


def import_file(session: Session, caller: Caller, pub: Published, *, filename: str,
                content: bytes, dry_run: bool) -> dict[str, Any]:
    """Create one record per spreadsheet row, all or nothing (``engine_forms.importing``);
    ``dry_run`` checks everything and writes nothing. Audited with the row count."""
    from engine_forms import importing

    rows = importing.read_table(filename, content)
    if len(rows) < 2:
        raise importing.ImportError_("file: no data rows under the header", field="file")
    payloads, problems = importing.payloads(pub, rows)
    check_payload(pub, caller.access, {k: None for p in payloads for k in p})
    if problems:
        raise importing.ImportError_(f"{len({p['row'] for p in problems})} row(s) cannot be "
                                     f"read; first: row {problems[0]['row']}: "
                                     f"{problems[0]['message_en']}", errors=problems)
    savepoint = session.begin_nested()
    try:
        ids = handler.create_many(session, pub, payloads, actor=caller.principal.actor,
                                  crypt=caller.crypt(pub), reader=caller.principal)
    except handler.BulkInvalid as exc:
        savepoint.rollback()
        errors = [{"row": e.pop("index") + 2, **e} for e in exc.extra["errors"]]
        raise importing.ImportError_(f"{len({e['row'] for e in errors})} row(s) are not "
                                     f"valid; first: row {errors[0]['row']}: "
                                     f"{errors[0]['message_en']}", errors=errors) from None
    if dry_run:
        savepoint.rollback()
        return {"dry_run": True, "rows": len(ids), "ids": []}
    savepoint.commit()
    caller.audit(session, "record.import", pub, None, rows=len(ids), file=filename)
    return {"dry_run": False, "rows": len(ids), "ids": ids}


MAX_BULK = 1000


def _docs_by_id(session: Session, caller: Caller, pub: Published,
                ids: list[int]) -> dict[int, dict[str, Any]]:
    """The created records as the caller sees them, read back in one query."""
    if not ids:
        return {}
    page = query_records(session, Query(pub.fields, filter={"field": "id", "op": "in",
                                                             "value": ids},
                                        sort=["id"], limit=len(ids)))
    return {d["id"]: d for d in view(session, caller, pub, page.records)}


def bulk_create(session: Session, caller: Caller, pub: Published,
                payloads: list[Mapping[str, Any]], *, partial: bool,
                with_records: bool = True) -> dict[str, Any]:
    """Up to 1,000 records. All or nothing by default (any invalid item: 422 listing
    every problem with its index); ``partial`` creates the valid ones and reports each
    item's outcome. Audited as one entry with the ids created. ``with_records=False``
    answers ids only: the created records are not read back (most of a bulk's cost)."""
    from platform_core.errors import DomainError

    caller = narrowed(session, caller, pub)
    if not 1 <= len(payloads) <= MAX_BULK:
        raise InvalidInput(f"records: between 1 and {MAX_BULK} records per request",
                           field="records")
    results: list[dict[str, Any]] = []
    ids: list[int] = []
    if not partial:
        check_payloads(pub, caller.access, payloads)
        with rationed(session, caller, pub, payloads):
            ids = handler.create_many(session, pub, payloads, actor=caller.principal.actor,
                                      crypt=caller.crypt(pub), reader=caller.principal)
        results = [{"index": i, "status": 201, "id": rid} for i, rid in enumerate(ids)]
    else:
        for i, payload in enumerate(payloads):
            savepoint = session.begin_nested()
            try:
                check_payload(pub, caller.access, payload)
                with rationed(session, caller, pub, [payload]):
                    rec = handler.create(session, pub, payload,
                                         actor=caller.principal.actor,
                                         crypt=caller.crypt(pub), reader=caller.principal)
            except DomainError as exc:
                savepoint.rollback()
                results.append({"index": i, "status": exc.status, "error": exc.problem()})
                continue
            savepoint.commit()
            ids.append(rec.id)
            results.append({"index": i, "status": 201, "id": rec.id})
    if ids:
        caller.audit(session, "record.create", pub, None, ids=ids, count=len(ids),
                     bulk=True)
    if not with_records:
        return {"items": results, "created": len(ids)}
    docs = _docs_by_id(session, caller, pub, ids)
    for item in results:
        if "id" in item:
            item["record"] = docs.get(item["id"])
    return {"items": results, "created": len(ids)}


def upsert(session: Session, caller: Caller, pub: Published, key: str, raw_value: str,
           payload: Mapping[str, Any], *, expected_version: int | None
           ) -> tuple[dict[str, Any], bool]:
    """Create or update the record whose unique field ``key`` equals ``raw_value``:
    (the record, whether it was created)."""
    field = pub.spec.field(key)
    if field is None or not field.unique or not caller.access.readable(key):
        raise InvalidInput(f"{key}: not a unique field of form {pub.spec.key}", field=key)
    try:
        value = field.field_type.from_text(raw_value, field)
    except ValueError as exc:
        raise InvalidInput(f"{key}: {exc}", field=key) from None
    if key in payload and payload[key] != value:
        raise InvalidInput(f"{key}: the payload's value differs from the one in the path",
                           field=key)
    crypt = caller.crypt(pub)
    probe = crypt.blind_filter({"field": key, "op": "eq", "value": value})
    page = query_records(session, Query(pub.fields, filter=probe, limit=1))
    if not page.records:
        caller.access.require("create")
        return create(session, caller, pub, {**payload, key: value}), True
    found = page.records[0]
    try:
        load_scoped(session, caller, pub, found.id, "update")
    except NotFound:  # held by a record the caller may not change: what a create answers
        with rationed(session, caller, pub, [{key: value}]):
            raise handler.DuplicateValue(f"{key}: the value is already used by another "
                                         "record", field=key) from None
    expected = found.row_version if expected_version is None else expected_version
    return update(session, caller, pub, found.id, payload, expected_version=expected), False
