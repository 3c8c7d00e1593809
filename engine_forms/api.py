"""The forms and records API (``/api/v1/apps/...``): thin routes over the handlers.

Each write request is one ``Database.write()`` transaction; domain errors become
problem+json through the app factory's handlers. Keys, never labels, address forms and
fields; unknown keys in a payload are refused, not dropped.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Form, Header, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from engine_forms import forms as forms_handler
from engine_forms import records as records_handler
from engine_forms.attachments import describe, get_attachment, store_upload
from engine_forms.models import FormMigration
from engine_forms.publishing import migration_chain, publish
from engine_forms.reading import iso, present
from engine_forms.versions import run_migration
from platform_core.app import ActorDep, ContextDep
from platform_core.errors import DomainError, NotFound, QueryError
from platform_core.store import Query as StoreQuery
from platform_core.store import history, query_records

router = APIRouter(prefix="/api/v1", tags=["forms"])
FORM = "/apps/{app}/forms/{form}"


class PreconditionRequired(DomainError):
    status, code, title = 428, "precondition_required", "Precondition required"


class NewApp(BaseModel):
    key: str = Field(pattern="^[a-z][a-z0-9_]{0,62}$")
    name: str = Field(min_length=1, max_length=100)
    description: str | None = None


def _app_doc(app: Any) -> dict[str, Any]:
    return {"key": app.key, "name": app.name, "description": app.description,
            "created_at": app.created_at.isoformat()}


def _form_doc(form: Any) -> dict[str, Any]:
    return {"app": form.app, "key": form.key, "name": form.draft.get("name"),
            "published_version": form.published_version, "draft": form.draft,
            "updated_at": form.updated_at.isoformat()}


@router.get("/apps")
def list_apps(ctx: ContextDep) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [_app_doc(a) for a in forms_handler.list_apps(s)]}


@router.post("/apps", status_code=201)
def create_app(ctx: ContextDep, body: NewApp) -> dict[str, Any]:
    with ctx.db.write() as s:
        return _app_doc(forms_handler.create_app(s, key=body.key, name=body.name,
                                                 description=body.description))


@router.get("/apps/{app}")
def get_app(ctx: ContextDep, app: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        doc = _app_doc(forms_handler.get_app(s, app))
        doc["forms"] = [{"key": f.key, "name": f.draft.get("name"),
                         "published_version": f.published_version}
                        for f in forms_handler.list_forms(s, app)]
        return doc


@router.get("/apps/{app}/forms")
def list_forms(ctx: ContextDep, app: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [_form_doc(f) for f in forms_handler.list_forms(s, app)]}


@router.post("/apps/{app}/forms", status_code=201)
def create_form(ctx: ContextDep, app: str, body: Annotated[Any, Body()]) -> dict[str, Any]:
    with ctx.db.write() as s:
        return _form_doc(forms_handler.create_form(s, app=app, raw=body))


@router.get(FORM)
def get_form(ctx: ContextDep, app: str, form: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        doc = _form_doc(forms_handler.get_form(s, app, form))
        if doc["published_version"]:
            doc["published"] = forms_handler.published(s, app, form).spec.dump()
        return doc


@router.put(FORM)
def put_draft(ctx: ContextDep, app: str, form: str,
              body: Annotated[Any, Body()]) -> dict[str, Any]:
    with ctx.db.write() as s:
        return _form_doc(forms_handler.put_draft(s, app=app, key=form, raw=body))


@router.post(FORM + "/publish")
def publish_form(ctx: ContextDep, actor: ActorDep, background: BackgroundTasks, app: str,
                 form: str, dry_run: bool = False) -> dict[str, Any]:
    with ctx.db.write() as s:
        result = publish(s, app=app, key=form, actor=actor, dry=dry_run)
    if result["migration"] and not dry_run:
        background.add_task(run_migration, ctx.db, result["migration"]["id"],
                            load=migration_chain, actor=actor)
    return result


@router.get(FORM + "/versions")
def list_versions(ctx: ContextDep, app: str, form: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [{"version": v.version, "published_at": v.published_at.isoformat(),
                           "published_by": v.published_by, "changes": v.changes,
                           "spec": v.spec} for v in forms_handler.versions(s, app, form)]}


@router.get(FORM + "/migrations/{job_id}")
def migration_status(ctx: ContextDep, app: str, form: str, job_id: int) -> dict[str, Any]:
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


def _fields(raw: str | None, pub: Any) -> list[str] | None:
    if raw is None:
        return None
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    unknown = [k for k in keys if pub.spec.field(k) is None]
    if unknown:
        raise QueryError(f"unknown field {unknown[0]!r} of form {pub.spec.key}",
                         path="fields")
    return keys


@router.get(FORM + "/records")
def list_records(ctx: ContextDep, request: Request, app: str, form: str,
                 filter: Annotated[str | None, Query(description="JSON filter AST")] = None,
                 sort: str | None = None, cursor: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                 fields: str | None = None, deleted: str = "exclude") -> dict[str, Any]:
    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        page = query_records(s, StoreQuery(pub.fields, filter=_parse_filter(filter),
                                           sort=sort, cursor=cursor, limit=limit,
                                           deleted=deleted))
        items = present(s, pub, page.records, _fields(fields, pub))
    nxt = (str(request.url.include_query_params(cursor=page.next_cursor))
           if page.next_cursor else None)
    return {"items": items, "next_cursor": page.next_cursor, "next": nxt}


@router.post(FORM + "/records", status_code=201)
def create_record(ctx: ContextDep, actor: ActorDep, app: str, form: str,
                  body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        rec = records_handler.create(s, pub, body, actor=actor)
        doc = present(s, pub, [rec])[0]
    headers = _etag(doc) | {"Location": f"/api/v1/apps/{app}/forms/{form}/records/{rec.id}"}
    return JSONResponse(doc, status_code=201, headers=headers)


@router.get(FORM + "/records/{record_id}")
def get_record(ctx: ContextDep, app: str, form: str, record_id: int,
               fields: str | None = None) -> JSONResponse:
    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        rec = records_handler.load_record(s, pub, record_id)
        doc = present(s, pub, [rec], _fields(fields, pub))[0]
    return JSONResponse(doc, headers=_etag(doc))


@router.patch(FORM + "/records/{record_id}")
def patch_record(ctx: ContextDep, actor: ActorDep, app: str, form: str, record_id: int,
                 body: Annotated[dict[str, Any], Body()],
                 if_match: Annotated[str | None, Header()] = None) -> JSONResponse:
    expected = _if_match(if_match)
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        rec = records_handler.update(s, pub, record_id, body, expected_version=expected,
                                     actor=actor)
        doc = present(s, pub, [rec])[0]
    return JSONResponse(doc, headers=_etag(doc))


@router.delete(FORM + "/records/{record_id}", status_code=204)
def delete_record(ctx: ContextDep, actor: ActorDep, app: str, form: str, record_id: int,
                  if_match: Annotated[str | None, Header()] = None) -> Response:
    expected = None if if_match is None else _if_match(if_match)
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        records_handler.delete(s, pub, record_id, actor=actor, expected_version=expected)
    return Response(status_code=204)


@router.post(FORM + "/records/{record_id}/restore")
def restore_record(ctx: ContextDep, actor: ActorDep, app: str, form: str,
                   record_id: int) -> JSONResponse:
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        rec = records_handler.restore(s, pub, record_id, actor=actor)
        doc = present(s, pub, [rec])[0]
    return JSONResponse(doc, headers=_etag(doc))


@router.get(FORM + "/records/{record_id}/history")
def record_history(ctx: ContextDep, app: str, form: str, record_id: int) -> dict[str, Any]:
    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        rec = records_handler.load_record(s, pub, record_id, include_deleted=True)
        items = [{"row_version": 1, "action": "create", "diff": {}, "actor_id": rec.created_by,
                  "at": iso(rec.created_at)}]
        items += [{"row_version": h.row_version, "action": h.action, "diff": h.diff,
                   "actor_id": h.actor_id, "at": iso(h.at)}
                  for h in history(s, record_id)]
    return {"items": items}


@router.post(FORM + "/attachments", status_code=201)
def upload_attachment(ctx: ContextDep, actor: ActorDep, app: str, form: str,
                      field: Annotated[str, Form()], file: UploadFile) -> dict[str, Any]:
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        row = store_upload(s, pub, field_key=field, filename=file.filename or "file",
                           content_type=file.content_type, stream=file.file,
                           root=ctx.settings.data_dir, actor=actor)
        return describe(row)


@router.get(FORM + "/attachments/{attachment_id}")
def download_attachment(ctx: ContextDep, app: str, form: str,
                        attachment_id: int) -> FileResponse:
    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        row = get_attachment(s, pub, attachment_id)
    path = ctx.settings.data_dir / "attachments" / row.path
    return FileResponse(path, media_type=row.content_type, filename=row.filename)
