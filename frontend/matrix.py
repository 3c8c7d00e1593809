"""The permission matrix: a role's permission document as rows of checkboxes, and back.

One row per target — ``*`` (every form), ``app.*`` (every form of an app), then each
published form ``app.form`` — with the actions as checkboxes, a scope select and, for a
form, a level (hidden/read/write) per field. A row whose scope is "not set" has no entry
at all, so the less specific entry applies (``crm.customer`` falls back to ``crm.*``,
then ``*``); a row with a scope and no action checked is an explicit "nothing here".

Form field names: ``row`` (each target key, in order), ``scope:<key>``, ``act:<key>``
(one value per checked action), ``default:<key>``, ``field:<key>:<field key>``,
``filter:<key>`` (the condition of a ``filter`` scope, as the filter JSON of
docs/query.md, checked against the form's fields with ``$user.…`` filled in).
What the matrix cannot show is kept: levels of fields no longer in the published form,
and entries for forms that are not published.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from engine_forms.forms import list_apps, list_forms, published
from frontend.i18n import N_, _
from platform_core.security.permissions import ACTIONS, FIELD_LEVELS, SCOPES

UNSET = ""
FILTER = "filter"


@dataclass(frozen=True)
class Target:
    """One row: a form key pattern, a label, and (for a published form) its fields."""

    key: str
    label: str
    fields: tuple[tuple[str, str], ...] = ()
    note: str = ""
    store: Any = None  # the published form's FieldSet (a filter scope is checked on it)


@dataclass
class Row:
    """A target with the state shown in its checkboxes and selects."""

    target: Target
    actions: set[str] = field(default_factory=set)
    scope: str = UNSET
    default_field: str = ""
    levels: dict[str, str] = field(default_factory=dict)
    filter_text: str = ""  # a filter scope's condition, as JSON text


def targets(session: Session, permissions: dict[str, Any]) -> list[Target]:
    """Every row the matrix shows for a role with ``permissions``."""
    rows = [Target("*", _("全部表单"))]
    for app in list_apps(session):
        rows.append(Target(f"{app.key}.*", _("{app} · 全部表单").format(app=app.name)))
        for form in list_forms(session, app.key):
            if form.published_version is None:
                continue
            pub = published(session, app.key, form.key)
            rows.append(Target(f"{app.key}.{form.key}", f"{app.name} · {pub.spec.name}",
                               tuple((f.key, f.label) for f in pub.spec.fields),
                               store=pub.fields))
    shown = {t.key for t in rows}
    rows += [Target(key, key, note=_("未发布或已删除"))
             for key in sorted((permissions.get("forms") or {}).keys() - shown)]
    return rows


def rows_from_permissions(found: list[Target], permissions: dict[str, Any]) -> list[Row]:
    entries = permissions.get("forms") or {}
    rows = []
    for target in found:
        entry = entries.get(target.key)
        if entry is None:
            rows.append(Row(target))
            continue
        scope = entry.get("scope", "own")
        text = json.dumps(scope["filter"], ensure_ascii=False, indent=1) \
            if isinstance(scope, dict) else ""
        rows.append(Row(target, set(entry.get("actions") or ()),
                        scope if isinstance(scope, str) else FILTER,
                        entry.get("default_field", ""), dict(entry.get("fields") or {}),
                        text))
    return rows


def rows_from_form(found: list[Target], form: Any, old: dict[str, Any]) -> list[Row]:
    """The rows as the user left them (a row the form did not carry, say a form published
    since the page was loaded, keeps the role's current entry)."""
    sent = set(form.getlist("row"))
    kept = rows_from_permissions([t for t in found if t.key not in sent], old)
    by_key = {r.target.key: r for r in kept}
    return [by_key.get(t.key) or Row(
                t, set(form.getlist(f"act:{t.key}")), form.get(f"scope:{t.key}", UNSET),
                form.get(f"default:{t.key}", ""),
                {k: v for k, _label in t.fields if (v := form.get(f"field:{t.key}:{k}", ""))},
                str(form.get(f"filter:{t.key}", "")).strip())
            for t in found]


def _entry(row: Row, old: dict[str, Any], errors: list[str]) -> dict[str, Any] | None:
    key = row.target.key
    if row.scope == UNSET:
        if row.actions:
            errors.append(_("{key}：勾选了操作但未选择范围").format(key=key))
        return None
    entry: dict[str, Any] = {"actions": [a for a in ACTIONS if a in row.actions]}
    if row.scope == FILTER:
        condition = _condition(row, errors)
        if condition is not None:
            entry["scope"] = {"filter": condition}
    elif row.scope in SCOPES:
        entry["scope"] = row.scope
    else:
        errors.append(_("{key}：未知范围 {scope!r}").format(key=key, scope=row.scope))
    if row.default_field:
        entry["default_field"] = row.default_field
    shown = {k for k, _label in row.target.fields}
    levels = {k: v for k, v in (old.get("fields") or {}).items() if k not in shown}
    levels |= {k: v for k, v in row.levels.items() if k in shown and v}
    if levels:
        entry["fields"] = levels
    return entry


def _condition(row: Row, errors: list[str]) -> Any:
    """A filter scope's condition from its JSON text, checked against the form's fields
    (with ``$user.id`` and ``$user.department_id`` as a signed-in user's would be)."""
    from platform_core.errors import DomainError
    from platform_core.store.query import compile_filter

    key = row.target.key
    try:
        node = json.loads(row.filter_text)
    except ValueError:
        errors.append(_("{key}：条件不是有效的 JSON").format(key=key))
        return None
    if not isinstance(node, dict) or not node:
        errors.append(_("{key}：条件应是一个筛选对象，例如 {example}").format(
            key=key, example='{"field": "city", "op": "eq", "value": "北京"}'))
        return None
    if row.target.store is not None:
        sample = json.loads(json.dumps(node).replace('"$user.id"', "1")
                            .replace('"$user.department_id"', "1"))
        try:
            compile_filter(sample, row.target.store, "sqlite")
        except DomainError as exc:
            errors.append(_("{key}：条件有误：{problem}").format(key=key, problem=exc.detail))
            return None
    return node


def build(rows: list[Row], form: Any, old: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The permission document the matrix describes, and what is wrong with it.

    ``old`` is the role's current document: what the matrix cannot show is kept from it.
    The result still goes through ``check_permissions`` (levels, keys) before saving.
    """
    errors: list[str] = []
    doc: dict[str, Any] = {}
    for flag in ("admin", "users"):
        if form.get(flag):
            doc[flag] = True
    old_entries = old.get("forms") or {}
    entries = {}
    for row in rows:
        entry = _entry(row, old_entries.get(row.target.key) or {}, errors)
        if entry is not None:
            entries[row.target.key] = entry
    if entries:
        doc["forms"] = entries
    return doc, errors


CHOICES = {"actions": ACTIONS, "scopes": SCOPES, "levels": FIELD_LEVELS}
# labels are message ids (``labels()`` translates them for the page)
ACTION_LABELS = {"create": N_("新建"), "read": N_("查看"), "update": N_("修改"),
                 "delete": N_("删除"), "import": N_("导入"), "export": N_("导出"),
                 "manage": N_("管理"), "unmask": N_("看明文")}
SCOPE_LABELS = {UNSET: N_("— 未设置"), "own": N_("本人"), "department": N_("本部门"),
                "department_tree": N_("本部门及下级"), "all": N_("全部"),
                FILTER: N_("符合条件的记录")}
LEVEL_LABELS = {"": N_("— 默认"), "hidden": N_("隐藏"), "masked": N_("脱敏"), "read": N_("只读"),
                "write": N_("可写")}


def labels() -> dict[str, dict[str, str]]:
    """The action, scope and level labels in the request's language."""
    return {name: {key: _(label) for key, label in table.items()}
            for name, table in (("action_labels", ACTION_LABELS),
                                ("scope_labels", SCOPE_LABELS),
                                ("level_labels", LEVEL_LABELS))}
