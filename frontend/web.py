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

from platform_core import __version__
from platform_core.errors import DomainError
from platform_core.security.principal import Principal

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STATIC_DIR = HERE / "static"
NO_STORE = {"Cache-Control": "no-store"}

# (path, label, who sees the link)
NAV: tuple[tuple[str, str, str], ...] = (
    ("/", "首页 Home", "user"),
    ("/tasks", "待办 Tasks", "user"),
    ("/notifications", "通知 Notifications", "user"),
    ("/admin/users", "用户 Users", "users"),
    ("/admin/roles", "角色 Roles", "users"),
    ("/admin/departments", "部门 Departments", "user"),
    ("/admin/audit", "审计 Audit", "admin"),
    ("/me/security", "安全 Security", "user"),
)

# Messages a redirect may ask the next page to show (``?msg=key``): a fixed list, so a
# link can never make a page display text of an attacker's choosing.
FLASH: dict[str, str] = {
    "password_changed": "密码已修改 / Your password was changed.",
    "totp_enabled": "动态验证码已启用 / Two-step sign-in is on.",
    "totp_disabled": "动态验证码已关闭 / Two-step sign-in is off.",
    "token_revoked": "令牌已吊销 / The token was revoked.",
    "user_saved": "用户已保存 / The user was saved.",
    "user_unlocked": "用户已解锁 / The user was unlocked.",
    "role_saved": "角色已保存 / The role was saved.",
    "role_created": "角色已创建 / The role was created.",
    "department_saved": "部门已保存 / The department was saved.",
    "signed_out": "已退出 / You are signed out.",
    "task_done": "任务已完成 / The task is done.",
    "task_claimed": "任务已认领 / The task is yours now.",
    "notifications_read": "已全部标为已读 / All marked read.",
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
# UI text is written in Chinese (the default) as gettext message ids: ``{{ _("客户") }}``.
TEMPLATES.env.add_extension("jinja2.ext.i18n")
TEMPLATES.env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]


def allowed(principal: Principal | None, who: str) -> bool:
    if principal is None:
        return False
    return {"user": True, "users": principal.manages_users,
            "admin": principal.is_admin}[who]


def nav_for(principal: Principal | None, path: str = "") -> list[dict[str, Any]]:
    """The navigation links ``principal`` may follow (the current one marked)."""
    if principal is None or principal.must_change_password:
        return []
    return [{"href": href, "label": label,
             "current": path == href or (href != "/" and path.startswith(href + "/"))}
            for href, label, who in NAV if allowed(principal, who)]


def principal_of(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


def page_context(principal: Principal | None, path: str,
                 msg: str | None = None) -> dict[str, Any]:
    """The values base.html needs (also used by the error pages of ``HtmlErrors``)."""
    return {"principal": principal, "nav": nav_for(principal, path), "version": __version__,
            "csrf_token": principal.csrf_token if principal else "",
            "flash": FLASH.get(msg or "")}


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
