"""The record page of every form: view, new, edit, the live check while typing, delete,
and the pickers' option lists.

Every write goes through ``engine_forms.service`` exactly as the API's does (the route's
rule, row scope, field rights, masks, validation, audit), one transaction per submit.
A refused save re-renders the form with what was typed and every problem beside its
field. A stale save (someone saved the record after this page was opened) shows who
changed what since, keeps what was typed, and offers to apply it over the new version
or to drop it.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from engine_forms import service
from engine_forms.forms import Published, published
from engine_forms.records import env_for
from engine_forms.service import Caller
from engine_forms.validation import RecordInvalid, assess
from frontend.i18n import _
from frontend.web import redirect, render, safe_next
from frontend.workspace import views
from frontend.workspace.fields import Builder, Editing
from frontend.workspace.values import Shown, ids_of, label_of, record_url
from frontend.workspace.widgets import Posted, payload_of
from platform_core.app import ContextDep, IdPath
from platform_core.errors import Conflict, DomainError, NotFound
from platform_core.security.guard import AccessDep, PrincipalDep, client_of, rule

router = APIRouter(include_in_schema=False)
FORM = "/apps/{app}/forms/{form}"


def caller_of(request: Request, ctx: Any, principal: Any, access: Any) -> Caller:
    return Caller(principal, access, ctx.keyring, client_of(request))


async def posted_form(request: Request) -> Posted:
    form = await request.form()
    return Posted([(k, v) for k, v in form.multi_items() if isinstance(v, str)])


def editable_keys(pub: Published, caller: Caller) -> frozenset[str]:
    return frozenset(f.key for f in pub.spec.fields if caller.access.writable(f.key)
                     and not f.field_type.computed)


def problems_by_field(exc: RecordInvalid | DomainError) -> dict[str, str]:
    """A refusal's problems as one message per field (several joined)."""
    out: dict[str, str] = {}
    for p in getattr(exc, "problems", []):
        out[p.field] = (out[p.field] + "；" if p.field in out else "") + p.zh
    field = exc.extra.get("field") if hasattr(exc, "extra") else None
    if not out and field:
        out[field] = exc.detail
    return out


def snapshot(pub: Published, data: dict[str, Any], editable: frozenset[str]) -> str:
    """The editable values as the page was opened (posted back with the form), so a save
    sends only what the user changed — a field they left alone never overwrites what a
    colleague saved meanwhile."""
    return json.dumps({k: data.get(k) for k in sorted(editable) if pub.spec.field(k)},
                      ensure_ascii=False, separators=(",", ":"))


def _same(spec: Any, a: Any, b: Any) -> bool:
    def norm(v: Any) -> Any:
        if v is None or v == "" or v == []:
            return None
        try:
            return spec.field_type.coerce(v, spec)
        except ValueError:
            return v
    return norm(a) == norm(b)


def changed_only(pub: Published, payload: dict[str, Any], posted: Posted) -> dict[str, Any]:
    """``payload`` without the fields whose value is still the one the page was opened
    with (``_orig``); everything when the page sent no snapshot."""
    try:
        orig = json.loads(posted.get("_orig") or "null")
    except ValueError:
        orig = None
    if not isinstance(orig, dict):
        return payload
    return {k: v for k, v in payload.items()
            if k not in orig or not _same(pub.spec.field(k), v, orig[k])}


def _shown(s: Session, caller: Caller, pub: Published, doc: dict[str, Any]) -> Shown:
    caller = service.narrowed(s, caller, pub)
    shown = Shown.of(s, caller, pub, [doc], owners=True)
    shown.add_files(doc.get("data") or {})
    return shown


def _page_title(pub: Published, doc: dict[str, Any]) -> str:
    title = pub.spec.title_field
    shown = (doc.get("data") or {}).get(title) if title else None
    return str(shown) if shown not in (None, "") else f"{label_of(pub.spec)} #{doc['id']}"


# -- view ---------------------------------------------------------------------------------


