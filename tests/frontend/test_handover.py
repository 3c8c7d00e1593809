"""Staff handover in a real browser: an administrator opens the handover page from a
salesperson's user page, picks two colleagues, previews what moves, confirms and sees the
result with links to the moved customers — also on a 375 px phone, with no CSP report."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from platform_core.security.models import User
from tests.frontend.conftest import add_user, path_of
from tests.frontend.test_workspace import _create, _crm

SHOTS = Path("/tmp/handover-shots")


def _id(db, username: str) -> int:
    with db.read() as s:
        return s.execute(select(User.id).where(User.username == username)).scalar_one()


def _setup(db, keyring) -> int:
    _crm(db)
    add_user(db, "boss")
    add_user(db, "xiao.li", roles=("sales",))
    for i in range(4):
        _create(db, keyring, "xiao.wang", "customer",
                {"name": f"客户{i}", "mobile": f"1380013800{i}"})
    return _id(db, "xiao.wang")


def _hand_over(page, source: int, width: int) -> None:
    page.goto(f"/admin/users/{source}")
    page.get_by_role("link", name="工作交接").click()
    assert path_of(page) == f"/admin/users/{source}/handover"
    for name in ("lao.zhao", "xiao.li"):
        page.locator("#handover-form label", has_text=name).locator("input").check()
    page.get_by_role("button", name="预览").click()
    page.wait_for_selector("#handover-preview #handover-forms")
    assert page.inner_text("#handover-preview #handover-records") == "4"
    assert "客户" in page.inner_text("#handover-preview #handover-forms")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"preview-{width}.png"), full_page=True)
    page.get_by_role("button", name="确认交接").click()  # the confirm dialog is accepted
    page.wait_for_selector("#handover-plan [role=status]")
    page.screenshot(path=str(SHOTS / f"done-{width}.png"), full_page=True)


def test_an_admin_previews_and_confirms_a_handover(web, db, server_keyring):
    source = _setup(db, server_keyring)
    page = web.signed_in("boss")
    _hand_over(page, source, 1280)
    assert "交接完成" in page.inner_text("#handover-plan [role=status]")
    links = page.locator(".handover-moved a")
    assert links.count() == 4
    assert page.inner_text("#handover-forms").count("2") >= 2  # two each
    links.first.click()
    page.wait_for_selector("[data-field=name]")
    # the old owner sees none of them any more; the new owners see theirs
    sales = web.signed_in("xiao.wang")
    sales.goto("/apps/crm/forms/customer")
    assert "客户0" not in sales.inner_text("main")
    colleague = web.signed_in("lao.zhao")
    colleague.goto("/apps/crm/forms/customer")
    assert sum(f"客户{i}" in colleague.inner_text("main") for i in range(4)) == 2
    assert web.reports == []


def test_the_handover_page_on_a_phone(web, db, server_keyring):
    source = _setup(db, server_keyring)
    page = web.signed_in("boss", width=375, height=740)
    _hand_over(page, source, 375)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the handover page is {width} px wide"
    assert web.reports == []
