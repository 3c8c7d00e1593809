"""Apps: every app with its template and version, the template catalogue to install
from (with or without demo data, under a chosen key), a new empty app, a bundle zip to
export or to install. Administrators only (rule ``admin``).

Installing with demo data takes up to a minute, so it runs in a thread of this process
and the page follows its progress (``/admin/apps/jobs/{id}``, polled by htmx); the
install itself is the catalogue's, the one ``qiao template install`` and the API use.
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from engine_forms.forms import create_app, list_apps
from engine_forms.models import Form as FormRow
from frontend.i18n import _
from frontend.web import redirect, render
from platform_core.app import ActorDep, ContextDep
from platform_core.catalog import app_catalog
from platform_core.errors import DomainError, InvalidInput, NotFound
from platform_core.security import audit
from platform_core.security.guard import rule

router = APIRouter(include_in_schema=False)
PAGE = "/admin/apps"
KEY = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
Text = Annotated[str, Form(max_length=100)]


@dataclass
class Job:
    id: int
    title: str
    lines: list[str] = field(default_factory=list)
    status: str = "running"  # running | done | failed
    app: str | None = None
    error: str = ""
    demo: dict[str, Any] | None = None


class Jobs:
    """Installs running in this process, newest first (the last 20 are kept)."""

    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, title: str, work: Any) -> Job:
        job = Job(next(self._ids), title)
        with self._lock:
            self._jobs[job.id] = job
            for old in sorted(self._jobs)[:-20]:
                del self._jobs[old]

        def run() -> None:
            try:
                done = work(job.lines.append)
                job.app, job.demo, job.status = done.app, done.demo, "done"
            except DomainError as exc:
                job.error, job.status = exc.detail, "failed"
            except Exception as exc:  # noqa: BLE001 - shown on the page, logged by the thread
                job.error, job.status = f"{type(exc).__name__}: {exc}", "failed"
                raise

        threading.Thread(target=run, name=f"qiao-install-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: int) -> Job:
        found = self._jobs.get(job_id)
        if found is None:
            raise NotFound(f"install {job_id} is not known to this server")
        return found


def jobs_of(request: Request) -> Jobs:
    state = request.app.state
    if getattr(state, "install_jobs", None) is None:
        state.install_jobs = Jobs()
    return state.install_jobs


def _page(ctx: Any, request: Request, *, status: int = 200, **extra: Any) -> HTMLResponse:
    with ctx.db.read() as s:
        counts = dict(s.execute(select(FormRow.app, func.count()).group_by(FormRow.app)).all())
        apps = [{"key": a.key, "name": a.name, "template": a.template,
                 "version": a.template_version, "forms": counts.get(a.key, 0)}
                for a in list_apps(s)]
    try:
        templates = app_catalog().templates()
    except DomainError:
        templates = []
    job = None
    raw = request.query_params.get("job", "")
    if raw.isdigit():
        try:
            job = jobs_of(request).get(int(raw))
        except NotFound:
            job = None
    return render(request, "apps.html", status=status, apps=apps, templates=templates,
                  job=job, **extra)


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("admin"))
def apps_page(ctx: ContextDep, request: Request) -> HTMLResponse:
    return _page(ctx, request)


def _key(raw: str) -> str | None:
    key = raw.strip()
    if key and not KEY.match(key):
        raise InvalidInput(_("应用键只能用小写字母、数字和下划线，并以字母开头"), field="key")
    return key or None


@router.post(PAGE + "/install", response_class=HTMLResponse, openapi_extra=rule("admin"))
def install(ctx: ContextDep, request: Request, actor: ActorDep, template: Text,
            key: Text = "", demo: Annotated[bool, Form()] = False) -> Response:
    try:
        chosen = _key(key)
        names = {t.name: t for t in app_catalog().templates()}
        if template not in names:
            raise InvalidInput(_("没有这个模板"), field="template")
    except DomainError as exc:
        return _page(ctx, request, status=exc.status, problem=exc.detail)
    catalog = app_catalog()
    job = jobs_of(request).start(
        names[template].title,
        lambda say: catalog.install(ctx, template, key=chosen, demo=demo, actor=actor,
                                    progress=say))
    return redirect(f"{PAGE}?job={job.id}")


@router.get(PAGE + "/jobs/{job_id}", response_class=HTMLResponse,
            openapi_extra=rule("admin"))
def job_status(request: Request, job_id: int) -> HTMLResponse:
    return render(request, "_install_job.html", job=jobs_of(request).get(job_id))


@router.post(PAGE + "/import", response_class=HTMLResponse, openapi_extra=rule("admin"))
async def import_bundle(ctx: ContextDep, request: Request, actor: ActorDep,
                        file: Annotated[UploadFile, File()], key: Text = "") -> Response:
    data = await file.read()
    try:
        chosen = _key(key)
        await run_in_threadpool(app_catalog().install_bundle, ctx, data, key=chosen,
                                actor=actor, progress=lambda _line: None)
    except DomainError as exc:
        return await run_in_threadpool(_page, ctx, request, status=exc.status,
                                       problem=exc.detail)
    return redirect(PAGE, "app_imported")


@router.post(PAGE + "/new", response_class=HTMLResponse, openapi_extra=rule("admin"))
def new_app(ctx: ContextDep, request: Request, actor: ActorDep, key: Text,
            name: Text) -> Response:
    """An empty app: its first form is made in the designer."""
    try:
        chosen = _key(key)
        if chosen is None or not name.strip():
            raise InvalidInput(_("新应用需要键和名称"), field="key")
        with ctx.db.write() as s:
            create_app(s, key=chosen, name=name.strip())
            audit.append(s, actor=actor, action="app.create", target=f"app:{chosen}",
                         detail={"name": name.strip()})
    except DomainError as exc:
        return _page(ctx, request, status=exc.status, problem=exc.detail)
    return redirect(f"/apps/{chosen}/design/new", "app_created")
