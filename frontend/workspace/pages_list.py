"""The record list of every form: columns from the form's fields, sorting where the store
can sort, the filter builder, a quick search, keyset pages ("load more"), and the total
counted after the page has been shown.

Everything is the records service's list query run as the viewer — their row scope,
hidden fields (never offered as a column or filter), masks (masked and encrypted
fields are never sortable and only matched exactly) — one SELECT per page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_forms import service
from engine_forms.fieldtypes import FieldError
from engine_forms.forms import Published, published
from engine_forms.service import Caller
from frontend.i18n import _
from frontend.web import redirect, render
from frontend.workspace import filters, views
from frontend.workspace.fields import people_options
from frontend.workspace.pages_record import caller_of, posted_form
from frontend.workspace.values import Shown, label_of
from frontend.workspace.widgets import Posted, money_text
from platform_core.app import ContextDep, IdPath
from platform_core.errors import DomainError, InvalidInput
from platform_core.security.guard import AccessDep, PrincipalDep, rule

router = APIRouter(include_in_schema=False)
FORM = "/apps/{app}/forms/{form}"
PAGE_SIZE = 50
DEFAULT_COLUMNS = 6
COUNT_CAP = 10_000
NOT_COLUMNS = frozenset({"subtable", "attachment", "textarea", "address"})


@dataclass
class ListQuery:
    """What a list page was asked for, read from its URL."""

    columns: list[str]
    sort: str
    q: str
    conditions: list[filters.Condition]
    join: str
    cursor: str | None
    ast: Any = None  # a filter in the API's own language (links from reports, integrators)

    def filter(self, pub: Published, access: Any) -> Any:
        parts = [x for x in (self.ast, filters.filter_of(self.conditions, self.join),
                             service.search_filter(pub, access, self.q) if self.q else None)
                 if x is not None]
        return None if not parts else parts[0] if len(parts) == 1 else {"and": parts}

    def params(self, **change: Any) -> str:
        """The query string of this list (with ``change`` applied), for links."""
        items: list[tuple[str, str]] = []
        values = {"cols": ",".join(self.columns), "sort": self.sort, "q": self.q,
                  "join": self.join, "filter": json.dumps(self.ast, ensure_ascii=False)
                  if self.ast is not None else ""} | change
        items += [(k, str(v)) for k, v in values.items() if v]
        for i, c in enumerate(self.conditions):
            items += [(f"c{i}.f", c.field.key), (f"c{i}.o", c.op)]
            items += [(f"c{i}.v", v) for v in c.values]
            if c.upper:
                items.append((f"c{i}.v2", c.upper))
        return urlencode(items)


def default_columns(pub: Published, access: Any) -> list[str]:
    """The title first, then the layout's first fields the viewer may read."""
    order = [k for item in pub.spec.layout for k in _keys(item)]
    order += [f.key for f in pub.spec.fields if f.key not in order]
    title = pub.spec.title_field
    keys = ([title] if title else []) + [k for k in order if k != title]
    return [k for k in keys if _column_ok(pub, access, k)][:DEFAULT_COLUMNS]


def _keys(item: Any) -> list[str]:
    if hasattr(item, "sections"):
        return [k for s in item.sections for k in s.fields]
    return list(item.fields)


def _column_ok(pub: Published, access: Any, key: str) -> bool:
    f = pub.spec.field(key)
    return f is not None and access.readable(key) and f.type not in NOT_COLUMNS


def sortable(pub: Published, access: Any) -> set[str]:
    masked = service.masked_keys(pub, access)
    return {f.key for f in pub.spec.fields if access.readable(f.key)
            and filters.kind_of(f) is not None and f.key not in masked
            and not (f.sensitive and f.sensitive.encrypt)}


def read_query(request: Request, pub: Published, access: Any) -> ListQuery:
    params = request.query_params
    columns = [k for k in (params.get("cols") or "").split(",") if _column_ok(pub, access, k)]
    sort = params.get("sort") or ""
    if sort.removeprefix("-") not in sortable(pub, access) | {"id", "created_at",
                                                              "updated_at"}:
        sort = ""
    return ListQuery(columns=columns or default_columns(pub, access), sort=sort,
                     q=(params.get("q") or "").strip()[:200],
                     conditions=filters.conditions(params, pub, access),
                     join="or" if params.get("join") == "or" else "and",
                     cursor=params.get("cursor") or None, ast=_ast(params.get("filter")))


