"""A report's filters in words, for "explain this number": the filter AST, a row's
dimension keys and the parameters, with field and option labels — e.g. "银行 = 工商银行
且 放款日期 在 2026-03 且 审批结果 = 已批准（报表筛选）"."""

from __future__ import annotations

from typing import Any

from frontend.i18n import _


def _field(pub: Any, key: str) -> Any:
    return pub.spec.field(key) if pub is not None else None


def label_of(pub: Any, key: str) -> str:
    system = {"id": _("编号"), "created_at": _("创建时间"), "updated_at": _("更新时间"),
              "owner_id": _("负责人"), "department_id": _("部门")}
    f = _field(pub, key)
    return f.label if f is not None and f.label else system.get(key, key)


def value_of(pub: Any, key: str, value: Any, names: dict[str, dict[int, str]]) -> str:
    """A value as the user knows it: an option's label, a person's or department's name."""
    if isinstance(value, list):
        return "、".join(value_of(pub, key, v, names) for v in value)
    if value is None:
        return _("（空）")
    if isinstance(value, bool):
        return _("是") if value else _("否")
    f = _field(pub, key)
    if f is not None:
        options = {str(o.get("value")): o.get("label") for o in f.config.get("options", [])}
        if str(value) in options:
            return str(options[str(value)] or value)
        if f.type in ("user", "department") and isinstance(value, int):
            return names.get(f.type, {}).get(value, str(value))
    if key == "owner_id" and isinstance(value, int):
        return names.get("user", {}).get(value, str(value))
    if key == "department_id" and isinstance(value, int):
        return names.get("department", {}).get(value, str(value))
    return str(value)


OPS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}


def filter_words(ast: Any, pub: Any, names: dict[str, dict[int, str]]) -> str:
    """One filter AST in words (``and``: 且, ``or``: 或, ``not``: 并非)."""
    if not isinstance(ast, dict) or not ast:
        return ""
    for comb, word in (("and", _(" 且 ")), ("or", _(" 或 "))):
        if comb in ast:
            parts = [filter_words(p, pub, names) for p in ast[comb]]
            parts = [p for p in parts if p]
            text = word.join(parts)
            return f"（{text}）" if comb == "or" and len(parts) > 1 else text
    if "not" in ast:
        return _("并非（{x}）").format(x=filter_words(ast["not"], pub, names))
    key, op, value = ast.get("field", ""), ast.get("op", ""), ast.get("value")
    label = label_of(pub, key)
    if op in OPS:
        return f"{label} {OPS[op]} {value_of(pub, key, value, names)}"
    if op == "between" and isinstance(value, list) and len(value) == 2:
        return _("{label} 在 {a} 至 {b} 之间").format(label=label, a=value[0], b=value[1])
    if op == "in":
        if key == "id":
            return _("{label} 是 {n} 条记录之一").format(label=label, n=len(value or []))
        return _("{label} 是 {values} 之一").format(label=label,
                                                  values=value_of(pub, key, value, names))
    if op == "not_in":
        return _("{label} 不是 {values}").format(label=label,
                                                values=value_of(pub, key, value, names))
    if op == "contains":
        return _("{label} 包含 “{value}”").format(label=label, value=value)
    if op == "starts_with":
        return _("{label} 以 “{value}” 开头").format(label=label, value=value)
    if op == "is_empty":
        return _("{label} 为空").format(label=label)
    if op == "is_not_empty":
        return _("{label} 不为空").format(label=label)
    return f"{label} {op} {value}"


def row_words(spec: Any, pub: Any, keys: list[Any], names: dict[str, dict[int, str]],
              shown: list[Any] | None = None) -> list[str]:
    """Each dimension of the clicked row: "放款日期 在 2026-03", "金额 在 10 至 50 之间";
    ``shown``: the row's dimensions as the report shows them (a linked record's title, a
    lookup's option label), used for the plain ones."""
    out = []
    for i, (dim, key) in enumerate(zip(spec.dimensions, keys, strict=False)):
        label = dim.label or label_of(pub, dim.field)
        if key is None:
            out.append(_("{label} 为空").format(label=label))
        elif dim.bucket:
            out.append(_("{label} 在 {period}").format(label=label, period=key))
        elif dim.bins and isinstance(key, int):
            low = dim.bins[key - 1] if key > 0 else None
            high = dim.bins[key] if key < len(dim.bins) else None
            if low is None:
                out.append(_("{label} < {high}").format(label=label, high=high))
            elif high is None:
                out.append(_("{label} ≥ {low}").format(label=label, low=low))
            else:
                out.append(_("{label} ≥ {low} 且 < {high}").format(label=label, low=low,
                                                                   high=high))
        elif shown is not None and i < len(shown) and shown[i] not in (None, ""):
            out.append(f"{label} = {shown[i]}")
        else:
            out.append(f"{label} = {value_of(pub, dim.field, key, names)}")
    return out


def param_words(spec: Any, pub: Any, values: dict[str, Any],
                names: dict[str, dict[int, str]]) -> list[str]:
    out = []
    for p in spec.parameters:
        value = values.get(p.key, p.default)
        if value in (None, "", []):
            continue
        label = p.label or p.key
        if p.type == "date_range" and isinstance(value, list) and len(value) == 2:
            field = label_of(pub, p.field or "created_at")
            out.append(_("{field} 在 {a} 至 {b}（参数：{label}）").format(
                field=field, a=value[0], b=value[1], label=label))
        elif p.type == "date_range":
            out.append(_("{label} = {value}").format(label=label, value=value))
        elif p.type == "department":
            out.append(_("部门在 {name} 及其下级（参数）").format(
                name=names.get("department", {}).get(value, value)))
        elif p.type == "owner":
            out.append(_("负责人 = {name}（参数）").format(
                name=names.get("user", {}).get(value, value)))
        else:
            out.append(_("{field} = {value}（参数：{label}）").format(
                field=label_of(pub, p.field or ""),
                value=value_of(pub, p.field or "", value, names), label=label))
    return out


def explain(spec: Any, pub: Any, keys: list[Any], values: dict[str, Any],
            names: dict[str, dict[int, str]], shown: list[Any] | None = None) -> str:
    """The whole sentence: the form, the row, the report's filters, the parameters, and
    the viewer's row scope."""
    parts = row_words(spec, pub, keys, names, shown)
    if spec.filters:
        parts.append(_("{words}（报表筛选）").format(words=filter_words(spec.filters, pub,
                                                                      names)))
    parts += param_words(spec, pub, values, names)
    parts.append(_("记录在你的可见范围内"))
    return _("{form} 中 {conditions}").format(form=pub.spec.name, conditions=_(" 且 ").join(
        parts))


def names_for(session: Any) -> dict[str, dict[int, str]]:
    from sqlalchemy import select

    from platform_core.security.directory import list_departments
    from platform_core.security.models import User

    users = dict(session.execute(select(User.id, User.display_name).limit(5000)).all())
    return {"user": users, "department": {d.id: d.name for d in list_departments(session)}}
