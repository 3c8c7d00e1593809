"""What every page shares: the templates, the page context (who is signed in, their CSRF
token, the navigation their rights allow), rendering, redirects and error pages.

Pages are never cached (``Cache-Control: no-store``): they show private data, and after
sign-out the browser's Back button must ask the server again (which sends it to the
sign-in page) instead of showing a stored copy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from frontend import i18n
from frontend.i18n import N_
from platform_core import __version__
from platform_core.errors import DomainError
from platform_core.security.principal import Principal

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STATIC_DIR = HERE / "static"
NO_STORE = {"Cache-Control": "no-store"}

# (path, label, who sees the link); labels are message ids, translated per request
NAV: tuple[tuple[str, str, str], ...] = (
    ("/", N_("首页"), "user"),
    ("/tasks", N_("待办"), "user"),
    ("/notifications", N_("通知"), "user"),
    ("/admin/users", N_("用户"), "users"),
    ("/admin/roles", N_("角色"), "users"),
    ("/admin/departments", N_("部门"), "user"),
    ("/admin/apps", N_("应用"), "admin"),
    ("/admin/audit", N_("审计"), "admin"),
    ("/admin/channels", N_("集成"), "admin"),  # channels, webhooks, API tokens
    ("/me/security", N_("安全"), "user"),
)

# Messages a redirect may ask the next page to show (``?msg=key``): a fixed list, so a
# link can never make a page display text of an attacker's choosing. Values are message
# ids (other page modules add theirs), translated when the page is rendered.
FLASH: dict[str, str] = {
    "password_changed": N_("密码已修改"),
    "totp_enabled": N_("动态验证码已启用"),
    "totp_disabled": N_("动态验证码已关闭"),
    "token_revoked": N_("令牌已吊销"),
    "locale_saved": N_("界面语言已保存"),
    "user_saved": N_("用户已保存"),
    "user_unlocked": N_("用户已解锁"),
    "role_saved": N_("角色已保存"),
    "role_created": N_("角色已创建"),
    "department_saved": N_("部门已保存"),
    "channel_saved": N_("渠道设置已保存"),
    "channel_reset": N_("已恢复为环境变量中的设置"),
    "webhook_ping": N_("已排队发送 ping，稍后在投递记录中查看结果"),
    "webhook_replayed": N_("已重新排队投递"),
    "webhook_deleted": N_("订阅已删除"),
    "signed_out": N_("已退出"),
    "task_done": N_("任务已完成"),
    "task_claimed": N_("任务已认领"),
    "notifications_read": N_("已全部标为已读"),
    "app_imported": N_("应用已导入"),
    "app_created": N_("应用已创建"),
}


def when(moment: Any) -> str:
    """A stored time (ISO text or datetime, UTC) as ``2024-05-01 09:30 UTC``."""
    if not moment:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def past(moment: Any) -> bool:
    """Whether a stored time (ISO text or datetime, UTC) has gone by."""
    if not moment:
        return False
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment <= datetime.now(UTC)


TEMPLATES.env.filters["when"] = when
TEMPLATES.env.filters["past"] = past
# UI text is written in Chinese (the default) as gettext message ids: ``{{ _("客户") }}``,
# shown in the language of the request (``frontend.i18n``).
TEMPLATES.env.add_extension("jinja2.ext.i18n")
i18n.install(TEMPLATES.env)


def allowed(principal: Principal | None, who: str) -> bool:
    if principal is None:
        return False
    return {"user": True, "users": principal.manages_users,
            "admin": principal.is_admin}[who]


def nav_for(principal: Principal | None, path: str = "") -> list[dict[str, Any]]:
    """The navigation links ``principal`` may follow (the current one marked)."""
    if principal is None or principal.must_change_password:
        return []
    return [{"href": href, "label": i18n.gettext(label),
             "current": path == href or (href != "/" and path.startswith(href + "/"))}
            for href, label, who in NAV if allowed(principal, who)]


def principal_of(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


def page_context(principal: Principal | None, path: str,
                 msg: str | None = None) -> dict[str, Any]:
    """The values base.html needs (also used by the error pages of ``HtmlErrors``);
    ``lang`` is the page's language tag (``<html lang>``)."""
    flash = FLASH.get(msg or "")
    return {"principal": principal, "nav": nav_for(principal, path), "version": __version__,
            "csrf_token": principal.csrf_token if principal else "",
            "flash": i18n.gettext(flash) if flash else None,
            "lang": i18n.current_locale()}


def render(request: Request, template: str, status: int = 200,
           **values: Any) -> HTMLResponse:
    """Render a page for the signed-in user (if any), never cached."""
    context = page_context(principal_of(request), request.url.path,
                           request.query_params.get("msg")) | values
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status,
                                      headers=NO_STORE)


def error_page(request: Request, exc: DomainError) -> HTMLResponse:
    """A readable page for a refused action, with the error's own status."""
    return render(request, "error.html", status=exc.status, title=exc.title,
                  detail=exc.detail, code=exc.code, http_status=exc.status)


def redirect(url: str, msg: str | None = None) -> RedirectResponse:
    """Post/redirect/get: a 303 to ``url`` (with a flash message key)."""
    if msg:
        url += ("&" if "?" in url else "?") + f"msg={quote(msg)}"
    return RedirectResponse(url, status_code=303, headers=NO_STORE)


def safe_next(target: str | None, default: str = "/") -> str:
    """A same-site path to go to after sign-in; anything else (another host, ``//host``,
    ``/\\host``, a scheme, control characters) falls back to ``default``."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(c) < 32 or c == "\\" for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
