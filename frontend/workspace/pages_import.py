"""The import page of a form: a guided import in steps, for a clerk on her first day.

Order of events (each step's state is in its URL, so a reload keeps the step):

1. ``GET …/import`` — choose or drop a file; the form's earlier imports below (history).
2. ``POST …/import`` — the file is saved (``imports.service.upload``) → 303 to the map
   step, ``…/import/map?file=<the upload's name>&name=<the file's own name>``.
3. ``GET …/import/map`` — the file is opened (``reading.open_table``: sheet and header
   row, auto-found or chosen), each column's suggested field (``mapping.suggest``, or a
   saved mapping, or the mapping of an earlier batch ``from=``), sample values, the value
   mapping of select columns (``mapping.select_values``) and the options (mode, key,
   all-or-nothing, a batch name). A changed column re-renders the mapping in place
   (htmx, ``action=refresh``).
4. ``POST …/import/map`` — ``save`` a mapping by name, or start a batch
   (``service.start``): ``check`` (a dry run: nothing is written) or ``import``.
5. ``GET …/imports/{id}`` — the batch: progress polled every second while it runs
   (``…/progress``), then the first rows as stored and the problems (paged, and as the
   original file with a problem column, ``…/problems.xlsx``); from a dry run ``…/run``
   starts the real import with the same file, mapping and options; ``…/cancel``, and
   ``…/revert`` once imported.

Every write goes through ``engine_forms.imports.service``, so the page meets exactly the
checks of the API; a refusal is a message on the page, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from engine_forms.forms import published
from engine_forms.importing import ImportError_
from engine_forms.imports import mapping as mapping_
from engine_forms.imports import reading
from engine_forms.imports.coerce import cell_text
from frontend.i18n import _, current_locale
from frontend.web import redirect, render
from frontend.workspace import import_views as views
from frontend.workspace.import_views import MAX_MB, service
from frontend.workspace.pages_record import caller_of
from platform_core.app import ContextDep
from platform_core.errors import Conflict, DomainError, InvalidInput, NotFound
from platform_core.security.guard import AccessDep, PrincipalDep, rule

router = APIRouter(include_in_schema=False)
PAGE = "/apps/{app}/forms/{form}/import"
BATCH = "/apps/{app}/forms/{form}/imports/{batch_id}"
PAGE_SIZE = 50
RUNNING = ("queued", "running")


def _base(app: str, form: str) -> str:
    return f"/apps/{app}/forms/{form}"


@contextmanager
def _caller(ctx: Any, request: Request, principal: Any, access: Any, *,
            write: bool = False) -> Iterator[tuple[Any, Any]]:
    with (ctx.db.write() if write else ctx.db.read()) as s:
        yield s, caller_of(request, ctx, principal, access)


# -- step 1: upload, history ---------------------------------------------------------------


def _start_page(request: Request, ctx: Any, principal: Any, access: Any, app: str,
                form: str, *, problem: str = "", status: int = 200) -> HTMLResponse:
    with _caller(ctx, request, principal, access) as (s, caller):
        pub = published(s, app, form)
        batches = service.list_batches(s, caller, pub)
    return render(request, "workspace/import.html", status=status, app=app, form=form,
                  pub=pub, batches=batches, problem=problem, max_mb=MAX_MB)


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("form:import"))
def import_page(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                request: Request, app: str, form: str) -> HTMLResponse:
    return _start_page(request, ctx, principal, access, app, form)


@router.post(PAGE, response_class=HTMLResponse, openapi_extra=rule("form:import"))
async def import_upload(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                        request: Request, app: str, form: str) -> Response:
    posted = await request.form()
    upload = posted.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _start_page(request, ctx, principal, access, app, form,
                           problem=_("请选择一个文件"), status=422)
    try:
        path = service.upload(Path(ctx.settings.data_dir), upload.filename, upload.file,
                              limit=MAX_MB * 1024 * 1024)
    except DomainError as exc:
        return _start_page(request, ctx, principal, access, app, form,
                           problem=views.message(exc), status=exc.status)
    # opened by the next step (a big sheet takes seconds to parse: once, not twice);
    # a file it cannot read brings the clerk back here with the reason
    query = {"file": views.token(ctx, path), "name": upload.filename}
    return redirect(f"{_base(app, form)}/import/map?{urlencode(query)}")


# -- steps 2 and 3: map the columns, the options ---------------------------------------------


def _open(ctx: Any, values: Any) -> tuple[Path, Any]:
    path = views.upload_path(ctx, values.get("file", ""))
    table = reading.open_table(path, filename=values.get("name") or path.name,
                               sheet=values.get("sheet") or None,
                               header_row=views.number(values.get("header_row")))
    return path, table


def _map_page(request: Request, ctx: Any, principal: Any, access: Any, app: str, form: str,
              *, posted: Any | None = None, problem: str = "", status: int = 200,
              fragment: bool = False) -> HTMLResponse:
    values = posted if posted is not None else request.query_params
    with _caller(ctx, request, principal, access) as (s, caller):
        pub = published(s, app, form)
        try:
            _path, table = _open(ctx, values)
            context = views.map_context(s, caller, pub, table, request.query_params, posted)
        except DomainError as exc:
            return _start_page(request, ctx, principal, access, app, form,
                               problem=views.message(exc), status=exc.status)
    template = "workspace/import_mapping.html" if fragment else "workspace/import_map.html"
    return render(request, template, status=status, app=app, form=form, pub=pub,
                  file=values.get("file"), name=values.get("name") or table.filename,
                  problem=problem, cell_text=cell_text, **context)


@router.get(PAGE + "/map", response_class=HTMLResponse, openapi_extra=rule("form:import"))
def import_map(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
               request: Request, app: str, form: str) -> HTMLResponse:
    return _map_page(request, ctx, principal, access, app, form)


def _options(posted: Any, table: Any) -> Any:
    mode = posted.get("mode") if posted.get("mode") in ("upsert", "skip") else "insert"
    # the key select keeps its choice while "add every row" is picked: not sent then
    key = posted.get("key") or None if mode != "insert" else None
    return service.ImportOptions(mode=mode, key=key,
                                 atomic=posted.get("atomic") != "0", sheet=table.sheet,
                                 header_row=table.header_row)


@router.post(PAGE + "/map", response_class=HTMLResponse, openapi_extra=rule("form:import"))
async def import_map_post(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                          request: Request, app: str, form: str) -> Response:
    posted = {k: v for k, v in (await request.form()).multi_items() if isinstance(v, str)}
    action = posted.get("action", "refresh")
    if action == "refresh":
        return _map_page(request, ctx, principal, access, app, form, posted=posted,
                         fragment=bool(request.headers.get("HX-Request")))
    try:
        path, table = _open(ctx, posted)
        chosen = views.posted_mapping(posted, table.header, table.sheet, table.header_row)
        with _caller(ctx, request, principal, access, write=True) as (s, caller):
            pub = published(s, app, form)
            if action == "save":
                name = (posted.get("mapping_name") or "").strip()
                if not name:
                    raise InvalidInput(_("请给这个映射起个名字"), field="mapping_name")
                mapping_.save_mapping(s, caller, pub, name, chosen)
            else:
                batch = service.start(s, caller, pub, path=path, filename=table.filename,
                                      mapping=chosen, options=_options(posted, table),
                                      dry_run=action != "import",
                                      name=(posted.get("batch") or "").strip() or None)
                batch_id = batch.id
    except DomainError as exc:
        return _map_page(request, ctx, principal, access, app, form, posted=posted,
                         problem=views.message(exc), status=exc.status)
    if action == "save":
        query = {k: posted.get(k, "") for k in ("file", "name", "sheet", "header_row")}
        return redirect(f"{_base(app, form)}/import/map?"
                        f"{urlencode(query | {'mapping': name})}")
    return redirect(f"{_base(app, form)}/imports/{batch_id}")


# -- steps 4 and 5: the batch (dry run or import), its progress and problems ---------------


def _batch_page(request: Request, ctx: Any, principal: Any, access: Any, app: str,
                form: str, batch_id: int, *, problem: str = "",
                status: int = 200) -> HTMLResponse:
    page = max(1, views.number(request.query_params.get("page"), 1) or 1)
    with _caller(ctx, request, principal, access) as (s, caller):
        pub = published(s, app, form)
        st = service.status(s, caller, pub, batch_id)
        problems = service.problems(s, caller, pub, batch_id, limit=PAGE_SIZE,
                                    offset=(page - 1) * PAGE_SIZE)
        remap = views.remap(ctx, service.load(s, caller, pub, batch_id))
        preview = views.preview(s, caller, pub, st.get("preview") or [])
    return render(request, "workspace/import_batch.html", status=status, app=app,
                  form=form, pub=pub, st=st, problems=problems, page=page,
                  pages=max(1, -(-int(st.get("problems") or 0) // PAGE_SIZE)),
                  running=st["status"] in RUNNING, problem=problem, refused=views.refused(st),
                  preview=preview, remap=remap,
                  locale_en=current_locale() != "zh-CN")


@router.get(BATCH, response_class=HTMLResponse, openapi_extra=rule("form:import"))
def import_batch(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                 request: Request, app: str, form: str, batch_id: int) -> HTMLResponse:
    return _batch_page(request, ctx, principal, access, app, form, batch_id)


@router.get(BATCH + "/progress", response_class=HTMLResponse,
            openapi_extra=rule("form:import"))
def import_progress(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                    request: Request, app: str, form: str, batch_id: int) -> Response:
    """The progress bar, polled while the batch runs; once it ends, the whole page again."""
    with _caller(ctx, request, principal, access) as (s, caller):
        st = service.status(s, caller, published(s, app, form), batch_id)
    if st["status"] not in RUNNING:
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    return render(request, "workspace/import_progress.html", app=app, form=form, st=st,
                  running=True)


@router.get(BATCH + "/problems.xlsx", openapi_extra=rule("form:import"))
def import_problem_file(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                        request: Request, app: str, form: str, batch_id: int) -> Response:
    """The uploaded sheet again with a column saying what is wrong with each bad row."""
    with _caller(ctx, request, principal, access) as (s, caller):
        pub = published(s, app, form)
        st = service.status(s, caller, pub, batch_id)
        found = service.problems(s, caller, pub, batch_id, limit=10**7, offset=0)
        batch = service.load(s, caller, pub, batch_id)
        path, options = Path(batch.path), batch.options or {}
    by_row: dict[int, str] = {}
    for p in found:
        text = f"{p.get('header') or p.get('column') or ''}: {p['reason']}".lstrip(": ")
        by_row[p["row"]] = f"{by_row[p['row']]}；{text}" if p["row"] in by_row else text
    try:
        table = reading.open_table(path, filename=st.get("filename") or path.name,
                                   sheet=options.get("sheet"),
                                   header_row=options.get("header_row"))
    except (ImportError_, OSError) as exc:
        raise NotFound(_("原文件已不存在")) from exc
    stem = (st.get("filename") or "import").rsplit(".", 1)[0]
    name = f"{stem}-问题.xlsx"
    from engine_forms.imports.problems_file import problem_workbook

    return Response(problem_workbook(table, by_row), media_type=(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        headers={"Content-Disposition": f"attachment; filename=problems.xlsx; "
                                        f"filename*=UTF-8''{_quote(name)}"})


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text)


def _act(request: Request, ctx: Any, principal: Any, access: Any, app: str, form: str,
         batch_id: int, what: str) -> Response:
    try:
        with _caller(ctx, request, principal, access, write=True) as (s, caller):
            pub = published(s, app, form)
            getattr(service, what)(s, caller, pub, batch_id)
    except DomainError as exc:
        return _batch_page(request, ctx, principal, access, app, form, batch_id,
                           problem=views.message(exc), status=exc.status)
    return redirect(f"{_base(app, form)}/imports/{batch_id}")


@router.post(BATCH + "/cancel", response_class=HTMLResponse,
             openapi_extra=rule("form:import"))
def import_cancel(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                  request: Request, app: str, form: str, batch_id: int) -> Response:
    return _act(request, ctx, principal, access, app, form, batch_id, "cancel")


@router.post(BATCH + "/revert", response_class=HTMLResponse,
             openapi_extra=rule("form:import"))
def import_revert(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                  request: Request, app: str, form: str, batch_id: int) -> Response:
    return _act(request, ctx, principal, access, app, form, batch_id, "revert")


@router.post(BATCH + "/run", response_class=HTMLResponse, openapi_extra=rule("form:import"))
async def import_run(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                     request: Request, app: str, form: str, batch_id: int) -> Response:
    """After a dry run: the real import of the same file, mapping and options."""
    posted = await request.form()
    try:
        with _caller(ctx, request, principal, access, write=True) as (s, caller):
            pub = published(s, app, form)
            checked = service.load(s, caller, pub, batch_id)
            if not ((checked.dry_run and checked.status == "done")
                    or views.refused(service.describe(s, checked))):
                raise Conflict(_("只有完成的检查才能开始导入"), batch_id=batch_id)
            options = service.ImportOptions.model_validate(checked.options or {})
            if "atomic" in posted:
                options = options.model_copy(update={"atomic": posted["atomic"] != "0"})
            batch = service.start(s, caller, pub, path=Path(checked.path),
                                  filename=checked.filename,
                                  mapping=mapping_.Mapping.model_validate(checked.mapping),
                                  options=options, dry_run=False,
                                  name=str(posted.get("batch") or "").strip()
                                  or checked.name)
            new_id = batch.id
    except DomainError as exc:
        return _batch_page(request, ctx, principal, access, app, form, batch_id,
                           problem=views.message(exc), status=exc.status)
    return redirect(f"{_base(app, form)}/imports/{new_id}")