def _ast(raw: str | None) -> Any:
    """``?filter=`` as the API reads it; a broken one is refused by the store with the
    path of its bad part (shown on the page)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # not JSON: the list query refuses it, naming the filter


def _rows(s: Session, caller: Caller, pub: Published, query: ListQuery
          ) -> tuple[list[dict[str, Any]], str | None, Shown]:
    docs, cursor = service.list_page(
        s, caller, pub, filter=query.filter(pub, caller.access),
        sort=[query.sort] if query.sort else None, cursor=query.cursor, limit=PAGE_SIZE,
        fields=query.columns, deleted="exclude")
    shown = Shown.of(s, service.narrowed(s, caller, pub), pub, docs)
    return docs, cursor, shown


def cells(pub: Published, columns: list[str], docs: list[dict[str, Any]],
          shown: Shown, bulky: bool) -> list[Markup]:
    """Each document as its table row (a card on a phone: each cell carries its label).
    Built here rather than in ``_rows.html``: 50 rows of cells through the template's
    loop cost more than the list's query."""
    specs = [f for k in columns if (f := pub.spec.field(k)) is not None]
    labels = [escape(label_of(f)) for f in specs]
    base = f"/apps/{escape(pub.app)}/forms/{escape(pub.spec.key)}/records/"
    pick = escape(_("选择"))
    out = []
    for d in docs:
        rid = int(d["id"])
        data = d["data"]
        parts = [f'<tr id="r-{rid}">']
        if bulky:
            parts.append(f'<td class="pick"><label class="sr" for="pick-{rid}">{pick}</label>'
                         f'<input type="checkbox" id="pick-{rid}" name="ids" value="{rid}" '
                         'form="bulk" data-pick></td>')
        for i, f in enumerate(specs):
            text = shown.text(f, data.get(f.key))
            if i == 0:
                text = Markup(f'<a href="{base}{rid}" class="open">{text or f"#{rid}"}</a>')
            parts.append(f'<td data-label="{labels[i]}">{text}</td>')
        parts.append("</tr>")
        out.append(Markup("".join(parts)))
    return out


@router.get(FORM, response_class=HTMLResponse, openapi_extra=rule("form:read"))
def list_page(ctx: ContextDep, principal: PrincipalDep, access: AccessDep, request: Request,
              app: str, form: str) -> HTMLResponse:
    caller = caller_of(request, ctx, principal, access)
    with ctx.db.read() as s:
        pub = published(s, app, form)
        query = read_query(request, pub, access)
        problem = ""
        try:
            docs, cursor, shown = _rows(s, caller, pub, query)
        except DomainError as exc:  # a value the field refuses, typed into a filter
            docs, cursor, shown, problem = [], None, Shown(s, caller, pub), exc.detail
        builder = _builder_context(s, pub, access)
        saved = views.visible_views(s, principal, app, form)
        roles = _roles(s) if views.can_publish(principal, app, form) else []
        return render(request, "workspace/list.html", app=app, form=form, pub=pub,
                      query=query, rows=cells(pub, query.columns, docs, shown, _bulky(access)),
                      columns=[pub.spec.field(k) for k in query.columns],
                      sortable=sortable(pub, access), cursor=cursor, problem=problem,
                      **builder,
                      choosable=[f for f in pub.spec.fields
                                 if _column_ok(pub, access, f.key)],
                      export_filter=json.dumps(query.filter(pub, access), ensure_ascii=False)
                      if query.conditions or query.q else "",
                      bulky=_bulky(access), views=saved,
                      view_id=request.query_params.get("view", ""),
                      publish_roles=roles, settable=settable(pub, access),
                      can_update=access.allows("update"),
                      can_delete=access.allows("delete"),
                      problem_code=request.query_params.get("problem", ""),
                      can_create=access.allows("create"),
                      can_export=access.allows("export"),
                      can_import=access.allows("import"), can_design=access.allows("manage"))


