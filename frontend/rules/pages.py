"""The rule pages of an app (for whoever manages it): the rule list with each rule's
state and last 7 days, the editor (trigger picker, condition, ordered actions, test
run), the run log, and the dead letters with a retry.

The editor saves, checks and test-runs through the integrators' API
(``/api/v1/apps/{app}/rules…``, ``…/rules-check``, ``…/rules-test``), so a rule made here
meets exactly the engine's checks. The routes here write only what the list's buttons do
— turn a rule on or off (off needs a reason, kept in the audit log) and retry a dead
letter — each through ``engine_rules.service`` in one transaction.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_flows.definitions import latest, list_flows
from engine_forms.forms import get_app
from engine_rules import service
from engine_rules.action_settings import schema_of
from engine_rules.actions import ACTIONS
from engine_rules.context import Fired, RuleContext
from engine_rules.models import Rule
from engine_rules.overview import OUTCOMES, app_runs, stats, switches
from engine_rules.spec import Trigger
from frontend.designer.pages import _expr_message, _forms_of, _functions, _json, _roles
from frontend.i18n import N_, _
from frontend.rules.words import CRON_CHOICES, TRIGGER_NAMES, cron_words, trigger_words
from frontend.web import FLASH, error_page, redirect, render
from platform_core.app import ContextDep, IdPath
from platform_core.errors import DomainError, InvalidInput
from platform_core.expressions import ExpressionError
from platform_core.models import utcnow
from platform_core.security.guard import PrincipalDep, rule
from platform_core.store import Actor

router = APIRouter(include_in_schema=False)
MANAGE = rule("app:manage")
LIST = "/apps/{app}/rules"
EDITOR = "/apps/{app}/rule-editor"
WINDOW_DAYS = 7
FLASH.update({"rule_enabled": N_("规则已启用"), "rule_disabled": N_("规则已停用"),
              "rule_saved": N_("规则已保存（停用中）：试运行无误后再启用"),
              "rule_replayed": N_("已重新排队，稍后在运行记录中查看结果")})
ACTION_NAMES = {
    "create_record": N_("新建记录"), "update_record": N_("修改记录"), "set_tags": N_("打标签"),
    "create_task": N_("创建待办"), "start_flow": N_("发起流程"), "advance_flow": N_("推进流程"),
    "notify": N_("发通知（站内 / 邮件 / 短信 / 企业微信）"), "call_webhook": N_("调用 Webhook"),
}
# The settings' titles (engine_rules.action_settings), for the catalogue
SETTING_TITLES = (N_("表单"), N_("字段值（表达式）"), N_("改关联字段指向的记录（可选）"),
                  N_("改链接到本记录的记录（高级）"), N_("标签字段"), N_("加上"), N_("去掉"),
                  N_("待办标题"), N_("办理人"), N_("几天内完成"), N_("流程"), N_("步骤"),
                  N_("结果"), N_("渠道"), N_("发给"), N_("标题"), N_("内容"),
                  N_("企业微信机器人地址（可选）"), N_("地址"), N_("方法"), N_("请求体（模板）"),
                  N_("站内通知"), N_("邮件"), N_("短信"), N_("企业微信群"))
OUTCOME_NAMES = {"done": N_("已执行"), "skipped": N_("条件不成立"), "failed": N_("失败"),
                 "stopped": N_("级联过深已停止")}


# -- what the pages show of the app ------------------------------------------------------


def _flows(s: Session, app: str) -> list[dict[str, Any]]:
    """The app's flows with their steps and each step's outcomes (the trigger pickers)."""
    out = []
    for row in list_flows(s, app):
        if row.published_version is None:
            continue
        spec = latest(s, app, row.key).spec
        edges = spec.get("edges") or []
        steps = []
        for node in spec.get("nodes") or []:
            if node.get("type") in ("start", "end", "gateway"):
                continue
            default = {"approval": ["approve", "reject"], "user_task": ["submit"]}
            outcomes = list(node.get("outcomes") or default.get(node.get("type"), []))
            outcomes += [e["on"] for e in edges if e.get("from") == node["id"]
                         and e.get("on") and e["on"] not in outcomes]
            steps.append({"id": node["id"], "name": node.get("name") or node["id"],
                          "type": node.get("type"), "outcomes": outcomes})
        out.append({"key": row.key, "name": str(spec.get("name") or row.key),
                    "form": str(spec.get("form") or ""), "steps": steps})
    return out


def _actions() -> list[dict[str, Any]]:
    """Every registered action type, its name and its settings' schema (titles
    translated): the editor builds each action's form from it."""
    out = []
    for key, action in ACTIONS.items():
        schema = schema_of(action.settings)
        for prop in schema.get("properties", {}).values():
            if prop.get("title"):
                prop["title"] = _(prop["title"])
            if isinstance(prop.get("labels"), dict):
                prop["labels"] = {k: _(v) for k, v in prop["labels"].items()}
        out.append({"type": key, "name": _(ACTION_NAMES[key]) if key in ACTION_NAMES
                    else key, "external": action.external, "schema": schema})
    return out


