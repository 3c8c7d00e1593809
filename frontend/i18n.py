"""The language of the pages: Chinese by default, English when the user chooses it.

UI text is written in Chinese and is its own gettext message id (``_("首页")``); the
English catalogue ``locale/en/LC_MESSAGES/messages.po`` translates it. The catalogue is
read once per process with Babel (no compiled ``.mo`` files to go stale). Metadata labels
(form, field and menu names an admin typed) are never looked up: they are shown as typed.

Per request, in order: ``LocaleMiddleware`` notes the request (its ASGI scope) in a
context variable → the guard puts the signed-in ``principal`` on the request's state →
every ``gettext`` call (Python or Jinja) asks ``current_locale()``: the user's own
setting (``users.locale``), else the browser's ``Accept-Language``, else Chinese. The
lookup is lazy, so text rendered before sign-in is known (a 401 page) still follows
the browser, and the context variable makes threadpool handlers and the HTML error
middleware see the same request.
"""

from __future__ import annotations

import gettext as stdlib_gettext
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from starlette.types import ASGIApp, Receive, Scope, Send

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LOCALE = "zh-CN"
# the values of ``users.locale`` and what the language select offers, with each
# language's own name (a language is looked for under its own name, so never translated)
LOCALES = {"zh-CN": "中文", "en": "English"}
CATALOGUES = {"en": "en"}  # locale → folder under locale/ (Chinese needs none)


@dataclass(frozen=True)
class _Request:
    state: dict[str, Any]  # the ASGI scope's state: the guard adds "principal" to it
    browser: str  # the locale Accept-Language asks for


_request: ContextVar[_Request | None] = ContextVar("qiao_request_locale", default=None)


def negotiate(accept_language: str) -> str:
    """The locale an ``Accept-Language`` header asks for: the first supported language in
    the browser's order of preference (``en*`` → English, ``zh*`` → Chinese), else
    Chinese. ``fr, en;q=0.5`` → ``en``; ``fr`` alone → ``zh-CN``."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, index, tag.strip().lower()))
    for _q, _i, tag in sorted(ranked):
        if tag == "en" or tag.startswith("en-"):
            return "en"
        if tag == "zh" or tag.startswith("zh-"):
            return "zh-CN"
    return DEFAULT_LOCALE


def current_locale() -> str:
    """The locale of the request being handled (outside a request: Chinese)."""
    request = _request.get()
    if request is None:
        return DEFAULT_LOCALE
    chosen = getattr(request.state.get("principal"), "locale", None)
    return chosen if chosen in LOCALES else request.browser


@cache
def translations(locale: str) -> stdlib_gettext.NullTranslations:
    """The catalogue of ``locale``, read from its ``.po`` file once per process (fuzzy
    entries left out, as ``msgfmt`` would); Chinese, the message ids, needs none."""
    folder = CATALOGUES.get(locale)
    if folder is None:
        return stdlib_gettext.NullTranslations()
    with (LOCALE_DIR / folder / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=folder)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return stdlib_gettext.GNUTranslations(compiled)


def gettext(message: str) -> str:
    """``message`` (Chinese) in the current request's language."""
    return translations(current_locale()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_locale()).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    return translations(current_locale()).pgettext(context, message)


def npgettext(context: str, singular: str, plural: str, n: int) -> str:
    return translations(current_locale()).npgettext(context, singular, plural, n)


def N_(message: str) -> str:  # noqa: N802 - the name every gettext tool knows
    """Mark ``message`` for the catalogue without translating it yet: for constants
    built at import time, translated with ``gettext`` where they are shown."""
    return message


_ = gettext


def install(env: Any) -> None:
    """Give a Jinja environment (with ``jinja2.ext.i18n``) the per-request gettext:
    ``{{ _("首页") }}``, ``{{ _("未读 %(n)s", n=count) }}`` (new-style: placeholders by
    name, ``%%`` for a percent sign)."""
    env.install_gettext_callables(gettext=gettext, ngettext=ngettext, newstyle=True,
                                  pgettext=pgettext, npgettext=npgettext)


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), "")


class LocaleMiddleware:
    """ASGI middleware: makes the request's locale known to ``gettext`` for as long as
    the request is handled (its pages, and the HTML error page ``HtmlErrors`` renders)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        token = _request.set(_Request(state, negotiate(_header(scope, b"accept-language"))))
        try:
            await self.app(scope, receive, send)
        finally:
            _request.reset(token)
