"""The form designer's pages: the designer itself (an existing form, or a new one) and
the three things it asks the server while the admin works — a field key for a label, a
preview of the form as a role would see it, and an expression tried on a real record.

The designer saves, checks and publishes through the integrators' API
(``PUT /api/v1/apps/{app}/forms/{form}``, ``…/check``, ``…/publish``), so a change made
here meets exactly the engine checks a change made by a script meets; these routes
write nothing.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_flows.definitions import latest, list_flows
from engine_forms import service
from engine_forms.expr import ExpressionProblems, compile_form, schema_of
from engine_forms.forms import Published, _resolver, get_form, list_forms, published
from engine_forms.records import env_for
from engine_forms.service import Caller
from engine_forms.spec import FormSpec, SpecError, load_form
from engine_forms.validation import assess
from engine_rules.models import Rule
from engine_rules.runner import spec_of
from frontend.designer.palette import designer_strings, key_for, palette
from frontend.i18n import _, current_locale
from frontend.web import render
from frontend.workspace.fields import Builder, Editing
from frontend.workspace.values import Shown, label_of
from platform_core.app import ContextDep
from platform_core.errors import DomainError, InvalidInput
from platform_core.expressions import FUNCTIONS
from platform_core.expressions.checker import check
from platform_core.expressions.errors import ExpressionError
from platform_core.expressions.evaluator import compile_python
from platform_core.expressions.parser import parse
from platform_core.models import Record
from platform_core.security.guard import PrincipalDep, rule
from platform_core.security.models import Role
from platform_core.security.principal import Principal
from platform_core.store import FieldSet

router = APIRouter(include_in_schema=False)
DESIGN = "/apps/{app}/forms/{form}/design"
HELP = "/apps/{app}/design"
BLANK = {"key": "", "name": "", "fields": [], "layout": [
    {"section": "基本信息", "columns": 2, "fields": []}]}


def _forms_of(s: Session, app: str) -> list[dict[str, Any]]:
    """The app's published forms, for the pickers (relation targets, lookup paths)."""
    out = []
    for row in list_forms(s, app):
        if row.published_version is None:
            continue
        spec = published(s, app, row.key).spec
        out.append({"key": row.key, "name": label_of(spec), "fields": [
            {"key": f.key, "label": label_of(f), "type": f.type,
             "target": f.config.get("target") if f.type == "relation" else None}
            for f in spec.fields]})
    return out


def _flows_of(s: Session, app: str) -> list[dict[str, str]]:
    """The app's published flows and the form each runs over (a quick action may start
    one on the record it creates)."""
    out = []
    for row in list_flows(s, app):
        if row.published_version is not None:
            spec = latest(s, app, row.key).spec
            out.append({"key": row.key, "name": str(spec.get("name") or row.key),
                        "form": str(spec.get("form") or "")})
    return out


def _manual_rules(s: Session, app: str, form: str | None) -> list[dict[str, str]]:
    """The manual rules of ``form`` (trigger ``{"type": "manual", "form": form}``): what a
    "send a message" quick action offers."""
    if not form:
        return []
    rows = s.execute(select(Rule).where(Rule.app == app, Rule.trigger == "manual")).scalars()
    found = [(spec_of(r), r) for r in rows]
    return sorted(({"key": r.key, "name": spec.name} for spec, r in found
                   if spec.trigger.form == form), key=lambda x: x["name"])


def _roles(s: Session) -> list[dict[str, str]]:
    return [{"key": r.key, "name": r.name} for r in s.execute(
        select(Role).order_by(Role.id)).scalars()]


def _functions() -> list[dict[str, str]]:
    english = current_locale() == "en"
    return [{"name": f.name, "text": f.en if english else f.zh, "example": f.example or ""}
            for key in FUNCTIONS if (f := FUNCTIONS.get(key))]