@router.get(FORM + "/owners", openapi_extra=rule("form:update"))
def owner_options(ctx: ContextDep, app: str, form: str,
                  q: str = "") -> JSONResponse:
    """Who the picked records can be handed to: active people whose name contains ``q``,
    ``[{"value", "text"}]`` for the bulk bar's picker. Asked for when the picker opens,
    not with every list page (a brokerage's directory is hundreds of names)."""
    from platform_core.security.models import User

    stmt = select(User.id, User.display_name).where(User.status == "active")
    if q.strip():
        stmt = stmt.where(User.display_name.contains(q.strip()[:50], autoescape=True))
    with ctx.db.read() as s:
        published(s, app, form)  # an unknown form is a 404, as for its list
        rows = s.execute(stmt.order_by(User.display_name).limit(50)).all()
    return JSONResponse({"items": [{"value": str(i), "text": n} for i, n in rows]})


def _roles(s: Session) -> list[tuple[str, str]]:
    from platform_core.security.models import Role

    return [(r.key, r.name) for r in s.execute(select(Role).order_by(Role.name)).scalars()]


@router.get(FORM + "/condition", response_class=HTMLResponse,
            openapi_extra=rule("form:read"))
def condition_row(ctx: ContextDep, access: AccessDep, request: Request, app: str, form: str,
                  i: int = 0) -> HTMLResponse:
    """One empty condition of the filter builder (asked for by "add condition", so the
    list page itself does not carry every field's operators and options)."""
    with ctx.db.read() as s:
        pub = published(s, app, form)
        return render(request, "workspace/_condition.html", app=app, form=form, c=None,
                      i=max(0, min(i, filters.MAX_CONDITIONS - 1)),
                      **_builder_context(s, pub, access))


def _builder_context(s: Session, pub: Published, access: Any,
                     also: tuple[str, ...] = ()) -> dict[str, Any]:
    """What the filter builder offers: fields, their operators, the people to pick from
    (only the kinds of people some field or ``also`` needs: each list is a query)."""
    fields = filters.filterable(pub, access)
    masked = service.masked_keys(pub, access)
    ops = {f.key: filters.ops_for(f, f.key in masked) for f in fields}
    kinds = {f.type for f in fields if f.type in ("user", "department")} | set(also)
    return {"filter_fields": [f for f in fields if ops[f.key]], "ops": ops,
            "op_labels": filters.op_labels(),
            "people": {kind: people_options(s, kind) if kind in kinds else []
                       for kind in ("user", "department")}}


@router.get(FORM + "/rows", response_class=HTMLResponse, openapi_extra=rule("form:read"))
def more_rows(ctx: ContextDep, principal: PrincipalDep, access: AccessDep, request: Request,
              app: str, form: str) -> HTMLResponse:
    """The next page of rows after ``cursor`` (the "load more" button's answer)."""
    caller = caller_of(request, ctx, principal, access)
    with ctx.db.read() as s:
        pub = published(s, app, form)
        query = read_query(request, pub, access)
        docs, cursor, shown = _rows(s, caller, pub, query)
        return render(request, "workspace/_rows.html", app=app, form=form, query=query,
                      rows=cells(pub, query.columns, docs, shown, _bulky(access)), cursor=cursor,
                      bulky=_bulky(access))


def _bulky(access: Any) -> bool:
    return any(access.allows(a) for a in ("update", "delete", "export"))


@router.get(FORM + "/count", response_class=HTMLResponse, openapi_extra=rule("form:read"))
def count_rows(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
               request: Request, app: str, form: str) -> HTMLResponse:
    """The number of matching records, asked for after the page is shown (so a count
    over a million rows never holds the page back), capped at 10,000+."""
    caller = caller_of(request, ctx, principal, access)
    with ctx.db.read() as s:
        pub = published(s, app, form)
        query = read_query(request, pub, access)
        try:
            n = service.count(s, caller, pub, filter=query.filter(pub, access),
                              cap=COUNT_CAP + 1)
        except DomainError:
            n = 0
    text = (_("超过 {n} 条").format(n=f"{COUNT_CAP:,}") if n > COUNT_CAP
            else _("共 {n} 条").format(n=f"{n:,}"))
    return HTMLResponse(f'<span id="count">{text}</span>',
                        headers={"Cache-Control": "no-store"})


# -- saved views --------------------------------------------------------------------------


