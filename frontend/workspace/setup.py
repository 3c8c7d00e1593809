"""What the workspace pages add to the shared page environment: their Jinja filters and
globals (China time, the address cascader's lists) and their flash messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from frontend import web
from frontend.i18n import N_
from frontend.workspace.fields import with_attachments
from frontend.workspace.values import label_of
from frontend.workspace.widgets import register_builtins

CHINA = ZoneInfo("Asia/Shanghai")


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(CHINA)


def china_time(value: Any) -> str:
    """A stored UTC time as people here read it: ``2024-05-01 17:30`` (China time)."""
    moment = _moment(value)
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "—"


def china_local(value: Any) -> str:
    """A stored UTC time as a ``datetime-local`` input's value, in China time."""
    moment = _moment(value)
    return moment.strftime("%Y-%m-%dT%H:%M") if moment else ""


def address_lookup(name: str) -> Any:
    def lookup(*parts: Any) -> list[str]:
        try:
            from frontend import workspace_address
        except ImportError:  # the division data is not installed
            return []
        if any(p in (None, "") for p in parts):
            return []
        return getattr(workspace_address, name)(*parts)
    return lookup


def install() -> None:
    """Add the filters, globals and messages (idempotent)."""
    register_builtins()
    env = web.TEMPLATES.env
    env.filters["china_time"] = china_time
    env.filters["china_local"] = china_local
    env.tests["with_attachments"] = with_attachments
    env.globals["label_of"] = label_of
    env.globals["address_provinces"] = address_lookup("provinces")
    env.globals["address_cities"] = address_lookup("cities")
    env.globals["address_districts"] = address_lookup("districts")
    web.FLASH.setdefault("record_saved", N_("已保存"))
    web.FLASH.setdefault("record_deleted", N_("已删除（可在回收站恢复）"))
    web.FLASH.setdefault("view_saved", N_("视图已保存"))
    web.FLASH.setdefault("view_deleted", N_("视图已删除"))
    web.FLASH.setdefault("bulk_done", N_("已完成批量操作"))
    web.FLASH.setdefault("bulk_none", N_("请先勾选记录"))
