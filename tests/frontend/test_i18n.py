"""The pages' languages: the English catalogue is complete, a request's locale follows the
user's setting and else the browser, and the pages show one language at a time. No
browser: the test client renders the pages (a bearer token signs the user in)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages import frontend as babel_frontend
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from sqlalchemy import select

from frontend import i18n, web
from platform_core.app import create_app
from platform_core.security.directory import list_roles
from platform_core.security.models import User
from platform_core.security.users import LOCALES
from platform_core.settings import load_settings
from tests.security_setup import client_as

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "frontend" / "locale" / "en" / "LC_MESSAGES" / "messages.po"
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+")
# pages a signed-in administrator opens, each rendered in both languages
PAGES = ["/admin/users", "/admin/users/1", "/admin/roles", "/admin/roles/staff",
         "/admin/departments", "/admin/audit", "/me/security", "/password", "/notifications"]
# not UI text: the product's name, and each language's own name in the language select
NOT_UI = {"桥", "中文"}
ENGLISH_UI = ["Sign out", "Tasks", "Users", "Roles", "Departments", "Save", "Create",
              "Status", "Password"]


def _messages() -> set[tuple[str | None, str]]:
    """Every (context, message id) that babel.cfg's extraction finds in the sources."""
    parse = getattr(babel_frontend, "parse_mapping_cfg", None) or babel_frontend.parse_mapping
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse(cfg)
    found = set()
    for _file, _line, message, _comments, context in extract_from_dir(
            str(ROOT), method_map, options_map):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.add((context, msgid))
    return found


def test_every_message_has_an_english_translation():
    with PO.open("rb") as po:
        catalog = read_po(po, locale="en")
    found = _messages()
    assert ("", "首页") in {(c or "", m) for c, m in found}  # the extraction itself works
    problems = []
    for context, msgid in sorted(found, key=lambda item: (item[0] or "", item[1])):
        entry = catalog.get(msgid, context=context)
        where = f"{context}: {msgid}" if context else msgid
        if entry is None or not entry.string:
            problems.append(f"no English for {where!r}")
        elif entry.fuzzy:
            problems.append(f"fuzzy (check it, then drop the flag): {where!r}")
        elif _fields(msgid) != _fields(entry.string):
            problems.append(f"placeholders differ: {where!r} → {entry.string!r}")
    problems += [f"{message.id!r}: {', '.join(map(str, errors))}"
                 for message, errors in catalog.check()]
    assert not problems, "frontend/locale/en/LC_MESSAGES/messages.po (docs/i18n.md):\n" + \
        "\n".join(problems)


def _fields(text: str | tuple[str, ...]) -> set[str]:
    """The placeholders of a message: ``%(name)s`` (templates) and ``{name}`` (Python)."""
    joined = "".join(text) if isinstance(text, tuple) else text
    return set(re.findall(r"%\(\w+\)\w|\{\w*[^{}]*\}", joined))


def test_the_locales_of_the_pages_and_of_the_user_setting_agree():
    assert tuple(i18n.LOCALES) == LOCALES and i18n.DEFAULT_LOCALE == LOCALES[0]


@pytest.mark.parametrize(("header", "locale"), [
    ("", "zh-CN"), ("en", "en"), ("en-US,en;q=0.9", "en"), ("EN-gb", "en"),
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"), ("zh-TW", "zh-CN"), ("fr", "zh-CN"),
    ("fr, en;q=0.5", "en"), ("en;q=0.2, zh;q=0.8", "zh-CN"), ("en;q=0, fr", "zh-CN"),
    ("*", "zh-CN"), ("en;q=oops", "zh-CN"), ("english", "zh-CN"),
])
def test_accept_language_chooses_english_or_chinese(header, locale):
    assert i18n.negotiate(header) == locale


def test_outside_a_request_text_is_chinese():
    assert i18n.current_locale() == "zh-CN"
    assert i18n.gettext("首页") == "首页"
    assert i18n.translations("en").gettext("首页") == "Home"
    assert web.page_context(None, "/login")["lang"] == "zh-CN"


@pytest.fixture
def app(db, tmp_path):
    return create_app(load_settings(data_dir=tmp_path), db=db)


