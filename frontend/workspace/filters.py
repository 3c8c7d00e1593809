"""The list page's filter builder: which operators each field offers, and the page's
query parameters turned into the store's filter AST (docs/query.md).

A condition is posted as ``c<i>.f`` (field), ``c<i>.o`` (operator), ``c<i>.v`` (value;
several for "one of") and ``c<i>.v2`` (a range's upper end); ``join`` is ``and`` or
``or``. Date presets (今天 / 本周 / 本月 / 近 30 天) become a range of China-time days
when the page is asked for, so a saved view of "this month" stays this month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine_forms.forms import Published
from engine_forms.service import masked_keys
from engine_forms.spec import FieldSpec
from frontend.i18n import _, pgettext
from platform_core.security.permissions import FormAccess

CHINA = ZoneInfo("Asia/Shanghai")
MAX_CONDITIONS = 20
DATE_PRESETS = ("today", "this_week", "this_month", "last_30_days")


def op_labels() -> dict[str, str]:
    return {"contains": _("包含"), "eq": _("等于"), "ne": _("不等于"),
            "starts_with": _("开头是"), "gte": _("不小于"), "lte": _("不大于"),
            "between": _("介于"), "in": _("是其中之一"), "not_in": _("不是其中之一"),
            "is_true": _("是"), "is_false": _("否"), "is": pgettext("filter", "是"),
            "today": _("今天"), "this_week": _("本周"), "this_month": _("本月"),
            "last_30_days": _("近 30 天"), "is_empty": _("为空"),
            "is_not_empty": _("不为空")}


EMPTY = ("is_empty", "is_not_empty")


def kind_of(f: FieldSpec) -> str | None:
    """The field's value kind for filters (None: not filterable in SQL)."""
    return f.field_type.value_kind(f)


def ops_for(f: FieldSpec, masked: bool) -> tuple[str, ...]:
    """The operators the builder offers for ``f`` (masked/encrypted: exact ones only)."""
    sealed = bool(f.sensitive and f.sensitive.encrypt)
    if f.type in ("select",):
        return ("in", "not_in", *EMPTY)
    if f.type in ("relation", "user", "department"):
        return ("is", *EMPTY)
    if masked or sealed:
        return ("eq", *EMPTY)
    kind = kind_of(f)
    if kind == "boolean":
        return ("is_true", "is_false", "is_empty")
    if kind in ("date", "datetime"):
        return (*DATE_PRESETS, "between", "gte", "lte", *EMPTY)
    if kind in ("number", "money"):
        return ("between", "gte", "lte", "eq", *EMPTY)
    if kind == "text":
        return ("contains", "eq", "starts_with", *EMPTY)
    return ()


def filterable(pub: Published, access: FormAccess) -> list[FieldSpec]:
    """Fields a viewer may filter by: readable ones with a SQL value kind, and relations
    (one to many records matches when it links to the chosen one)."""
    return [f for f in pub.spec.fields if access.readable(f.key)
            and (kind_of(f) is not None or f.type == "relation")]


@dataclass
class Condition:
    field: FieldSpec
    op: str
    values: list[str]
    upper: str = ""

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""


def conditions(params: Any, pub: Published, access: FormAccess) -> list[Condition]:
    """The conditions of a list page's query parameters (unknown fields, operators
    not offered for the field and incomplete rows are left out)."""
    masked = masked_keys(pub, access)
    usable = {f.key: f for f in filterable(pub, access)}
    out = []
    for i in range(MAX_CONDITIONS):
        key, op = params.get(f"c{i}.f"), params.get(f"c{i}.o")
        f = usable.get(key or "")
        if f is None or op not in ops_for(f, f.key in masked):
            continue
        values = [v.strip() for v in params.getlist(f"c{i}.v") if v.strip()][:1000]
        out.append(Condition(f, op, values, (params.get(f"c{i}.v2") or "").strip()))
    return out


def _day_range(op: str, today: date) -> tuple[date, date]:
    if op == "today":
        return today, today
    if op == "this_week":
        start = today - timedelta(days=today.weekday())
        return start, start + timedelta(days=6)
    if op == "this_month":
        start = today.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
        return start, following - timedelta(days=1)
    return today - timedelta(days=29), today


def _bound(kind: str, day: date, end: bool) -> str:
    if kind == "date":
        return day.isoformat()
    moment = datetime.combine(day, time.max if end else time.min, CHINA)
    return moment.isoformat(timespec="seconds")


def leaf(c: Condition, now: datetime | None = None) -> dict[str, Any] | None:
    """One condition as a filter leaf (None when its value is still missing)."""
    key, op, kind = c.field.key, c.op, kind_of(c.field) or "text"
    if op in EMPTY:
        return {"field": key, "op": op}
    if op in ("is_true", "is_false"):
        return {"field": key, "op": "eq", "value": op == "is_true"}
    if op in DATE_PRESETS:
        today = (now or datetime.now(CHINA)).astimezone(CHINA).date()
        low, high = _day_range(op, today)
        return {"field": key, "op": "between",
                "value": [_bound(kind, low, False), _bound(kind, high, True)]}
    if not c.values:
        return None
    if op == "between":
        if not c.upper:
            return {"field": key, "op": "gte", "value": _typed(c.field, c.value, kind)}
        return {"field": key, "op": "between", "value": [_typed(c.field, c.value, kind),
                                                         _typed(c.field, c.upper, kind)]}
    if op in ("in", "not_in"):
        return {"field": key, "op": op, "value": c.values}
    if op == "is":
        value = _typed(c.field, c.value, kind)
        if isinstance(value, list) and len(value) == 1:  # a relation to many records
            value = value[0]
        return {"field": key, "op": "eq", "value": value}
    return {"field": key, "op": op, "value": _typed(c.field, c.value, kind)}


def _typed(f: FieldSpec, text: str, kind: str) -> Any:
    """A typed-in value as the store compares it (the field type reads it; what it
    refuses is passed on as text for the store to name in its error)."""
    if kind == "money":
        from frontend.workspace.widgets import money_text

        text = money_text(text)
    try:
        return f.field_type.from_text(text, f) if f.type not in ("formula",) else (
            text if kind == "text" else float(text))
    except ValueError:
        return text


def filter_of(conds: list[Condition], join: str, now: datetime | None = None) -> Any:
    leaves = [x for c in conds if (x := leaf(c, now)) is not None]
    if not leaves:
        return None
    if len(leaves) == 1:
        return leaves[0]
    return {"or" if join == "or" else "and": leaves}