@router.post(FORM + "/views", response_class=HTMLResponse, openapi_extra=rule("form:read"))
async def save_view(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                    form: str) -> Response:
    posted = await posted_form(request)
    try:
        with ctx.db.write() as s:
            view = views.save_view(s, principal, app, form, name=posted.get("name") or "",
                                   query=posted.get("query") or "",
                                   roles=posted.getlist("roles"))
            target = f"/apps/{app}/forms/{form}?{view.query}&view={view.id}"
    except DomainError as exc:
        return redirect(f"/apps/{app}/forms/{form}?problem={exc.code}")
    return redirect(target, "view_saved")


@router.post(FORM + "/views/{view_id}/delete", response_class=HTMLResponse,
             openapi_extra=rule("form:read"))
def delete_view(ctx: ContextDep, principal: PrincipalDep, app: str, form: str,
                view_id: IdPath) -> Response:
    with ctx.db.write() as s:
        views.delete_view(s, principal, app, form, view_id)
    return redirect(f"/apps/{app}/forms/{form}", "view_deleted")


# -- bulk actions -------------------------------------------------------------------------

BULK_MAX = 1000
SETTABLE = frozenset({"text", "number", "money", "percent", "date", "boolean", "select",
                      "phone", "email", "user", "department"})


def settable(pub: Published, access: Any) -> list[Any]:
    """Fields a bulk "set a field" may change: simple types the viewer may write."""
    return [f for f in pub.spec.fields if f.type in SETTABLE and access.writable(f.key)
            and not (f.sensitive and (f.sensitive.mask or f.sensitive.encrypt))]


def _bulk_value(pub: Published, key: str, text: str) -> Any:
    spec = pub.spec.field(key)
    if spec is None:
        raise InvalidInput(f"{key}: unknown field", field=key)
    if not text.strip():
        return None
    try:
        return spec.field_type.from_text(money_text(text) if spec.type == "money" else text,
                                         spec)
    except FieldError as exc:
        raise InvalidInput(f"{label_of(spec)}: {exc.zh}", field=key) from None


@router.post(FORM + "/bulk", response_class=HTMLResponse, openapi_extra=rule("form:read"))
async def bulk(ctx: ContextDep, principal: PrincipalDep, access: AccessDep, request: Request,
               app: str, form: str) -> Response:
    """One action on the chosen records, all or nothing (one transaction): give them to
    another owner, set a field, move them to the recycle bin, or export them."""
    posted = await posted_form(request)
    ids = sorted({int(i) for i in posted.getlist("ids") if i.isdecimal()})[:BULK_MAX]
    action = posted.get("action") or ""
    back = f"/apps/{app}/forms/{form}?" + (posted.get("back") or "").lstrip("?")
    if not ids:
        return redirect(back, "bulk_none")
    if action == "export":
        access.require("export")
        chosen = json.dumps({"field": "id", "op": "in", "value": ids})
        return redirect(f"/api/v1/apps/{app}/forms/{form}/export?"
                        + urlencode({"format": "xlsx", "filter": chosen}))
    caller = caller_of(request, ctx, principal, access)
    try:
        with ctx.db.write() as s:
            pub = published(s, app, form)
            _apply(s, caller, pub, ids, action, posted)
    except DomainError as exc:
        return redirect(back + "&" + urlencode({"problem": exc.code}))
    return redirect(back, "bulk_done")


def _apply(s: Session, caller: Caller, pub: Published, ids: list[int], action: str,
           posted: Posted) -> None:
    if action == "delete":
        caller.access.require("delete")
        for record_id in ids:
            service.delete(s, caller, pub, record_id, expected_version=None)
    elif action == "owner":
        caller.access.require("update")
        owner = posted.get("owner_id") or ""
        if not owner.isdecimal():
            raise InvalidInput("choose the new owner", field="owner_id")
        for record_id in ids:
            service.transfer(s, caller, pub, record_id, owner_id=int(owner))
    elif action == "set":
        caller.access.require("update")
        key = posted.get("field") or ""
        if key not in {f.key for f in settable(pub, caller.access)}:
            raise InvalidInput(f"{key}: this field cannot be set here", field=key)
        value = _bulk_value(pub, key, posted.get("value") or "")
        for record_id in ids:
            current = service.load_scoped(s, caller, pub, record_id, "update")
            service.update(s, caller, pub, record_id, {key: value},
                           expected_version=current.row_version)
    else:
        raise InvalidInput(f"unknown bulk action {action!r}", field="action")