def _by_key(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["key"]: i for i in items}


# -- the list ------------------------------------------------------------------------------


@router.get(LIST, response_class=HTMLResponse, openapi_extra=MANAGE)
def rule_list(ctx: ContextDep, request: Request, app: str) -> HTMLResponse:
    now = utcnow()
    with ctx.db.read() as s:
        row = get_app(s, app)
        forms, flows = _by_key(_forms_of(s, app)), _by_key(_flows(s, app))
        counts = stats(s, app, since=now - timedelta(days=WINDOW_DAYS))
        notes = switches(s, app)
        rules = []
        for r in s.execute(select(Rule).where(Rule.app == app).order_by(Rule.key)).scalars():
            st = counts.get(r.id)
            note = notes.get(r.key)
            state = "failing" if st and st.failing else ("on" if r.enabled else "off")
            rules.append({"key": r.key, "name": r.spec.get("name") or r.key,
                          "enabled": r.enabled, "state": state, "stats": st,
                          "trigger": trigger_words(r.spec.get("trigger", {}), forms, flows),
                          "reason": note["reason"] if note and not r.enabled
                          and not note["enabled"] else None,
                          "note": note if note and not r.enabled else None})
    return render(request, "rules/list.html", app=app, name=row.name, rules=rules,
                  days=WINDOW_DAYS)


def _switch(ctx: ContextDep, principal: Any, app: str, key: str, on: bool,
            reason: str) -> None:
    with ctx.db.write() as s:
        service.set_enabled(s, app, key, on, principal.actor, reason)


@router.post(LIST + "/{key}/enable", response_class=HTMLResponse, openapi_extra=MANAGE)
def enable(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str, key: str,
           reason: Annotated[str, Form(max_length=500)] = "",
           back: Annotated[str, Form(max_length=20)] = "") -> Response:
    try:
        _switch(ctx, principal, app, key, True, reason)
    except DomainError as exc:
        return error_page(request, exc)
    return redirect(f"/apps/{app}/rules/{key}" if back == "editor" else f"/apps/{app}/rules",
                    "rule_enabled")


@router.post(LIST + "/{key}/disable", response_class=HTMLResponse, openapi_extra=MANAGE)
def disable(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str, key: str,
            reason: Annotated[str, Form(max_length=500)] = "",
            back: Annotated[str, Form(max_length=20)] = "") -> Response:
    """Turn a rule off: the reason is required here (the list shows it)."""
    try:
        if not reason.strip():
            raise InvalidInput(_("停用规则请写明原因"), field="reason")
        _switch(ctx, principal, app, key, False, reason)
    except DomainError as exc:
        return error_page(request, exc)
    return redirect(f"/apps/{app}/rules/{key}" if back == "editor" else f"/apps/{app}/rules",
                    "rule_disabled")


# -- the editor ----------------------------------------------------------------------------