@router.get(FORM + "/records/{record_id}", response_class=HTMLResponse,
            openapi_extra=rule("form:read"))
def view_record(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                request: Request, background: BackgroundTasks, app: str, form: str,
                record_id: IdPath) -> HTMLResponse:
    if principal.acting_for is None:  # an admin viewing as a role leaves no trace
        background.add_task(views.recent_log(request.app).note, principal.user_id, record_id)
    return record_page(request, ctx, principal, access, app, form, record_id)


def record_page(request: Request, ctx: Any, principal: Any, access: Any, app: str,
                form: str, record_id: int, *, error: str = "",
                status: int = 200) -> HTMLResponse:
    """The record page: its header and 360° view (``record_view``), the fields; what
    loads after it (the flow's current step, the timeline) comes by htmx. ``error``: a
    quick action's refusal, shown at the top."""
    from frontend.workspace import record_view  # it builds on the list page's rows

    caller = caller_of(request, ctx, principal, access)
    with ctx.db.read() as s:
        pub = published(s, app, form)
        doc = service.read_one(s, caller, pub, record_id)
        shown = _shown(s, caller, pub, doc)
        sections = Builder(s, pub, shown, Editing(frozenset()), doc["data"]).sections()
        owner = shown.user(doc.get("owner_id"))
        department = shown.department(doc.get("department_id"))
        view = record_view.build(s, service.narrowed(s, caller, pub), pub, doc, shown)
    return render(request, "workspace/record.html", status=status, app=app, form=form,
                  pub=pub, doc=doc, title=_page_title(pub, doc), sections=sections,
                  owner=owner, department=department, view=view,
                  can_edit=access.allows("update"), can_delete=access.allows("delete"),
                  problem=request.query_params.get("problem", ""), error=error)


def _history(s: Session, caller: Caller, pub: Published, record_id: int,
             shown: Shown) -> list[dict[str, Any]]:
    """The record's changes, newest first, each as (field label, before, after) text."""
    items = service.history(s, caller, pub, record_id)
    pairs = [i["diff"].get(k) or [] for i in items for k in ("owner_id", "department_id")]
    shown.add_users({i["actor_id"] for i in items if i["actor_id"]}
                    | {v for i in items for v in i["diff"].get("owner_id") or [] if v})
    shown.add_departments({v for i in items for v in i["diff"].get("department_id") or []
                           if v} if pairs else set())
    system = {"owner_id": (_("负责人"), shown.user), "department_id": (_("部门"),
                                                                     shown.department)}
    out = []
    for item in reversed(items):
        changes = []
        for key, pair in item["diff"].items():
            if key in system:
                label, name = system[key]
                changes.append({"label": label, "before": name(pair[0]),
                                "after": name(pair[1])})
                continue
            spec = pub.spec.field(key)
            if spec is None or not isinstance(pair, list) or len(pair) != 2:
                continue
            changes.append({"label": label_of(spec), "before": shown.text(spec, pair[0]),
                            "after": shown.text(spec, pair[1])})
        out.append({"action": item["action"], "at": item["at"],
                    "who": shown.user(item["actor_id"]) or _("系统"),
                    "version": item["row_version"], "changes": changes})
    return out


# -- new and edit -------------------------------------------------------------------------


