"""Browser tests of the pages: a real server (uvicorn, in a thread, on a free port) over the
test database, driven by Debian's Chromium through Playwright.

One browser for the whole package; each test gets fresh browser contexts (no shared cookies)
and an emptied database (the ``db`` fixture). Without Chromium or Playwright the tests are
skipped, except under ``CI=true`` where that fails the run (as a missing PostgreSQL does).
Every page a test opens is watched for Content-Security-Policy reports and script errors:
a test that triggered one fails at teardown.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from platform_core.app import create_app
from platform_core.db import Database
from platform_core.security.directory import ensure_builtin_roles
from platform_core.security.users import create_user
from platform_core.settings import load_settings
from tests.security_setup import PASSWORD, SYSTEM

CHROMIUM = os.environ.get("QIAO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 10_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests need {reason} in CI (apt-get install chromium; "
                    "pip install -e '.[test]')")
    pytest.skip(f"browser tests skipped: {reason}")


# Package scope, not session: while Playwright's sync API is open it leaves its event
# loop marked as running on the main thread, which breaks later tests that run their own.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package")
    if not Path(CHROMIUM).exists():
        _unavailable(f"Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVED: dict[str, Any] = {}


@pytest.fixture
def server_keyring(server: str) -> Any:
    """The test server's field-encryption keyring (to write records as its users do)."""
    return SERVED["keyring"]


@pytest.fixture(scope="package")
def server(_migrated: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app served over HTTP on 127.0.0.1; its base URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = load_settings(data_dir=tmp_path_factory.mktemp("web"), base_url=base,
                             login_rate_per_minute=10_000)
    app = create_app(settings, db=_migrated)
    runner = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=runner.run, name="qiao-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not runner.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    SERVED["keyring"] = app.state.qiao.keyring
    yield base
    runner.should_exit = True
    thread.join(timeout=10)


@dataclass
class Web:
    """Opens browser contexts on the test server and collects what their pages report."""

    browser: Any
    base: str
    reports: list[str] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)

    def page(self, *, width: int = 1280, height: int = 800, locale: str = "zh-CN") -> Any:
        """A page in a new context (its own cookies), watched for CSP reports."""
        context = self.browser.new_context(base_url=self.base, locale=locale,
                                           viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.reports.append(f"page error: {exc}"))
        page.on("dialog", lambda dialog: dialog.accept())
        return page

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.reports.append(message.text)

    def sign_in(self, page: Any, username: str, password: str = PASSWORD,
                path: str = "/") -> Any:
        page.goto(path)
        page.fill("#username", username)
        page.fill("#password", password)
        page.click("button[type=submit].primary")
        page.wait_for_load_state()
        return page

    def signed_in(self, username: str, **kwargs: Any) -> Any:
        page = self.page(**kwargs)
        self.sign_in(page, username)
        assert not page.url.startswith(self.base + "/login"), page.content()
        return page


@pytest.fixture
def web(browser: Any, server: str, db: Database) -> Iterator[Web]:
    helper = Web(browser, server)
    yield helper
    for context in helper.contexts:
        context.close()
    assert not helper.reports, "the pages reported CSP violations or script errors: " + \
        "; ".join(helper.reports)


def add_user(db: Database, username: str, *, roles: tuple[str, ...] = ("admin",),
             one_time: bool = False) -> str | None:
    """A user (built-in roles made when missing); their one-time password if asked for."""
    with db.write() as s:
        ensure_builtin_roles(s)
        _, password = create_user(s, username=username, display_name=username.title(),
                                  password=None if one_time else PASSWORD, actor=SYSTEM,
                                  roles=roles)
    return password


def path_of(page: Any) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url)


def alert(page: Any) -> str:
    """The error messages the page shows (its empty, hidden alert box aside)."""
    return " ".join(page.locator("[role=alert]:visible").all_inner_texts())


def status(page: Any) -> str:
    """The page's confirmation message (``?msg=``), once the page it is on has loaded (a
    click that navigates can return when the new URL is committed, before its document
    is parsed — seen under the CI replica's load)."""
    page.wait_for_load_state("domcontentloaded")
    return " ".join(page.locator("[role=status]:visible").all_inner_texts())


def user_row(page: Any, username: str) -> Any:
    """The row of ``username`` on /admin/users."""
    return page.locator("#users tbody tr", has=page.get_by_role("link", name=username,
                                                                  exact=True))
