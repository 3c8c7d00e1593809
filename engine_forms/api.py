"""The forms and records API (``/api/v1/apps/...``): thin routes over the handlers.

Each write request is one ``Database.write()`` transaction; domain errors become
problem+json through the app factory's handlers. Keys, never labels, address forms and
fields; unknown keys in a payload are refused, not dropped.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Body,
    Depends,
    Form,
    Header,
    Query,
    Request,
    UploadFile,
)
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from engine_forms import forms as forms_handler
from engine_forms import menus as menus_handler
from engine_forms import search as searching
from engine_forms import service, transfer
from engine_forms.attachments import describe, get_attachment, store_upload
from engine_forms.models import FormMigration
from engine_forms.publishing import migration_chain, publish
from engine_forms.sealing import encrypted_keys, seal_existing
from engine_forms.service import Caller
from engine_forms.versions import run_migration
from platform_core.app import ActorDep, ContextDep, IdPath
from platform_core.errors import DomainError, NotFound, QueryError
from platform_core.exporting import XLSX_TYPE as XLSX
from platform_core.exporting import spreadsheet
from platform_core.models import utcnow
from platform_core.security import audit
from platform_core.security.guard import AccessDep, PrincipalDep, client_of, rule

router = APIRouter(prefix="/api/v1", tags=["forms"])
FORM = "/apps/{app}/forms/{form}"


class PreconditionRequired(DomainError):
    status, code, title = 428, "precondition_required", "Precondition required"


def get_caller(request: Request, ctx: ContextDep, principal: PrincipalDep,
               access: AccessDep) -> Caller:
    return Caller(principal, access, ctx.keyring, client_of(request))


CallerDep = Annotated[Caller, Depends(get_caller)]


def _audit(s: Any, actor: Any, action: str, target: str, **detail: Any) -> None:
    audit.append(s, actor=actor, action=action, target=target, detail=detail)


class NewApp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern="^[a-z][a-z0-9_]{0,62}$")
    name: str = Field(min_length=1, max_length=100)
    description: str | None = None


def _app_doc(app: Any) -> dict[str, Any]:
    return {"key": app.key, "name": app.name, "description": app.description,
            "template": app.template, "template_version": app.template_version,
            "menus": app.menus or [], "created_at": app.created_at.isoformat()}


def _form_doc(form: Any) -> dict[str, Any]:
    return {"app": form.app, "key": form.key, "name": form.draft.get("name"),
            "published_version": form.published_version, "draft": form.draft,
            "updated_at": form.updated_at.isoformat()}


@router.get("/apps", openapi_extra=rule("user"))
def list_apps(ctx: ContextDep, principal: PrincipalDep) -> dict[str, Any]:
    """The apps in which the caller may do anything at all."""
    with ctx.db.read() as s:
        return {"items": [_app_doc(a) for a in forms_handler.list_apps(s)
                          if _app_visible(principal, a.key)]}


def _app_visible(principal: Any, app: str) -> bool:
    from platform_core.security.permissions import ACTIONS

    return any(principal.app_allows(app, action) for action in ACTIONS)


def _visible_forms(s: Any, principal: Any, app: str) -> list[Any]:
    if not _app_visible(principal, app):
        raise NotFound(f"app {app!r} does not exist", app=app)
    return [f for f in forms_handler.list_forms(s, app)
            if principal.access(app, f.key).any_allowed()]


@router.post("/apps", status_code=201, openapi_extra=rule("admin"))
def create_app(ctx: ContextDep, actor: ActorDep, body: NewApp) -> dict[str, Any]:
    with ctx.db.write() as s:
        doc = _app_doc(forms_handler.create_app(s, key=body.key, name=body.name,
                                                description=body.description))
        _audit(s, actor, "app.create", f"app:{body.key}", name=body.name)
        return doc


@router.get("/apps/{app}", openapi_extra=rule("user"))
def get_app(ctx: ContextDep, principal: PrincipalDep, app: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        doc = _app_doc(forms_handler.get_app(s, app))
        doc["forms"] = [{"key": f.key, "name": f.draft.get("name"),
                         "published_version": f.published_version}
                        for f in _visible_forms(s, principal, app)]
        return doc


@router.put("/apps/{app}/menus", openapi_extra=rule("app:manage"))
def put_menus(ctx: ContextDep, actor: ActorDep, app: str,
              body: Annotated[Any, Body()]) -> dict[str, Any]:
    """Replace the app's menus (the whole list of groups): every item's key must name a
    form, flow, report or dashboard of the app and every role must exist. Audited."""
    with ctx.db.write() as s:
        doc = _app_doc(menus_handler.save_menus(s, app=app, raw=body))
        _audit(s, actor, "app.menus", f"app:{app}", menus=body)
        return doc


@router.get("/apps/{app}/forms", openapi_extra=rule("user"))
def list_forms(ctx: ContextDep, principal: PrincipalDep, app: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [_form_doc(f) if principal.access(app, f.key).allows("manage")
                          else _public_form_doc(s, principal, f)
                          for f in _visible_forms(s, principal, app)]}


def _public_form_doc(s: Any, principal: Any, form: Any) -> dict[str, Any]:
    """What a form's user (not its designer) sees: the published spec without the
    fields hidden from them, and no draft."""
    doc = {"app": form.app, "key": form.key, "name": form.draft.get("name"),
           "published_version": form.published_version,
           "updated_at": form.updated_at.isoformat()}
    if form.published_version:
        access = principal.access(form.app, form.key)
        spec = forms_handler.published(s, form.app, form.key).spec.dump()
        spec["fields"] = [f for f in spec.get("fields", ()) if access.readable(f["key"])]
        doc["published"] = spec
    return doc


@router.post("/apps/{app}/forms", status_code=201, openapi_extra=rule("app:manage"))
def create_form(ctx: ContextDep, actor: ActorDep, app: str,
                body: Annotated[Any, Body()]) -> dict[str, Any]:
    with ctx.db.write() as s:
        form = forms_handler.create_form(s, app=app, raw=body)
        _audit(s, actor, "form.create", f"{app}.{form.key}")
        return _form_doc(form)


@router.get(FORM, openapi_extra=rule("form:read"))
def get_form(ctx: ContextDep, principal: PrincipalDep, access: AccessDep, app: str,
             form: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        row = forms_handler.get_form(s, app, form)
        if not access.allows("manage"):
            return _public_form_doc(s, principal, row)
        doc = _form_doc(row)
        if doc["published_version"]:
            doc["published"] = forms_handler.published(s, app, form).spec.dump()
        return doc


@router.put(FORM, openapi_extra=rule("form:manage"))
def put_draft(ctx: ContextDep, actor: ActorDep, app: str, form: str,
              body: Annotated[Any, Body()]) -> dict[str, Any]:
    with ctx.db.write() as s:
        doc = _form_doc(forms_handler.put_draft(s, app=app, key=form, raw=body))
        _audit(s, actor, "form.update_draft", f"{app}.{form}")
        return doc


@router.post(FORM + "/check", openapi_extra=rule("form:manage"))
def check_form(ctx: ContextDep, app: str, form: str,
               body: Annotated[Any, Body()]) -> dict[str, Any]:
    """Every problem a save and a publish of ``body`` (a whole form definition) would
    meet, each with its field, its expression and the column; nothing is written."""
    with ctx.db.read() as s:
        forms_handler.get_form(s, app, form)
        return {"problems": forms_handler.check_draft(s, app, body)}


@router.post(FORM + "/publish", openapi_extra=rule("form:manage"))
def publish_form(ctx: ContextDep, actor: ActorDep, background: BackgroundTasks, app: str,
                 form: str, dry_run: bool = False) -> dict[str, Any]:
    with ctx.db.write() as s:
        before = _encrypted(s, app, form)
        result = publish(s, app=app, key=form, actor=actor, dry=dry_run)
        if not dry_run:
            _audit(s, actor, "form.publish", f"{app}.{form}", version=result.get("version"))
            after = _encrypted(s, app, form)
    if result["migration"] and not dry_run:
        background.add_task(run_migration, ctx.db, result["migration"]["id"],
                            load=migration_chain, actor=actor)
    if not dry_run and before != after:  # seal (or open) what is stored under the old rule
        background.add_task(seal_existing, ctx.db, ctx.keyring, app, form)
    return result


def _encrypted(s: Any, app: str, form: str) -> frozenset[str]:
    if forms_handler.get_form(s, app, form).published_version is None:
        return frozenset()
    return encrypted_keys(forms_handler.published(s, app, form))


@router.get(FORM + "/versions", openapi_extra=rule("form:manage"))
def list_versions(ctx: ContextDep, app: str, form: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [{"version": v.version, "published_at": v.published_at.isoformat(),
                           "published_by": v.published_by, "changes": v.changes,
                           "spec": v.spec} for v in forms_handler.versions(s, app, form)]}


@router.get(FORM + "/migrations/{job_id}", openapi_extra=rule("form:manage"))
def migration_status(ctx: ContextDep, app: str, form: str, job_id: IdPath) -> dict[str, Any]:
    with ctx.db.read() as s:
        job = s.get(FormMigration, job_id)
        if job is None or (job.app, job.form) != (app, form):
            raise NotFound(f"migration {job_id} does not exist")
        return {"id": job.id, "status": job.status, "from_version": job.from_version,
                "to_version": job.to_version, "total": job.total, "done": job.done,
                "failed": job.failed, "failures": job.failures}


def _etag(doc: dict[str, Any]) -> dict[str, str]:
    return {"ETag": f'"{doc["row_version"]}"'}


def _if_match(value: str | None) -> int:
    if value is None:
        raise PreconditionRequired("send If-Match with the record's row_version (its ETag) "
                                   "so a concurrent change is never overwritten")
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise QueryError(f"If-Match must be a row version such as \"3\", not {value!r}",
                         path="If-Match")
    return int(text)


def _parse_filter(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise QueryError(f"not valid JSON ({exc.msg} at character {exc.pos})",
                         path="filter") from None
    except (ValueError, RecursionError):  # a number of 4,300+ digits, nesting too deep
        raise QueryError("not JSON this API reads (a number too long or nesting too "
                         "deep)", path="filter") from None


def _fields(raw: str | None, pub: Any) -> list[str] | None:
    if raw is None:
        return None
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    unknown = [k for k in keys if pub.spec.field(k) is None]
    if unknown:
        raise QueryError(f"unknown field {unknown[0]!r} of form {pub.spec.key}",
                         path="fields")
    return keys


@router.get(FORM + "/records", openapi_extra=rule("form:read"))
def list_records(ctx: ContextDep, caller: CallerDep, request: Request, app: str, form: str,
                 filter: Annotated[str | None, Query(description="JSON filter AST")] = None,
                 sort: str | None = None, cursor: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                 fields: str | None = None, deleted: str = "exclude",
                 count: Annotated[bool, Query(description="add `count`: how many records "
                                              "match, over all pages")] = False
                 ) -> dict[str, Any]:
    where = _parse_filter(filter)
    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        items, next_cursor = service.list_page(
            s, caller, pub, filter=where, sort=sort, cursor=cursor,
            limit=limit, fields=_fields(fields, pub), deleted=deleted)
        total = service.count(s, caller, pub, filter=where, deleted=deleted) if count else None
    nxt = (str(request.url.include_query_params(cursor=next_cursor)) if next_cursor else None)
    page = {"items": items, "next_cursor": next_cursor, "next": nxt}
    return page | {"count": total} if count else page


@router.get(FORM + "/records/count", openapi_extra=rule("form:read"))
def count_records(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                  filter: Annotated[str | None, Query(description="JSON filter AST")] = None,
                  deleted: str = "exclude") -> dict[str, int]:
    """How many records the caller may read match ``filter`` (their row scope applies):
    one ``SELECT count(*)`` with the list's WHERE clause."""
    where = _parse_filter(filter)
    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        return {"count": service.count(s, caller, pub, filter=where, deleted=deleted)}