def _form_page(request: Request, s: Session, caller: Caller, pub: Published, *,
               doc: dict[str, Any] | None, typed: dict[str, Any] | None = None,
               errors: dict[str, str] | None = None, status: int = 200,
               conflict: dict[str, Any] | None = None, row_version: int | None = None,
               orig: str | None = None, back: str = "",
               flow: dict[str, str] | None = None) -> HTMLResponse:
    data = dict(doc["data"]) if doc else {}
    narrowed = service.narrowed(s, caller, pub)
    shown = Shown.of(s, narrowed, pub, [doc or {"data": data}])
    shown.add_files({**data, **(typed or {})})
    if typed:
        shown.prepare([{"data": typed}])
    editing = Editing(editable_keys(pub, narrowed), errors=errors or {}, typed=typed)
    merged = {**data, **(typed or {})}
    builder = Builder(s, pub, shown, editing,
                      _assessed(s, narrowed, pub, merged, data, doc))
    for section in (sections := builder.sections()):
        for f in section.fields:
            if typed is not None and f.key in typed and f.editable:
                f.value = typed[f.key]
    return render(request, "workspace/edit.html", status=status, app=pub.app,
                  form=pub.spec.key, pub=pub, doc=doc, sections=sections,
                  title=_page_title(pub, doc) if doc else _("新建{name}").format(
                      name=label_of(pub.spec)),
                  errors=errors or {}, conflict=conflict, back=back, flow=flow,
                  orig=orig if orig is not None else snapshot(
                      pub, data, editable_keys(pub, narrowed)) if doc else "",
                  row_version=row_version if row_version is not None else
                  (doc or {}).get("row_version"))


def _assessed(s: Session, caller: Caller, pub: Published, merged: dict[str, Any],
              data: dict[str, Any], doc: dict[str, Any] | None) -> dict[str, Any]:
    """The values with formulas and lookups recomputed from what was typed (display)."""
    payload = {k: v for k, v in merged.items() if pub.spec.field(k) is not None
               and not pub.spec.field(k).field_type.computed and merged.get(k) != data.get(k)}
    if not payload:
        return merged
    computed, _problems = assess(pub.compiled, payload, old=data if doc else None,
                                 env=env_for(s))
    out = {**merged, **{f.key: computed.get(f.key) for f in pub.spec.fields
                        if f.type == "formula"}}
    return out | looked_up(s, caller, pub, out)


def looked_up(s: Session, caller: Caller, pub: Published,
              data: dict[str, Any]) -> dict[str, Any]:
    """Lookup fields for the relations chosen so far, read as the caller may see the
    linked record (its scope, hidden and masked fields), one read per relation."""
    out: dict[str, Any] = {}
    records: dict[str, dict[str, Any] | None] = {}
    for f in pub.spec.fields:
        if f.type != "lookup" or not caller.access.readable(f.key):
            continue
        relation = pub.spec.field(f.config["relation"])
        ids = ids_of(data.get(relation.key)) if relation is not None else []
        if not ids or relation.config.get("multiple"):
            out[f.key] = None
            continue
        if relation.key not in records:
            target = published(s, pub.app, relation.config["target"])
            their = Caller(caller.principal, caller.principal.access(pub.app,
                                                                     target.spec.key),
                           caller.keyring)
            try:
                records[relation.key] = service.read_one(s, their, target, ids[0])["data"]
            except DomainError:
                records[relation.key] = None
        found = records[relation.key]
        out[f.key] = None if found is None else found.get(f.config["field"])
    return out


@router.get(FORM + "/new", response_class=HTMLResponse, openapi_extra=rule("form:create"))
def new_record(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
               request: Request, app: str, form: str) -> HTMLResponse:
    caller = caller_of(request, ctx, principal, access)
    params = request.query_params
    with ctx.db.read() as s:
        pub = published(s, app, form)
        prefill = _prefill(pub, request)
        defaults = {f.key: f.default for f in pub.spec.fields if f.default is not None}
        return _form_page(request, s, caller, pub, doc=None,
                          typed={**defaults, **prefill} or None,
                          back=safe_next(params.get("back"), ""),
                          flow=_flow_of(s, app, form, params.get("flow")))


def _flow_of(s: Session, app: str, form: str, key: str | None) -> dict[str, str] | None:
    """The published flow ``key`` over ``form`` (to start when the new record is saved)."""
    if not key:
        return None
    from engine_flows.definitions import latest

    try:
        spec = latest(s, app, key).spec
    except DomainError:
        return None
    return {"key": key, "name": spec.get("name") or key} if spec.get("form") == form \
        else None


