"""The record page's timeline (an htmx fragment the record page asks for once shown):
newest first, filter chips per kind, "更早的记录" loading the next page in place.

Everything comes from ``engine_forms.timeline.page`` — the same entries, rights and masks
as ``GET /api/v1/…/records/{id}/timeline``; this module only words them: values as the
record page shows them (``Shown``: options, linked titles, people), masked values as
they came, related records as links.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engine_forms import timeline
from engine_forms.forms import published
from frontend.i18n import N_, _
from frontend.web import render
from frontend.workspace.pages_record import FORM, caller_of
from frontend.workspace.values import Shown, label_of, preview_kind, record_url
from platform_core.app import ContextDep, IdPath
from platform_core.models import utcnow
from platform_core.security.guard import AccessDep, PrincipalDep, rule
from platform_core.timeline import KINDS, Entry

router = APIRouter(include_in_schema=False)
SYSTEM_LABELS = {"owner_id": N_("负责人"), "department_id": N_("部门")}


def kind_labels() -> dict[str, str]:
    return {"changes": _("修改"), "flow": _("流程"), "tasks": _("待办"),
            "automation": _("自动化"), "follow_ups": _("跟进"), "attachments": _("附件")}


@router.get(FORM + "/records/{record_id}/timeline", response_class=HTMLResponse,
            openapi_extra=rule("form:read"))
def record_timeline(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                    request: Request, app: str, form: str, record_id: IdPath,
                    kind: str = "", cursor: str = "") -> HTMLResponse:
    """The timeline card (or, with ``cursor``, only the next entries and the button for
    the ones after them). ``kind`` is one kind or empty for all."""
    caller = caller_of(request, ctx, principal, access)
    kinds = timeline.parse_kinds(kind or None)
    with ctx.db.read() as s:
        pub = published(s, app, form)
        result = timeline.page(s, caller, pub, record_id, kinds=kinds,
                               cursor=cursor or None, now=utcnow())
        items = _worded(s, result)
    base = f"/apps/{app}/forms/{form}/records/{record_id}/timeline"
    more = None
    if result["next_cursor"]:
        more = base + "?" + urlencode({"kind": kind, "cursor": result["next_cursor"]})
    chips = [{"kind": "", "label": _("全部"), "url": base, "on": not kind}]
    chips += [{"kind": k, "label": label, "url": f"{base}?kind={k}", "on": kind == k}
              for k, label in kind_labels().items()]
    return render(request, "workspace/_timeline.html", items=items, more=more, chips=chips,
                  page_only=bool(cursor), kind=kind)


def _worded(s: Any, result: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries with their values as text: one ``Shown`` per form on the page."""
    entries: list[Entry] = result["items"]
    people = result["people"]
    shown: dict[str, Shown] = {}
    for e in entries:
        view = e.subject.view
        if view is None or e.subject.form in shown:
            continue
        shown[e.subject.form] = Shown(s, view.caller, view.pub, view.masked)
    for form, one in shown.items():
        docs = [{"data": {c["field"]: c[side] for c in e.changes}}
                for e in entries if e.subject.form == form for side in ("from", "to")]
        docs += [{"data": {f["field"]: f["value"] for f in e.detail.get("facts", [])}}
                 for e in entries if e.subject.form == form]
        one.prepare(docs)
        one.add_departments({v for e in entries if e.subject.form == form
                             for c in e.changes if c["field"] == "department_id"
                             for v in (c["from"], c["to"]) if isinstance(v, int)})
    labels = kind_labels()
    return [_item(e, shown.get(e.subject.form), people, labels) for e in entries]


def _item(e: Entry, shown: Shown | None, people: dict[int, str],
          labels: dict[str, str]) -> dict[str, Any]:
    s = e.subject
    pub = s.view.pub if s.view is not None else None
    changes, facts = [], []
    for c in e.changes:
        key = c["field"]
        if key in SYSTEM_LABELS:
            name = (lambda v: people.get(v, f"#{v}") if v else "") if key == "owner_id" \
                else (shown.department if shown else str)
            changes.append({"label": _(SYSTEM_LABELS[key]), "before": name(c["from"]),
                            "after": name(c["to"])})
            continue
        spec = pub.spec.field(key) if pub is not None else None
        if spec is None or shown is None:
            continue
        changes.append({"label": label_of(spec), "before": shown.text(spec, c["from"]),
                        "after": shown.text(spec, c["to"])})
    for f in e.detail.get("facts", []):
        spec = pub.spec.field(f["field"]) if pub is not None else None
        if spec is not None and shown is not None:
            facts.append({"label": label_of(spec), "text": shown.text(spec, f["value"])})
    detail = dict(e.detail)
    for key in ("assignee_id", "from_user", "to_user"):
        if isinstance(detail.get(key), int):
            detail[key] = people.get(detail[key], f"#{detail[key]}")
    if isinstance(detail.get("users"), list):
        detail["users"] = [people.get(u, f"#{u}") for u in detail["users"]]
    return {"at": e.at, "kind": e.kind, "kind_label": labels[e.kind], "action": e.action,
            "name": e.name, "who": people.get(e.actor_id) if e.actor_id else None,
            "related": s.related, "title": s.title, "url": record_url(s.app, s.form, s.id),
            "form_label": label_of(pub.spec) if pub is not None else s.form,
            "attachment_url": f"/api/v1/apps/{s.app}/forms/{s.form}/attachments/"
                              f"{detail['attachment_id']}" if "attachment_id" in detail
                              else None,
            "preview": preview_kind(str(detail.get("content_type") or "")),
            "changes": changes, "facts": facts, "detail": detail}


__all__ = ["KINDS", "router"]