def _text(html: str) -> str:
    """What a person reads on the page: the text, titles, labels and placeholders."""
    html = re.sub(r"<script\b.*?</script>", " ", html, flags=re.S)
    attributes = re.findall(r'(?:title|placeholder|aria-label|data-label|data-confirm|'
                            r'hx-confirm|data-qr-alt)="([^"]*)"', html)
    return " ".join([re.sub(r"<[^>]+>", " ", html), *attributes])


def _metadata(db) -> set[str]:
    """Names typed by people (roles, users), shown as typed in every language."""
    with db.read() as s:
        names = {r.name for r in list_roles(s)} | set(s.scalars(select(User.display_name)))
    return names


def _get(client: TestClient, path: str, language: str | None) -> str:
    headers = {"Accept": "text/html"} | ({"Accept-Language": language} if language else {})
    response = client.get(path, headers=headers)
    assert response.status_code in (200, 404, 422), (path, response.status_code)
    assert "text/html" in response.headers["content-type"], path
    return response.text


def test_english_pages_show_no_chinese_ui_text(db, app):
    admin = client_as(app, db, "boss")
    anonymous = TestClient(app)
    pages = [(admin, path) for path in [*PAGES, "/no-such-page"]] + [(anonymous, "/login")]
    for client, path in pages:
        html = _get(client, path, "en-US,en;q=0.9")
        assert '<html lang="en">' in html, path
        text = _text(html)
        for name in sorted(_metadata(db), key=len, reverse=True):
            text = text.replace(name, " ")
        left = set(CJK.findall(text)) - NOT_UI
        assert not left, f"{path} in English still shows {sorted(left)}"


def test_chinese_pages_show_no_english_ui_words(db, app):
    admin = client_as(app, db, "boss")
    for path in PAGES:
        for language in (None, "zh-CN,zh;q=0.9,en;q=0.8"):
            html = _get(admin, path, language)
            assert '<html lang="zh-CN">' in html, path
            text = _text(html)
            shown = [w for w in ENGLISH_UI if re.search(rf"\b{w}\b", text)]
            assert not shown, f"{path} in Chinese still shows {shown}"
    assert "登录" in _text(_get(TestClient(app), "/login", None))


def test_the_users_setting_wins_over_the_browser(db, app):
    admin = client_as(app, db, "boss")
    page = _get(admin, "/me/security", "zh-CN")
    assert '<option value="en" lang="en">English</option>' in page
    saved = admin.post("/me/security/locale", data={"locale": "en"}, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"].endswith("msg=locale_saved")
    page = _get(admin, saved.headers["location"], "zh-CN")
    assert "Your language was saved." in page and "Two-step sign-in" in page
    assert '<option value="en" lang="en" selected>' in page
    assert ">Users<" in _get(admin, "/admin/users", "zh-CN")
    assert admin.get("/api/v1/me").json()["locale"] == "en"

    admin.post("/me/security/locale", data={"locale": ""})  # back to the browser's
    assert ">用户<" in _get(admin, "/admin/users", "zh-CN")
    assert ">Users<" in _get(admin, "/admin/users", "en")
    refused = admin.post("/me/security/locale", data={"locale": "fr"})
    assert refused.status_code == 422 and admin.get("/api/v1/me").json()["locale"] is None


def test_messages_built_in_python_follow_the_request(db, app):
    admin = client_as(app, db, "boss")
    english = _get(admin, "/admin/audit?since=yesterday", "en")
    assert "since: use a date like 2024-05-01" in english
    chinese = _get(admin, "/admin/audit?since=yesterday", "zh-CN")
    assert "since：日期格式应为 YYYY-MM-DD" in chinese
    assert "The user was saved." in _get(admin, "/admin/users?msg=user_saved", "en")
    assert "用户已保存" in _get(admin, "/admin/users?msg=user_saved", None)
    matrix = _get(admin, "/admin/roles/staff", "en")
    assert "Every form" in matrix and "> View <" in matrix and "Department tree" in matrix
    assert "Not found" in _get(admin, "/no-such-page", "en")
    assert "找不到" in _get(admin, "/no-such-page", "zh-CN")