def _prefill(pub: Published, request: Request) -> dict[str, Any]:
    """``?customer=12`` pre-links a new record (a related list's "new" button)."""
    out: dict[str, Any] = {}
    for key, value in request.query_params.items():
        spec = pub.spec.field(key)
        if spec is not None and spec.type == "relation" and value.isdecimal():
            out[key] = int(value)
    return out


@router.post(FORM + "/new", response_class=HTMLResponse, openapi_extra=rule("form:create"))
async def create_record(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                        request: Request, app: str, form: str) -> Response:
    """Save a new record; with ``_flow`` also start that flow on it (one transaction:
    both or neither), then open it; with ``_back`` go back there (the page the "new"
    button was on)."""
    posted = await posted_form(request)
    caller = caller_of(request, ctx, principal, access)
    back = safe_next(posted.get("_back"), "")
    with ctx.db.read() as s:
        pub = published(s, app, form)
        fields = [f for f in pub.spec.fields if f.key in editable_keys(pub, caller)]
        flow = _flow_of(s, app, form, posted.get("_flow"))
    payload = payload_of(posted, fields)
    clean = {k: v for k, v in payload.items() if v is not None}
    try:
        with ctx.db.write() as s:
            doc = service.create(s, caller, published(s, app, form), clean)
            if flow is not None:
                _start(s, ctx, principal, app, flow["key"], doc["id"])
    except DomainError as exc:
        with ctx.db.read() as s:
            return _form_page(request, s, caller, published(s, app, form), doc=None,
                              typed=payload, errors=problems_by_field(exc) or {
                                  "": exc.detail}, status=exc.status, back=back, flow=flow)
    if back and flow is None:
        return redirect(back, "record_saved")
    return redirect(record_url(app, form, doc["id"]), "record_saved")


def _start(s: Session, ctx: Any, principal: Any, app: str, flow: str, record_id: int) -> None:
    from engine_flows import runs
    from engine_flows.tasks import Who
    from platform_core.models import utcnow

    runs.start(s, app=app, flow=flow, record_id=record_id,
               who=Who(principal, ctx.keyring, utcnow()))


@router.get(FORM + "/records/{record_id}/edit", response_class=HTMLResponse,
            openapi_extra=rule("form:update"))
def edit_record(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                request: Request, app: str, form: str, record_id: IdPath) -> HTMLResponse:
    caller = caller_of(request, ctx, principal, access)
    with ctx.db.read() as s:
        pub = published(s, app, form)
        service.load_scoped(s, caller, pub, record_id, "update")
        doc = service.read_one(s, caller, pub, record_id)
        return _form_page(request, s, caller, pub, doc=doc)


@router.post(FORM + "/records/{record_id}/edit", response_class=HTMLResponse,
             openapi_extra=rule("form:update"))
async def save_record(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                      request: Request, app: str, form: str, record_id: IdPath) -> Response:
    posted = await posted_form(request)
    caller = caller_of(request, ctx, principal, access)
    version = int(posted.get("row_version") or 0)
    with ctx.db.read() as s:
        pub = published(s, app, form)
        masked = service.masked_keys(pub, caller.access)
        fields = [f for f in pub.spec.fields if f.key in editable_keys(pub, caller)]
    payload = changed_only(pub, payload_of(posted, fields, keep_blank_masked=masked), posted)
    orig = posted.get("_orig")
    try:
        with ctx.db.write() as s:
            service.update(s, caller, published(s, app, form), record_id, payload,
                           expected_version=version)
    except Conflict as exc:
        with ctx.db.read() as s:
            pub = published(s, app, form)
            doc = service.read_one(s, caller, pub, record_id)
            conflict = _conflict(s, caller, pub, record_id, version, payload)
            return _form_page(request, s, caller, pub, doc=doc, typed=payload,
                              status=exc.status, conflict=conflict, row_version=version,
                              orig=orig)
    except DomainError as exc:
        with ctx.db.read() as s:
            pub = published(s, app, form)
            doc = service.read_one(s, caller, pub, record_id)
            return _form_page(request, s, caller, pub, doc=doc, typed=payload,
                              errors=problems_by_field(exc) or {"": exc.detail},
                              status=exc.status, row_version=version, orig=orig)
    return redirect(record_url(app, form, record_id), "record_saved")