def _strings() -> dict[str, str]:
    """The words the editor's script shows (translated here: the script has no catalogue)."""
    return {
        "add_action": _("添加动作"), "remove": _("删除"), "move_hint": _("拖动 ⠿ 调整顺序"),
        "action_n": _("第 {n} 步"), "choose": _("（请选择）"), "any_step": _("任一步"),
        "any_outcome": _("任一结果"), "any_flow": _("任一流程"), "saving": _("正在保存…"),
        "saved": _("已保存"), "not_saved": _("未保存：请修改标出的问题"),
        "failed": _("出错了，请重试"), "checking": _("正在检查…"), "ok": _("表达式正确"),
        "column": _("第 {n} 列"), "add_row": _("+ 添加字段"), "field": _("字段"),
        "expression": _("表达式"), "owner": _("记录负责人"), "assignee": _("任务办理人"),
        "role": _("角色"), "users": _("用户名（逗号分隔）"),
        "to_field": _("记录中的字段（手机号 / 邮箱 / 用户）"), "json_bad": _("不是有效的 JSON"),
        "insert": _("插入字段"), "condition_true": _("条件成立"),
        "condition_false": _("条件不成立：不会执行动作"), "no_record": _("请先选一条记录"),
        "would": _("将会"), "test_running": _("正在试运行…"), "changes_nothing": _(
            "试运行不会改动任何数据，也不会发出通知。"), "none_found": _("没有找到记录"),
        "cron_bad": _("cron 写法有误"), "days_before": _("前"), "days_after": _("后"),
        "leave": _("有未保存的修改，确定离开？"), "unsaved": _("有未保存的修改"),
        "problems": _("保存前请修改："), "assignee_field": _("按字段（填人员字段键）"),
        "assignee_role": _("按角色"), "message": _("消息"), "recipients": _("收件人"),
        "values": _("字段值"), "preview": _("预览"), "error": _("出错"),
        "fields_any": _("（任一字段改变）"), "tags_hint": _("逗号分隔"),
        "record": _("记录"), "form_label": _("表单"),
        "form_each": _("对表单的每条记录运行（可选）"),
        "no_form": _("（不针对记录，只运行一次）"), "flow_label": _("流程"),
        "step_label": _("步骤"), "outcome_label": _("结果"),
        "overdue_label": _("逾期几天后（0 = 到期即触发）"), "date_field": _("日期字段"),
        "days_label": _("天数"), "at_label": _("时间（北京时间）"), "cron_common": _("常用"),
        "cron_label": _("cron（分 时 日 月 周）"), "words_fields": _("{form}的{fields}改变时"),
        "words_update": _("修改{form}时（任一字段）"), "old": _("修改前的"),
        "n_users": _("{n} 位用户收到站内通知"),
    }


def _editor(request: Request, s: Session, app: str, *, spec: dict[str, Any] | None,
            rule_row: Rule | None) -> HTMLResponse:
    forms, flows = _forms_of(s, app), _flows(s, app)
    note = switches(s, app).get(rule_row.key) if rule_row else None
    data = {"app": app, "key": rule_row.key if rule_row else None, "spec": spec,
            "enabled": bool(rule_row and rule_row.enabled),
            "forms": forms, "flows": flows, "roles": _roles(s), "functions": _functions(),
            "actions": _actions(), "triggers": [{"type": k, "name": _(v)}
                                                for k, v in TRIGGER_NAMES.items()],
            "crons": [{"cron": c, "words": cron_words(c)} for c in CRON_CHOICES]}
    title = (spec or {}).get("name") or _("新规则")
    return render(request, "rules/editor.html", app=app, key=data["key"], title=title,
                  enabled=data["enabled"], note=note, data=_json(data),
                  strings=_json(_strings()))


@router.get(LIST + "/new", response_class=HTMLResponse, openapi_extra=MANAGE)
def new_rule(ctx: ContextDep, request: Request, app: str) -> HTMLResponse:
    with ctx.db.read() as s:
        get_app(s, app)
        return _editor(request, s, app, spec=None, rule_row=None)


@router.get(LIST + "/{key}", response_class=HTMLResponse, openapi_extra=MANAGE)
def edit_rule(ctx: ContextDep, request: Request, app: str, key: str) -> HTMLResponse:
    with ctx.db.read() as s:
        row = service.get_rule(s, app, key)
        return _editor(request, s, app, spec=dict(row.spec), rule_row=row)


@router.get(EDITOR + "/cron", openapi_extra=MANAGE)
def cron(cron: Annotated[str, Query(max_length=100)] = "") -> JSONResponse:
    """A cron line in words, or what is wrong with it (the engine's own parser)."""
    from engine_rules.scans import cron_trigger

    try:
        cron_trigger(cron)
    except ValueError as exc:
        return JSONResponse({"ok": False, "message": str(exc)})
    return JSONResponse({"ok": True, "words": cron_words(cron) or cron})