def _json(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` block (no ``</script>`` inside)."""
    return Markup(json.dumps(value, ensure_ascii=False).replace("<", "\\u003c"))


def _page(request: Request, s: Session, app: str, *, draft: dict[str, Any],
          form: str | None, published_keys: list[str], version: int | None) -> HTMLResponse:
    data = {"app": app, "form": form, "draft": draft, "published": published_keys,
            "version": version, "palette": palette(), "forms": _forms_of(s, app),
            "roles": _roles(s), "functions": _functions(), "flows": _flows_of(s, app),
            "manual_rules": _manual_rules(s, app, form)}
    return render(request, "designer/design.html", app=app, form=form,
                  title=draft.get("name") or _("新表单"), data=_json(data),
                  strings=_json(designer_strings()))


@router.get(DESIGN, response_class=HTMLResponse, openapi_extra=rule("form:manage"))
def design(ctx: ContextDep, request: Request, app: str, form: str) -> HTMLResponse:
    with ctx.db.read() as s:
        row = get_form(s, app, form)
        keys = ([f.key for f in published(s, app, form).spec.fields]
                if row.published_version else [])
        return _page(request, s, app, draft=row.draft, form=form, published_keys=keys,
                     version=row.published_version)


@router.get(HELP + "/new", response_class=HTMLResponse, openapi_extra=rule("app:manage"))
def new_form(ctx: ContextDep, request: Request, app: str) -> HTMLResponse:
    with ctx.db.read() as s:
        from engine_forms.forms import get_app

        get_app(s, app)
        return _page(request, s, app, draft=BLANK, form=None, published_keys=[],
                     version=None)


@router.get(HELP + "/key", openapi_extra=rule("app:manage"))
def field_key(label: str = "", taken: str = "") -> JSONResponse:
    """A field key for ``label`` by pinyin, unique among ``taken`` (comma-separated)."""
    return JSONResponse({"key": key_for(label[:100], set(taken.split(",")))})


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise InvalidInput("the request body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise InvalidInput("send {\"spec\": <the form definition>, …}")
    return body


def _draft(s: Session, app: str, raw: dict[str, Any]) -> Published:
    """The working definition compiled as a publish would (its relation targets among
    the app's published forms): a ``Published`` the page builder can render."""
    spec = load_form(raw)
    compiled = compile_form(spec, _resolver(s, app, {spec.key: spec}))
    return Published(app=app, version=0, spec=spec, compiled=compiled,
                     fields=FieldSet(app, spec.key, {}))


def _as_role(s: Session, app: str, form: str, role_key: str) -> tuple[Principal, Any, str]:
    role = s.execute(select(Role).where(Role.key == role_key)).scalar_one_or_none()
    if role is None:
        raise InvalidInput(f"role {role_key!r} does not exist", field="role")
    perms = role.permissions or {}
    principal = Principal(user_id=0, username=f"preview:{role.key}", display_name=role.name,
                          department_id=None, roles=(role.key,), role_perms=(perms,),
                          via="session")
    return principal, principal.access(app, form), role.name


@router.post(HELP + "/preview", response_class=HTMLResponse,
             openapi_extra=rule("app:manage"))
async def preview(ctx: ContextDep, request: Request, app: str) -> HTMLResponse:
    """The working form as a new record's page shows it to ``role``: its hidden fields
    left out, read-only ones as text, masked ones named; nothing is saved."""
    body = await _body(request)
    with ctx.db.read() as s:
        try:
            pub = _draft(s, app, body["spec"])
        except (SpecError, ExpressionProblems, ValueError) as exc:
            return render(request, "designer/_preview.html", problem=str(exc))
        principal, access, role_name = _as_role(s, app, pub.spec.key,
                                                str(body.get("role") or "admin"))
        caller = Caller(principal, access, ctx.keyring)
        if not access.allows("read"):
            return render(request, "designer/_preview.html", role=role_name, sections=[],
                          closed=True)
        shown = Shown(s, caller, pub, service.masked_keys(pub, access))
        writable = frozenset(f.key for f in pub.spec.fields
                             if access.writable(f.key))
        sections = Builder(s, pub, shown, Editing(writable), {}).sections()
        hidden = [label_of(f) for f in pub.spec.fields if not access.readable(f.key)]
        readonly = [label_of(f) for f in pub.spec.fields if access.readable(f.key)
                    and f.key not in writable and not f.field_type.computed]
        masked = [label_of(f) for f in pub.spec.fields if f.key in shown.masked]
        return render(request, "designer/_preview.html", role=role_name, sections=sections,
                      hidden=hidden, readonly=readonly, masked=masked)


@router.post(HELP + "/try", openapi_extra=rule("app:manage"))
async def try_it(ctx: ContextDep, principal: PrincipalDep, request: Request,
                 app: str) -> JSONResponse:
    """An expression of the working form evaluated on one existing record (read as the
    admin may read it): its value, or where it goes wrong."""
    body = await _body(request)
    text = str(body.get("text") or "").strip()
    if not text:
        raise InvalidInput(_("先写一个表达式"), field="text")
    with ctx.db.read() as s:
        spec = load_form(body["spec"])
        resolve = _resolver(s, app, {spec.key: spec})
        compiled = compile_form(spec, resolve)
        data = _record_data(s, principal, ctx.keyring, app, spec, body.get("record_id"))
        try:
            typed = check(parse(text), schema_of(
                spec, {f.key: k for f, _fn, k in compiled.formulas}, resolve=resolve))
        except ExpressionError as exc:
            return JSONResponse({"ok": False, "column": exc.column,
                                 "message": _expr_message(exc)})
        env = env_for(s)
        values, _problems = assess(compiled, {}, old=data, env=env)
        value = compile_python(typed)(values, env)
    return JSONResponse({"ok": True, "type": typed.type.name,
                         "value": _shown_value(value)})


def _expr_message(exc: ExpressionError) -> str:
    return exc.message_en if current_locale() == "en" else exc.message_zh


def _shown_value(value: Any) -> str:
    if value is None:
        return _("（空）")
    if value is True:
        return _("是")
    if value is False:
        return _("否")
    return str(value)


def _record_data(s: Session, principal: Principal, keyring: Any, app: str,
                 spec: FormSpec, record_id: Any) -> dict[str, Any]:
    """The stored values of one record of the form (opened, as its reader sees them); the
    form's latest record when none is named; nothing for a form without records."""
    if record_id in (None, ""):
        record_id = s.execute(select(Record.id).where(
            Record.app == app, Record.form == spec.key, Record.deleted_at.is_(None))
            .order_by(Record.id.desc()).limit(1)).scalar_one_or_none()
        if record_id is None:
            return {}
    try:
        rid = int(record_id)
    except (TypeError, ValueError):
        raise InvalidInput(_("记录编号应是数字"), field="record_id") from None
    pub = published(s, app, spec.key)
    caller = Caller(principal, principal.access(app, spec.key), keyring)
    try:
        doc = service.read_one(s, caller, pub, rid)
    except DomainError as exc:
        raise InvalidInput(_("找不到编号为 {id} 的记录").format(id=rid),
                           field="record_id") from exc
    stored = {k: v for k, v in doc["data"].items() if pub.spec.field(k) is not None
              and not pub.spec.field(k).field_type.computed}
    coerced, _problems = assess(pub.compiled, stored, env=env_for(s))
    return coerced
