"""Rules in words: a trigger ("贷款业务 修改了 金额 时") and a cron line ("每周一 09:00")
as an admin reads them, for the rule list and the editor's trigger picker."""

from __future__ import annotations

from typing import Any

from frontend.i18n import N_, _

WEEKDAYS = (N_("周日"), N_("周一"), N_("周二"), N_("周三"), N_("周四"), N_("周五"),
            N_("周六"))
DAY_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
TRIGGER_NAMES = {
    "record.created": N_("新建记录时"), "record.updated": N_("修改记录时"),
    "record.deleted": N_("删除记录时"), "flow.step_entered": N_("流程进入某步时"),
    "task.completed": N_("办完某步任务时"), "task.overdue": N_("任务逾期时"),
    "flow.completed": N_("流程结束时"), "schedule": N_("定时（cron）"),
    "date_relative": N_("某日期前后 N 天"), "manual": N_("手动运行（在记录页）"),
}
# Common schedules the editor offers (cron line, its words)
CRON_CHOICES = ("0 9 * * *", "0 9 * * MON", "0 9 * * MON-FRI", "0 18 * * FRI",
                "0 9 1 * *", "0 * * * *")


def _weekday(part: str) -> str | None:
    """``MON``, ``1``, ``MON-FRI``, ``1,3`` in words; None when it is not one of these."""
    def one(token: str) -> str | None:
        token = token.upper()
        if token in DAY_NAMES:
            return _(WEEKDAYS[DAY_NAMES[token]])
        if token.isdigit() and int(token) <= 7:
            return _(WEEKDAYS[int(token) % 7])
        return None

    words = []
    for piece in part.split(","):
        if "-" in piece:
            start, _sep, end = piece.partition("-")
            a, b = one(start), one(end)
            if a is None or b is None:
                return None
            words.append(_("{a}至{b}").format(a=a, b=b))
        else:
            word = one(piece)
            if word is None:
                return None
            words.append(word)
    return _("、").join(words)


def cron_words(line: str) -> str | None:
    """``0 9 * * MON`` → "每周一 09:00"; None for a line this cannot say simply (the
    editor then shows the line itself)."""
    parts = (line or "").split()
    if len(parts) != 5:
        return None
    minute, hour, day, month, weekday = parts
    if not minute.isdigit() or int(minute) > 59:
        return None
    if hour == "*" and day == month == weekday == "*":
        return _("每小时第 {m} 分").format(m=int(minute))
    if not hour.isdigit() or int(hour) > 23 or month != "*":
        return None
    at = f"{int(hour):02d}:{int(minute):02d}"
    if day == "*" and weekday == "*":
        return _("每天 {at}").format(at=at)
    if day == "*":
        days = _weekday(weekday)
        return _("每{days} {at}").format(days=days, at=at) if days else None
    if weekday == "*" and day.isdigit() and 1 <= int(day) <= 31:
        return _("每月 {d} 日 {at}").format(d=int(day), at=at)
    return None


def _label(names: dict[str, str], key: str | None) -> str:
    return names.get(key or "", key or "")


def trigger_words(trigger: dict[str, Any], forms: dict[str, dict[str, Any]],
                  flows: dict[str, dict[str, Any]]) -> str:
    """The trigger as a sentence, with the app's form, field, flow and step names."""
    kind = trigger.get("type", "")
    form = forms.get(trigger.get("form") or "", {})
    form_name = form.get("name") or trigger.get("form") or ""
    fields = {f["key"]: f["label"] for f in form.get("fields", [])}
    flow = flows.get(trigger.get("flow") or "", {})
    flow_name = flow.get("name") or trigger.get("flow") or _("任一流程")
    steps = {s["id"]: s["name"] for s in flow.get("steps", [])}
    if kind == "record.created":
        return _("新建{form}时").format(form=form_name)
    if kind == "record.deleted":
        return _("删除{form}时").format(form=form_name)
    if kind == "record.updated":
        if trigger.get("fields"):
            changed = _("、").join(_label(fields, k) for k in trigger["fields"])
            return _("{form}的{fields}改变时").format(form=form_name, fields=changed)
        return _("修改{form}时").format(form=form_name)
    step = _label(steps, trigger.get("step")) if trigger.get("step") else _("任一步")
    if kind == "flow.step_entered":
        return _("{flow}进入「{step}」时").format(flow=flow_name, step=step)
    if kind == "task.completed":
        text = _("{flow}「{step}」办完时").format(flow=flow_name, step=step)
        if trigger.get("outcome"):
            text += _("（结果：{outcome}）").format(outcome=trigger["outcome"])
        return text
    if kind == "task.overdue":
        days = trigger.get("overdue_days") or 0
        text = _("{flow}「{step}」的任务逾期时").format(flow=flow_name, step=step)
        return text + (_("（逾期 {n} 天后）").format(n=days) if days else "")
    if kind == "flow.completed":
        return _("{flow}结束时").format(flow=flow_name)
    if kind == "schedule":
        line = trigger.get("cron") or ""
        return cron_words(line) or _("定时：{cron}").format(cron=line)
    if kind == "date_relative":
        days = int(trigger.get("offset_days") or 0)
        field = _label(fields, trigger.get("field"))
        at = trigger.get("at") or "09:00"
        if days < 0:
            when = _("{form}的{field}前 {n} 天").format(form=form_name, field=field, n=-days)
        elif days > 0:
            when = _("{form}的{field}后 {n} 天").format(form=form_name, field=field, n=days)
        else:
            when = _("{form}的{field}当天").format(form=form_name, field=field)
        return f"{when} {at}"
    if kind == "manual":
        return _("在{form}记录页手动运行").format(form=form_name)
    return kind