@router.post(EDITOR + "/condition", openapi_extra=MANAGE)
async def condition(ctx: ContextDep, request: Request, app: str) -> JSONResponse:
    """The condition checked against the trigger's form (``OLD.`` for updates) as the
    engine checks it: its type, or the message and column of what is wrong."""
    try:
        body = await request.json()
        trigger = Trigger.model_validate(body.get("trigger") or {})
    except (ValueError, AttributeError, TypeError):
        raise InvalidInput(_("请先选好触发条件"), field="trigger") from None
    text = str(body.get("condition") or "").strip()
    if not text:
        return JSONResponse({"ok": True, "empty": True})
    with ctx.db.read() as s:
        get_app(s, app)
        form = trigger.form or service._flow_form(s, app, trigger.flow)
        try:
            rctx = RuleContext.load(s, Fired("check", trigger.type, app, form),
                                    actor=Actor(None), now=utcnow())
            kind = rctx.formula(text).type.name
        except ExpressionError as exc:
            return JSONResponse({"ok": False, "column": exc.column,
                                 "message": _expr_message(exc)})
        except DomainError as exc:
            return JSONResponse({"ok": False, "message": str(exc.detail)})
    if kind not in ("boolean", "blank"):
        return JSONResponse({"ok": False, "message": _("条件的结果应是 是/否（TRUE/FALSE）")})
    return JSONResponse({"ok": True, "type": kind})


# -- the run log and the dead letters --------------------------------------------------------


@router.get("/apps/{app}/rule-runs", response_class=HTMLResponse, openapi_extra=MANAGE)
def run_log(ctx: ContextDep, request: Request, app: str,
            rule_key: Annotated[str, Query(alias="rule", max_length=64)] = "",
            outcome: Annotated[str, Query(max_length=16)] = "",
            record: Annotated[str, Query(max_length=20)] = "",
            before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None) -> HTMLResponse:
    record_id = int(record) if record.strip().isdigit() else None
    with ctx.db.read() as s:
        row = get_app(s, app)
        keys = list(s.execute(select(Rule.key).where(Rule.app == app).order_by(Rule.key)
                              ).scalars())
        found = app_runs(s, app, rule=rule_key or None,
                         status=outcome if outcome in OUTCOMES else None,
                         record_id=record_id, limit=51, before=before)
    runs = [service.run_doc(r) | {"rule": k} for r, k in found[:50]]
    more = runs[-1]["id"] if len(found) > 50 else None
    return render(request, "rules/runs.html", app=app, name=row.name, runs=runs,
                  keys=keys, rule_key=rule_key, outcome=outcome, record=record,
                  outcomes={k: _(v) for k, v in OUTCOME_NAMES.items()}, more=more,
                  bad_record=bool(record.strip()) and record_id is None)


@router.get("/apps/{app}/rule-dead-letters", response_class=HTMLResponse,
            openapi_extra=MANAGE)
def dead_letters(ctx: ContextDep, request: Request, app: str) -> HTMLResponse:
    with ctx.db.read() as s:
        row = get_app(s, app)
        keys = dict(s.execute(select(Rule.id, Rule.key).where(Rule.app == app)).all())
        items = [service.action_doc(a) | {"rule": keys.get(a.rule_id, "")}
                 for a in service.dead_letters(s, app, limit=200)]
    return render(request, "rules/dead.html", app=app, name=row.name, items=items)


@router.post("/apps/{app}/rule-dead-letters/{action_run_id}/replay",
             response_class=HTMLResponse, openapi_extra=MANAGE)
def replay(ctx: ContextDep, request: Request, app: str, action_run_id: IdPath) -> Response:
    """Try a dead letter again (an outside call goes back to the sender's queue)."""
    try:
        with ctx.db.write() as s:
            service.replay(s, app, action_run_id, now=utcnow(), keyring=ctx.keyring)
    except DomainError as exc:
        return error_page(request, exc)
    return redirect(f"/apps/{app}/rule-dead-letters", "rule_replayed")