@router.post(FORM + "/records", status_code=201, openapi_extra=rule("form:create"))
def create_record(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                  body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        doc = service.create(s, caller, pub, body)
    headers = _etag(doc) | {"Location": f"/api/v1/apps/{app}/forms/{form}/records/{doc['id']}"}
    return JSONResponse(doc, status_code=201, headers=headers)


class BulkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Any]] = Field(min_length=1, max_length=transfer.MAX_BULK)


@router.post(FORM + "/records/bulk", status_code=201, openapi_extra=rule("form:create"))
def bulk_create(ctx: ContextDep, caller: CallerDep, app: str, form: str, body: BulkBody,
                partial: bool = False,
                return_: Annotated[Literal["full", "minimal"], Query(alias="return")] = "full",
                ) -> dict[str, Any]:
    """Create up to 1,000 records: all or nothing, or with ``partial=true`` the valid ones
    and a status per item. ``return=minimal`` answers each item's id without the record
    (the records are not read back: several times faster for a load)."""
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        return transfer.bulk_create(s, caller, pub, body.records, partial=partial,
                                    with_records=return_ == "full")


@router.put(FORM + "/records/by/{field}/{value}", openapi_extra=rule("form:update"))
def upsert_record(ctx: ContextDep, caller: CallerDep, app: str, form: str, field: str,
                  value: str, body: Annotated[dict[str, Any], Body()],
                  if_match: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Create or update the record whose unique ``field`` equals ``value`` (200 updated,
    201 created); ``If-Match`` is honoured when sent."""
    expected = None if if_match is None else _if_match(if_match)
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        doc, created = transfer.upsert(s, caller, pub, field, value, body,
                                      expected_version=expected)
    headers = _etag(doc)
    if created:
        headers["Location"] = f"/api/v1/apps/{app}/forms/{form}/records/{doc['id']}"
    return JSONResponse(doc, status_code=201 if created else 200, headers=headers)


@router.get(FORM + "/records/{record_id}", openapi_extra=rule("form:read"))
def get_record(ctx: ContextDep, caller: CallerDep, app: str, form: str, record_id: IdPath,
               fields: str | None = None) -> JSONResponse:
    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        doc = service.read_one(s, caller, pub, record_id, _fields(fields, pub))
    return JSONResponse(doc, headers=_etag(doc))


@router.patch(FORM + "/records/{record_id}", openapi_extra=rule("form:update"))
def patch_record(ctx: ContextDep, caller: CallerDep, app: str, form: str, record_id: IdPath,
                 body: Annotated[dict[str, Any], Body()],
                 if_match: Annotated[str | None, Header()] = None) -> JSONResponse:
    expected = _if_match(if_match)
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        doc = service.update(s, caller, pub, record_id, body, expected_version=expected)
    return JSONResponse(doc, headers=_etag(doc))


@router.delete(FORM + "/records/{record_id}", status_code=204,
               openapi_extra=rule("form:delete"))
def delete_record(ctx: ContextDep, caller: CallerDep, app: str, form: str, record_id: IdPath,
                  if_match: Annotated[str | None, Header()] = None) -> Response:
    expected = None if if_match is None else _if_match(if_match)
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        service.delete(s, caller, pub, record_id, expected_version=expected)
    return Response(status_code=204)


@router.post(FORM + "/records/{record_id}/restore", openapi_extra=rule("form:delete"))
def restore_record(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                   record_id: IdPath) -> JSONResponse:
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        doc = service.restore(s, caller, pub, record_id)
    return JSONResponse(doc, headers=_etag(doc))


@router.get(FORM + "/records/{record_id}/history", openapi_extra=rule("form:read"))
def record_history(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                   record_id: IdPath) -> dict[str, Any]:
    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        return {"items": service.history(s, caller, pub, record_id)}


@router.get(FORM + "/records/{record_id}/timeline", openapi_extra=rule("form:read"))
def record_timeline(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                    record_id: IdPath,
                    kinds: Annotated[str | None, Query(
                        max_length=200, description="comma-separated: changes, flow, "
                        "tasks, automation, follow_ups, attachments (default: all)")] = None,
                    cursor: Annotated[str | None, Query(max_length=500)] = None,
                    limit: Annotated[int, Query(ge=1, le=100)] = 30) -> dict[str, Any]:
    """The record's timeline, newest first: its changes, flow steps, tasks, rules and
    notifications, attachments — and those of the records linking to it (a customer's
    cases and follow-ups) that the caller may read. Paged by ``next_cursor``."""
    from engine_forms import timeline

    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        result = timeline.page(s, caller, pub, record_id, kinds=timeline.parse_kinds(kinds),
                               cursor=cursor, limit=limit, now=utcnow())
        return timeline.as_json(result)


@router.get(FORM + "/export", openapi_extra=rule("form:export"),
            response_class=Response,
            responses={200: {"content": {XLSX: {}, "text/csv": {}}}})
def export_records(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                   format: Annotated[str, Query(pattern="^(xlsx|csv)$")] = "xlsx",
                   filter: Annotated[str | None, Query(description="JSON filter AST")] = None,
                   sort: str | None = None) -> Response:
    """The records the caller may export, as a spreadsheet (formula-safe) — audited with
    the row count. Hidden fields are left out; masked fields stay masked."""
    with ctx.db.write() as s:  # the audit entry commits with the export
        pub = forms_handler.published(s, app, form)
        _keys, labels, rows = transfer.export_rows(s, caller, pub, filter=_parse_filter(filter),
                                                  sort=sort)
        body, media, count = spreadsheet(format, sheet=pub.spec.name or form,
                                         columns=labels, rows=rows)
        caller.audit(s, "record.export", pub, None, rows=count, format=format,
                     filter=_parse_filter(filter))
    name = f"{app}-{form}-{utcnow():%Y%m%d-%H%M}.{format}"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post(FORM + "/import", openapi_extra=rule("form:import"))
def import_records(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                   file: UploadFile, dry_run: bool = False) -> dict[str, Any]:
    """Create records from a spreadsheet (.xlsx/.xls/.ods/.csv, first row = field labels
    or keys), all or nothing; every problem names its row. Audited with the row count."""
    content = file.file.read()
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        return transfer.import_file(s, caller, pub, filename=file.filename or "import.csv",
                                   content=content, dry_run=dry_run)


class Unmask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str = Field(min_length=1, max_length=64)


@router.post(FORM + "/records/{record_id}/unmask", openapi_extra=rule("form:unmask"))
def unmask_value(ctx: ContextDep, caller: CallerDep, app: str, form: str, record_id: IdPath,
                 body: Unmask) -> dict[str, Any]:
    """Show one masked value in clear (audited)."""
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        return service.unmask(s, caller, pub, record_id, body.field)


@router.post(FORM + "/attachments", status_code=201, openapi_extra=rule("form:create"))
def upload_attachment(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                      field: Annotated[str, Form()], file: UploadFile) -> dict[str, Any]:
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        service.check_payload(pub, caller.access, {field: None})
        row = store_upload(s, pub, field_key=field, filename=file.filename or "file",
                           content_type=file.content_type, stream=file.file,
                           root=ctx.settings.data_dir, actor=caller.principal.actor)
        return describe(row)


@router.get(FORM + "/attachments/{attachment_id}", openapi_extra=rule("form:read"))
def download_attachment(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                        attachment_id: IdPath) -> FileResponse:
    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        row = get_attachment(s, pub, attachment_id)
        if not caller.access.readable(row.field):
            raise NotFound(f"attachment {attachment_id} does not exist")
        if row.record_id is None:  # not yet attached: only its uploader may fetch it
            if row.created_by != caller.principal.user_id:
                raise NotFound(f"attachment {attachment_id} does not exist")
        else:
            service.load_scoped(s, caller, pub, row.record_id, "read")
    path = ctx.settings.data_dir / "attachments" / row.path
    return FileResponse(path, media_type=row.content_type, filename=row.filename)


@router.get("/search", openapi_extra=rule("user"))
def global_search(ctx: ContextDep, principal: PrincipalDep, request: Request,
                  q: Annotated[str, Query(min_length=1, max_length=100,
                                          description="name or number prefix, or an "
                                          "exact mobile, ID number, e-mail")],
                  limit: Annotated[int, Query(ge=1, le=20)] = 5) -> dict[str, Any]:
    """Records of every form the caller may read whose title starts with ``q`` or whose
    phone, ID number, e-mail or auto number equals it — within the caller's row scope,
    masked as they see them; per form newest first, ``limit`` each (``more`` when there
    are more)."""
    if not q.strip():
        raise QueryError("q: type something to search for", path="q")
    with ctx.db.read() as s:
        found = searching.search(s, principal, ctx.keyring, q, limit=limit,
                                 client=client_of(request))
        return searching.as_json(found)
