"""The settings of each built-in action type, as pydantic models: what the rule editor
builds an action's form from (``Action.settings``, served as JSON Schema by
``GET /api/v1/rules/actions``), so a new action type gets a form without editor code.

They describe; they do not replace ``Action.check`` (which stays the one checker at save
time). ``json_schema_extra={"widget": …}`` asks the editor for a friendlier widget than
the JSON type alone gives: ``form`` / ``flow`` / ``step`` / ``outcome`` / ``field`` /
``relation`` pickers from the app, ``values`` (field → expression rows), ``template``
(a message template with the fields to insert), ``recipients`` (role, owner, assignee,
users, a field), ``assignee`` (a flow assignment strategy), ``tags`` (comma-separated).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _w(widget: str, **more: Any) -> dict[str, Any]:
    return {"widget": widget, **more}


class _Settings(BaseModel):
    model_config = ConfigDict(extra="allow")


class CreateRecordSettings(_Settings):
    """Create a record of another form (or the same) with values computed from this one."""

    form: str = Field(title="表单", json_schema_extra=_w("form"))
    values: dict[str, str] = Field(title="字段值（表达式）", json_schema_extra=_w("values"))


class UpdateRecordSettings(_Settings):
    """Set fields of the triggering record, of the record a relation field links to
    (``via``), or of the records of another form linking here (``related``)."""

    values: dict[str, str] = Field(title="字段值（表达式）", json_schema_extra=_w("values"))
    via: str | None = Field(default=None, title="改关联字段指向的记录（可选）",
                            json_schema_extra=_w("relation"))
    related: dict[str, Any] | None = Field(default=None, title="改链接到本记录的记录（高级）")


class SetTagsSettings(_Settings):
    """Add or remove tags of a multi-select field of the record."""

    field: str = Field(title="标签字段", json_schema_extra=_w("field", types=["multiselect"]))
    add: list[str] = Field(default_factory=list, title="加上", json_schema_extra=_w("tags"))
    remove: list[str] = Field(default_factory=list, title="去掉",
                              json_schema_extra=_w("tags"))


class CreateTaskSettings(_Settings):
    """A to-do about the record in someone's task inbox."""

    title: str = Field(title="待办标题", json_schema_extra=_w("template", rows=1))
    assignee: dict[str, Any] = Field(default_factory=lambda: {"field": "owner"},
                                     title="办理人", json_schema_extra=_w("assignee"))
    due_in_days: int | None = Field(default=None, ge=1, le=3650, title="几天内完成")


class StartFlowSettings(_Settings):
    """Start a flow over the triggering record."""

    flow: str = Field(title="流程", json_schema_extra=_w("flow"))


class AdvanceFlowSettings(_Settings):
    """Complete the open task of a step of the record's running flow as the system."""

    flow: str = Field(title="流程", json_schema_extra=_w("flow"))
    step: str = Field(title="步骤", json_schema_extra=_w("step"))
    outcome: str | None = Field(default=None, title="结果", json_schema_extra=_w("outcome"))


class NotifySettings(_Settings):
    """A message in the notification centre, by e-mail, SMS or to a WeCom group."""

    channel: Literal["in_app", "email", "sms", "wecom"] = Field(
        default="in_app", title="渠道", json_schema_extra=_w("select", labels={
            "in_app": "站内通知", "email": "邮件", "sms": "短信", "wecom": "企业微信群"}))
    to: dict[str, Any] = Field(default_factory=dict, title="发给",
                               json_schema_extra=_w("recipients"))
    title: str | None = Field(default=None, title="标题", json_schema_extra=_w(
        "template", rows=1))
    template: str = Field(title="内容", json_schema_extra=_w("template", rows=3))
    robot: str | None = Field(default=None, title="企业微信机器人地址（可选）")


class CallWebhookSettings(_Settings):
    """An HTTP call to another system (its body a template)."""

    url: str = Field(title="地址", json_schema_extra={"format": "uri"})
    method: Literal["POST", "PUT", "PATCH", "GET"] = Field(default="POST", title="方法")
    body: str | None = Field(default=None, title="请求体（模板）",
                             json_schema_extra=_w("template", rows=3))


def schema_of(model: type[BaseModel] | None) -> dict[str, Any]:
    """The JSON Schema of an action type's settings (an empty object without one)."""
    if model is None:
        return {"type": "object", "properties": {}}
    return model.model_json_schema()
