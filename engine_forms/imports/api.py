"""The imports API (``/api/v1/apps/{app}/forms/{form}/imports…``): thin routes over
``engine_forms.imports.service``, each guarded by the form's ``import`` right; every
bad input is answered with problem+json.

``POST …/imports`` saves the upload under ``<data dir>/imports/`` (streamed, limited by
``QIAO_IMPORT_MAX_BYTES``), checks the mapping and options and queues the batch (202);
a worker (``qiao serve``'s background thread or ``qiao worker``) runs it — or the
request itself with ``wait=true``. ``GET …/imports/{id}`` is its progress.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Form, Query, UploadFile
from fastapi.responses import JSONResponse, Response

from engine_forms import forms as forms_handler
from engine_forms.api import CallerDep
from engine_forms.importing import ImportError_
from engine_forms.imports import mapping as mappings
from engine_forms.imports import service
from engine_forms.imports.reading import open_table
from platform_core.app import ContextDep, IdPath
from platform_core.exporting import XLSX_TYPE as XLSX
from platform_core.security.guard import rule
from platform_core.security.permissions import Forbidden

router = APIRouter(prefix="/api/v1", tags=["imports"])
FORM = "/apps/{app}/forms/{form}"
IMPORT = rule("form:import")


def _limit(ctx: Any) -> int:
    return int(getattr(ctx.settings, "import_max_bytes", service.DEFAULT_MAX_BYTES))


def _json(text: str | None, what: str) -> Any:
    if text is None or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ImportError_(f"{what}: not valid JSON ({exc})", field=what) from None


def _mapping(s: Any, pub: Any, text: str | None, name: str | None, header: list[str]
             ) -> mappings.Mapping:
    if text and text.strip():
        return service.parse_mapping(_json(text, "mapping"))
    if name:
        return mappings.get_mapping(s, pub, name)
    return mappings.suggest(pub, header)


@router.post(FORM + "/imports", status_code=202, openapi_extra=IMPORT)
def start_import(ctx: ContextDep, caller: CallerDep, app: str, form: str, file: UploadFile,
                 mapping: Annotated[str | None, Form(description="Mapping JSON "
                                                     "(default: the suggested one)")] = None,
                 mapping_name: Annotated[str | None, Form(max_length=100)] = None,
                 mode: Annotated[str, Form(pattern="^(insert|upsert|skip)$")] = "insert",
                 key: Annotated[str | None, Form(max_length=64)] = None,
                 atomic: Annotated[bool, Form()] = True,
                 sheet: Annotated[str | None, Form(max_length=100)] = None,
                 header_row: Annotated[int | None, Form(ge=1, le=1000)] = None,
                 dry_run: Annotated[bool, Form()] = False,
                 name: Annotated[str | None, Form(max_length=200)] = None,
                 wait: Annotated[bool, Form(description="run it in this request")] = False,
                 ) -> JSONResponse:
    """Queue an import of a spreadsheet (.xlsx/.xls/.ods/.csv): 202 with its status."""
    filename = Path(file.filename or "import.csv").name
    path = service.upload(ctx.settings.data_dir, filename, file.file, limit=_limit(ctx))
    try:
        options = service.ImportOptions(mode=mode, key=key or None, atomic=atomic,
                                        sheet=sheet or None, header_row=header_row)
        with ctx.db.write() as s:
            pub = forms_handler.published(s, app, form)
            table = open_table(path, filename=filename, sheet=options.sheet,
                               header_row=options.header_row)
            chosen = _mapping(s, pub, mapping, mapping_name, table.header)
            batch = service.start(s, caller, pub, path=path, filename=filename,
                                  mapping=chosen, options=options, dry_run=dry_run,
                                  name=name)
            batch_id = batch.id
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if wait:
        _run_now(ctx, batch_id)
    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        doc = service.status(s, caller, pub, batch_id)
    return JSONResponse(doc, status_code=200 if wait else 202,
                        headers={"Location": f"/api/v1/apps/{app}/forms/{form}/imports/"
                                             f"{batch_id}"})


def _run_now(ctx: Any, batch_id: int) -> None:
    from engine_forms.imports import runner

    me = runner.worker_id("api")
    if runner.claim(ctx.db, me, batch_id=batch_id) is not None:
        runner.run(ctx.db, batch_id, me, keyring=ctx.keyring)


@router.post(FORM + "/imports/inspect", openapi_extra=IMPORT)
def inspect_file(ctx: ContextDep, caller: CallerDep, app: str, form: str, file: UploadFile,
                 sheet: Annotated[str | None, Form(max_length=100)] = None,
                 header_row: Annotated[int | None, Form(ge=1, le=1000)] = None,
                 ) -> dict[str, Any]:
    """The file's sheets, header row, header, first rows, the suggested mapping and the
    texts found in the select columns (unknown ones with ``maps_to`` null)."""
    from engine_forms.imports.coerce import cell_text

    filename = Path(file.filename or "import.csv").name
    path = service.upload(ctx.settings.data_dir, filename, file.file, limit=_limit(ctx))
    try:
        with ctx.db.read() as s:
            pub = forms_handler.published(s, app, form)
            if not caller.access.allows("import"):
                raise Forbidden(f"you may not import into {form}")
            table = open_table(path, filename=filename, sheet=sheet or None,
                               header_row=header_row)
            suggested = mappings.suggest(pub, table.header)
            sample = table.sample(20)
            return {"filename": filename, "sheets": table.sheets, "sheet": table.sheet,
                    "header_row": table.header_row, "header": table.header,
                    "encoding": table.encoding, "rows": table.count(),
                    "sample": [{"row": n, "cells": [cell_text(c) for c in cells]}
                               for n, cells in sample],
                    "mapping": suggested.model_dump(mode="json"),
                    "values": mappings.select_values(pub, suggested, table.rows())}
    finally:
        path.unlink(missing_ok=True)


@router.get(FORM + "/imports", openapi_extra=IMPORT)
def list_imports(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                 limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        return {"items": service.list_batches(s, caller, pub, limit=limit)}


@router.get(FORM + "/imports/{batch_id}", openapi_extra=IMPORT)
def get_import(ctx: ContextDep, caller: CallerDep, app: str, form: str,
               batch_id: IdPath) -> dict[str, Any]:
    """Status and progress: rows_done of rows_total, rate (rows/s), eta_s, counters."""
    with ctx.db.read() as s:
        return service.status(s, caller, forms_handler.published(s, app, form), batch_id)


@router.get(FORM + "/imports/{batch_id}/problems", openapi_extra=IMPORT)
def get_problems(ctx: ContextDep, caller: CallerDep, app: str, form: str, batch_id: IdPath,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        items = service.problems(s, caller, pub, batch_id, limit=limit, offset=offset)
        total = service.status(s, caller, pub, batch_id)["problems"]
        return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get(FORM + "/imports/{batch_id}/problems.xlsx", openapi_extra=IMPORT,
            response_class=Response, responses={200: {"content": {XLSX: {}}}})
def get_problem_file(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                     batch_id: IdPath) -> Response:
    """The uploaded sheet with a column "问题 / problem" saying what is wrong with each
    row that has a problem: fix it in Excel and import it again."""
    from engine_forms.imports.problems_file import problem_workbook

    with ctx.db.read() as s:
        pub = forms_handler.published(s, app, form)
        batch = service.load(s, caller, pub, batch_id)
        by_row: dict[int, list[str]] = {}
        for p in service.problems(s, caller, pub, batch_id, limit=10**9):
            by_row.setdefault(p["row"], []).append(p["reason"])
        table = open_table(batch.path, filename=batch.filename,
                           sheet=batch.options.get("sheet"),
                           header_row=batch.options.get("header_row"))
    body = problem_workbook(table, {r: "；".join(t) for r, t in by_row.items()})
    name = f"{Path(batch.filename).stem}-problems.xlsx"
    return Response(body, media_type=XLSX, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{_quote(name)}"})


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name)


@router.post(FORM + "/imports/{batch_id}/cancel", openapi_extra=IMPORT)
def cancel_import(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                  batch_id: IdPath) -> dict[str, Any]:
    with ctx.db.write() as s:
        return service.cancel(s, caller, forms_handler.published(s, app, form), batch_id)


@router.post(FORM + "/imports/{batch_id}/revert", openapi_extra=IMPORT)
def revert_import(ctx: ContextDep, caller: CallerDep, app: str, form: str,
                  batch_id: IdPath) -> dict[str, Any]:
    """Remove the records the import created (to the recycle bin) and restore the values
    it replaced — except records changed since, listed in ``skipped``. Audited."""
    with ctx.db.write() as s:
        return service.revert(s, caller, forms_handler.published(s, app, form), batch_id)


@router.get(FORM + "/import-mappings", openapi_extra=IMPORT)
def list_mappings(ctx: ContextDep, app: str, form: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": mappings.list_mappings(s, forms_handler.published(s, app, form))}


@router.put(FORM + "/import-mappings/{name}", openapi_extra=IMPORT)
def put_mapping(ctx: ContextDep, caller: CallerDep, app: str, form: str, name: str,
                body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Save (or replace) a named mapping of this form; audited."""
    with ctx.db.write() as s:
        pub = forms_handler.published(s, app, form)
        chosen = service.parse_mapping(body)
        mappings.RowReader(s, caller, pub, chosen)  # only fields the caller may write
        mappings.save_mapping(s, caller, pub, name, chosen)
        return {"name": name, "mapping": chosen.model_dump(mode="json")}
