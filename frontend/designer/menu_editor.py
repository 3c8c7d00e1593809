"""The menu editor: an app's menu groups and items arranged by drag (or from the keyboard),
items added from pickers of the app's forms, flows, reports and dashboards, each item
limited to some roles or not, and a preview of the menu one role would see.

The page saves through the integrators' API (``PUT /api/v1/apps/{app}/menus``), so the
editor meets exactly the engine's checks (``engine_forms.menus``); the preview route
writes nothing and checks the working copy's shape with the same checker first.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_forms.forms import get_app
from engine_forms.menus import KEYED_KINDS, MENU_KINDS, shape_problems, targets
from engine_reports.running import Viewer
from frontend.designer.pages import _json
from frontend.i18n import N_, _
from frontend.menus import app_menu
from frontend.web import render
from platform_core.app import ContextDep
from platform_core.errors import InvalidInput
from platform_core.security.guard import rule
from platform_core.security.models import Role
from platform_core.security.principal import Principal

router = APIRouter(include_in_schema=False)
PAGE = "/apps/{app}/menus"
KIND_NAMES = {"tasks": N_("我的待办"), "form": N_("表单"), "flow": N_("流程"),
              "report": N_("报表"), "dashboard": N_("看板")}


def _roles(s: Session) -> list[dict[str, str]]:
    return [{"key": r.key, "name": r.name}
            for r in s.execute(select(Role).order_by(Role.id)).scalars()]


def _strings() -> dict[str, str]:
    """The words the page's script shows (translated here: the script has no catalogue)."""
    return {
        "new_group": _("新分组"), "group_label": _("分组名称"), "remove_group": _("删除分组"),
        "confirm_remove_group": _("删除分组“{label}”和其中的 {n} 个菜单项？"),
        "drop_here": _("把菜单项拖到这里"), "label": _("名称"), "roles": _("可见角色"),
        "roles_hint": _("不勾选：凡能使用它的人都看得到"),
        "remove_item": _("删除菜单项"), "edit_item": _("编辑“{label}”"),
        "move_hint": _("Alt+↑/↓ 移动"), "unsaved": _("有未保存的修改"), "saving": _("正在保存…"),
        "saved": _("已保存"), "not_saved": _("未保存：请修改下面的问题"),
        "failed": _("出错了，请重试"), "problems": _("保存前请修改："),
        "group_n": _("第 {n} 组"), "item_n": _("第 {n} 项"), "moved": _("已移到“{group}”第 {n} 项"),
        "leave": _("有未保存的修改，确定离开？"), "missing": _("（已不存在）"),
    }


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("app:manage"))
def editor(ctx: ContextDep, request: Request, app: str) -> HTMLResponse:
    with ctx.db.read() as s:
        row = get_app(s, app)
        found = targets(s, app)
        data = {
            "app": app, "menus": row.menus or [], "roles": _roles(s),
            "kinds": [{"kind": k, "name": _(KIND_NAMES[k])} for k in MENU_KINDS
                      if k not in KEYED_KINDS or k in found],
            "targets": {kind: [{"key": k, "name": n} for k, n in sorted(names.items())]
                        for kind, names in found.items()},
        }
        return render(request, "designer/menus.html", app=app, name=row.name,
                      data=_json(data), strings=_json(_strings()), roles=data["roles"],
                      kinds=data["kinds"])


def _principal(s: Session, role_key: str) -> tuple[Principal, str]:
    """A stand-in user holding only role ``role_key`` (the preview's viewer)."""
    role = s.execute(select(Role).where(Role.key == role_key)).scalar_one_or_none()
    if role is None:
        raise InvalidInput(f"role {role_key!r} does not exist", field="role")
    return Principal(user_id=0, username=f"preview:{role.key}", display_name=role.name,
                     department_id=None, roles=(role.key,),
                     role_perms=(role.permissions or {},), via="session"), role.name


@router.post(PAGE + "/preview", response_class=HTMLResponse,
             openapi_extra=rule("app:manage"))
async def preview(ctx: ContextDep, request: Request, app: str) -> HTMLResponse:
    """The working menus as a holder of ``role`` would see them on the home page (their
    rights and the items' roles both count); nothing is saved."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise InvalidInput("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput('send {"menus": [...], "role": "<role key>"}')
    menus = body.get("menus")
    problems = shape_problems(menus)
    with ctx.db.read() as s:
        row = get_app(s, app)
        principal, role_name = _principal(s, str(body.get("role") or ""))
        if problems:
            return render(request, "designer/_menus_preview.html", role=role_name,
                          problems=problems)
        groups = app_menu(s, row, Viewer(principal, ctx.keyring), menus=menus)
    return render(request, "designer/_menus_preview.html", role=role_name, groups=groups)