def _conflict(s: Session, caller: Caller, pub: Published, record_id: int, version: int,
              payload: dict[str, Any]) -> dict[str, Any]:
    """What others saved after ``version``: who, when, which fields (from → to), and the
    version to apply the typed values over if the user keeps them."""
    doc = service.read_one(s, caller, pub, record_id)
    shown = Shown.of(s, service.narrowed(s, caller, pub), pub, [doc])
    changes = [h for h in _history(s, caller, pub, record_id, shown)
               if h["version"] > version]
    touched = {c["label"] for h in changes for c in h["changes"]}
    mine = {label_of(pub.spec.field(k)) for k in payload if pub.spec.field(k) is not None}
    return {"changes": changes, "current_version": doc["row_version"],
            "overlap": sorted(touched & mine)}


# -- live check ---------------------------------------------------------------------------


@router.post(FORM + "/check", response_class=HTMLResponse, openapi_extra=rule("form:read"))
async def check_record(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                       request: Request, app: str, form: str) -> HTMLResponse:
    """The form as typed so far, evaluated by the save's own code: each field's
    visibility, requiredness and problem (only for fields with a value: nobody wants
    "required" shouted before they got there), and the computed fields' values."""
    posted = await posted_form(request)
    caller = caller_of(request, ctx, principal, access)
    record_id = int(posted.get("record_id") or 0)
    with ctx.db.read() as s:
        pub = published(s, app, form)
        narrowed = service.narrowed(s, caller, pub)
        old = service.read_one(s, caller, pub, record_id)["data"] if record_id else None
        masked = service.masked_keys(pub, caller.access)
        fields = [f for f in pub.spec.fields if f.key in editable_keys(pub, narrowed)]
        payload = {k: v for k, v in payload_of(posted, fields, keep_blank_masked=masked)
                   .items() if not (old is None and v is None)}
        data, problems = assess(pub.compiled, payload, old=old, env=env_for(s))
        data |= looked_up(s, narrowed, pub, data)
        errors = {}
        for p in problems:
            if p.code != "required" and p.field in payload:
                errors[p.field] = (errors[p.field] + "；" if p.field in errors else "") + p.zh
        shown = Shown.of(s, narrowed, pub, [{"data": data}])
        builder = Builder(s, pub, shown, Editing(editable_keys(pub, narrowed),
                                                 errors=errors, typed=payload), data)
        on_page = set((posted.get("_fields") or "").split(","))
        views = [v for section in builder.sections() for v in section.fields
                 if v.key in on_page]
    return render(request, "workspace/_check.html", fields=views, oob=True)


# -- delete -------------------------------------------------------------------------------


@router.post(FORM + "/records/{record_id}/delete", response_class=HTMLResponse,
             openapi_extra=rule("form:delete"))
async def delete_record(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                        request: Request, app: str, form: str,
                        record_id: IdPath) -> Response:
    caller = caller_of(request, ctx, principal, access)
    try:
        with ctx.db.write() as s:
            service.delete(s, caller, published(s, app, form), record_id,
                           expected_version=None)
    except NotFound:
        raise
    except DomainError as exc:  # e.g. still linked from another record: said on its page
        return redirect(record_url(app, form, record_id) + "?problem=" + exc.code)
    return redirect(f"/apps/{app}/forms/{form}", "record_deleted")


# -- pickers ------------------------------------------------------------------------------


