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
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from engine_forms import service
from engine_forms.forms import Published, published
from engine_forms.service import Caller
from frontend.web import render
from frontend.workspace import filters
from frontend.workspace.fields import people_options
from frontend.workspace.pages_record import caller_of
from frontend.workspace.text import _
from frontend.workspace.values import Shown
from platform_core.app import ContextDep
from platform_core.errors import DomainError
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

    def filter(self, pub: Published, access: Any) -> Any:
        parts = [x for x in (filters.filter_of(self.conditions, self.join),
                             service.search_filter(pub, access, self.q) if self.q else None)
                 if x is not None]
        return None if not parts else parts[0] if len(parts) == 1 else {"and": parts}

    def params(self, **change: Any) -> str:
        """The query string of this list (with ``change`` applied), for links."""
        items: list[tuple[str, str]] = []
        values = {"cols": ",".join(self.columns), "sort": self.sort, "q": self.q,
                  "join": self.join} | change
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
                     cursor=params.get("cursor") or None)


def _rows(s: Session, caller: Caller, pub: Published, query: ListQuery
          ) -> tuple[list[dict[str, Any]], str | None, Shown]:
    docs, cursor = service.list_page(
        s, caller, pub, filter=query.filter(pub, caller.access),
        sort=[query.sort] if query.sort else None, cursor=query.cursor, limit=PAGE_SIZE,
        fields=query.columns, deleted="exclude")
    shown = Shown.of(s, service.narrowed(s, caller, pub), pub, docs)
    return docs, cursor, shown


def _cells(pub: Published, query: ListQuery, docs: list[dict[str, Any]],
           shown: Shown) -> list[dict[str, Any]]:
    specs = [pub.spec.field(k) for k in query.columns]
    return [{"id": d["id"], "cells": [(f, shown.text(f, d["data"].get(f.key)))
                                      for f in specs if f is not None]} for d in docs]


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
        fields = filters.filterable(pub, access)
        masked = service.masked_keys(pub, access)
        ops = {f.key: filters.ops_for(f, f.key in masked) for f in fields}
        people = {kind: people_options(s, kind) for kind in ("user", "department")
                  if any(f.type == kind for f in fields)}
        return render(request, "workspace/list.html", app=app, form=form, pub=pub,
                      query=query, rows=_cells(pub, query, docs, shown),
                      columns=[pub.spec.field(k) for k in query.columns],
                      sortable=sortable(pub, access), cursor=cursor, problem=problem,
                      filter_fields=[f for f in fields if ops[f.key]], ops=ops,
                      op_labels=filters.op_labels(), people=people,
                      choosable=[f for f in pub.spec.fields
                                 if _column_ok(pub, access, f.key)],
                      export_filter=json.dumps(query.filter(pub, access), ensure_ascii=False)
                      if query.conditions or query.q else "",
                      can_create=access.allows("create"),
                      can_export=access.allows("export"),
                      can_import=access.allows("import"))


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
                      rows=_cells(pub, query, docs, shown), cursor=cursor)


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
