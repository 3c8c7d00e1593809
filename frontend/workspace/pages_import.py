"""The import page of a form: upload a spreadsheet, check it first (nothing written), then
import it all or nothing; every refused row listed with its column and reason. The same
``engine_forms.transfer.import_file`` as the API's import, so the same checks and audit.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import UploadFile

from engine_forms import transfer
from engine_forms.forms import published
from frontend.i18n import _
from frontend.web import render
from frontend.workspace.pages_record import caller_of
from platform_core.app import ContextDep
from platform_core.errors import DomainError
from platform_core.security.guard import AccessDep, PrincipalDep, rule

router = APIRouter(include_in_schema=False)
PAGE = "/apps/{app}/forms/{form}/import"
MAX_BYTES = 20 * 1024 * 1024


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("form:import"))
def import_page(ctx: ContextDep, request: Request, app: str, form: str) -> HTMLResponse:
    with ctx.db.read() as s:
        pub = published(s, app, form)
    return render(request, "workspace/import.html", app=app, form=form, pub=pub)


@router.post(PAGE, response_class=HTMLResponse, openapi_extra=rule("form:import"))
async def import_upload(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                        request: Request, app: str, form: str) -> HTMLResponse:
    posted = await request.form()
    upload = posted.get("file")
    check = posted.get("mode") != "import"
    caller = caller_of(request, ctx, principal, access)
    result, errors, problem, status = None, [], "", 200
    if not isinstance(upload, UploadFile) or not upload.filename:
        problem, status = _("请选择一个文件"), 422
    else:
        content = await upload.read(MAX_BYTES + 1)
        try:
            if len(content) > MAX_BYTES:
                raise transfer_error(_("文件超过 20 MB"))
            with ctx.db.write() as s:
                result = transfer.import_file(s, caller, published(s, app, form),
                                              filename=upload.filename, content=content,
                                              dry_run=check)
        except DomainError as exc:
            errors, problem, status = exc.extra.get("errors") or [], exc.detail, exc.status
    with ctx.db.read() as s:
        pub = published(s, app, form)
    return render(request, "workspace/import.html", status=status, app=app, form=form,
                  pub=pub, result=result, errors=errors[:500], problem=problem,
                  filename=getattr(upload, "filename", ""))


def transfer_error(detail: str) -> DomainError:
    from platform_core.errors import InvalidInput

    return InvalidInput(detail, field="file")