@router.get(FORM + "/options/{field}", openapi_extra=rule("form:read"))
def field_options(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                  request: Request, app: str, form: str, field: str,
                  q: str = "") -> JSONResponse:
    """Records of a relation's target form matching ``q`` (its quick search), within the
    user's own read scope there: ``[{"value", "text"}]`` for the picker."""
    caller = caller_of(request, ctx, principal, access)
    with ctx.db.read() as s:
        pub = published(s, app, form)
        spec = pub.spec.field(field)
        if spec is None or spec.type != "relation" or not access.readable(field):
            return JSONResponse({"items": []}, status_code=404)
        target = published(s, app, spec.config["target"])
        other = principal.access(app, target.spec.key)
        if not other.allows("read"):
            return JSONResponse({"items": []})
        their = Caller(principal, other, caller.keyring)
        docs, _next = service.list_page(
            s, their, target, filter=service.search_filter(target, other, q) if q.strip()
            else None, sort=None, cursor=None, limit=20, fields=[], deleted="exclude")
        names = service.titles(s, their, target, {d["id"] for d in docs})
    return JSONResponse({"items": [{"value": str(d["id"]), "text": names.get(d["id"],
                                                                          f"#{d['id']}")}
                                   for d in docs]})


@router.get("/address/options", openapi_extra=rule("user"))
def address_options(province: str = "", city: str = "") -> JSONResponse:
    """The cities of a province, or the districts of a city (the address cascader)."""
    from frontend.workspace.setup import address_lookup

    items = (address_lookup("districts")(province, city) if city
             else address_lookup("cities")(province))
    return JSONResponse({"items": items})


# -- quick create (the relation picker's "new" dialog) ------------------------------------


def _quick_keys(pub: Published, caller: Caller) -> frozenset[str]:
    """What the dialog asks for: the title, the required fields and those required by
    condition — enough for a valid record; the rest is filled on its own page later."""
    keys = {f.key for f in pub.spec.fields if f.required or f.required_if}
    if pub.spec.title_field:
        keys.add(pub.spec.title_field)
    return frozenset(keys) & editable_keys(pub, caller)


def _quick_page(request: Request, s: Session, caller: Caller, pub: Published, target: str,
                *, typed: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                status: int = 200) -> HTMLResponse:
    keys = _quick_keys(pub, caller)
    shown = Shown.of(s, caller, pub, [{"data": typed or {}}])
    editing = Editing(keys, errors=errors or {}, typed=typed)
    builder = Builder(s, pub, shown, editing, typed or {}, only=keys)
    return render(request, "workspace/_quick.html", status=status, app=pub.app,
                  form=pub.spec.key, pub=pub, sections=builder.sections(), target=target,
                  errors=errors or {})


@router.get(FORM + "/quick", response_class=HTMLResponse, openapi_extra=rule("form:create"))
def quick_form(ctx: ContextDep, principal: PrincipalDep, access: AccessDep, request: Request,
               app: str, form: str, target: str = "") -> HTMLResponse:
    caller = caller_of(request, ctx, principal, access)
    with ctx.db.read() as s:
        return _quick_page(request, s, caller, published(s, app, form), target[:100])


@router.post(FORM + "/quick", response_class=HTMLResponse, openapi_extra=rule("form:create"))
async def quick_create(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                       request: Request, app: str, form: str) -> HTMLResponse:
    """Create the record from the dialog; answer with the new option for the picker
    (``data-created``) or the dialog again with the problems."""
    posted = await posted_form(request)
    caller = caller_of(request, ctx, principal, access)
    target = (posted.get("target") or "")[:100]
    with ctx.db.read() as s:
        pub = published(s, app, form)
        fields = [f for f in pub.spec.fields if f.key in _quick_keys(pub, caller)]
    payload = {k: v for k, v in payload_of(posted, fields).items() if v is not None}
    try:
        with ctx.db.write() as s:
            doc = service.create(s, caller, published(s, app, form), payload)
    except DomainError as exc:
        with ctx.db.read() as s:
            return _quick_page(request, s, caller, published(s, app, form), target,
                               typed=payload, errors=problems_by_field(exc) or {
                                   "": exc.detail}, status=200)
    return render(request, "workspace/_quick.html", created={
        "id": doc["id"], "title": _page_title(pub, doc)}, target=target, pub=pub)
