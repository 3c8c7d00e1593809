"""The notification centre in a real browser: a rule's in-app messages are listed unread
first with their count, marked read one by one or all at once, and fit a phone."""

from __future__ import annotations

from engine_rules.models import Notification
from tests.frontend.conftest import add_user, status


def _notes(db, username: str, *bodies: str) -> None:
    from platform_core.security.models import User

    with db.write() as s:
        user_id = s.query(User.id).filter(User.username == username).scalar()
        for body in bodies:
            s.add(Notification(user_id=user_id, app="crm", title="进度通知", body=body))


def test_notifications_are_read_one_by_one_or_all_at_once(web, db):
    add_user(db, "xiao.li", roles=("viewer",))
    add_user(db, "other", roles=("viewer",))
    _notes(db, "xiao.li", "张三的贷款已进入「风控审核」", "李四的贷款已放款")
    _notes(db, "other", "别人的通知")
    page = web.signed_in("xiao.li")
    page.click('nav.nav >> text="通知"')
    assert "未读 2" in page.inner_text("#unread")
    assert "别人的通知" not in page.content()
    first = page.locator("#notifications li.unread").first
    first.locator("button", has_text="标为已读").click()
    assert "未读 1" in page.inner_text("#unread")
    page.click('text="全部已读"')
    assert "已全部标为已读" in status(page)
    assert "未读 0" in page.inner_text("#unread")
    assert page.locator("#notifications li.unread").count() == 0
    assert page.locator("#notifications li").count() == 2

    phone = web.signed_in("other", width=375, height=740)
    phone.goto("/notifications")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
