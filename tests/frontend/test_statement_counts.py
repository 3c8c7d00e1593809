"""How many SQL statements the everyday pages cost, counted with SQLAlchemy's events, so
the gains of issue 23 stay: a salesperson's customer list page takes at most 4 (their
session and user, their roles, the forms' versions, the page of records)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from platform_core.app import create_app
from platform_core.security.auth import SESSION_COOKIE, start_session
from platform_core.settings import load_settings
from templates_catalog.bundle import template
from templates_catalog.install import install
from tests.frontend.test_workspace import _create
from tests.security_setup import SYSTEM, add_user

LIST_PAGE_MAX = 4


@pytest.fixture
def crm(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    return app


def _page_client(app, db, username: str) -> TestClient:
    user_id = add_user(db, username, roles=("sales",))
    ctx = app.state.qiao
    with db.write() as s:
        cookie, _ = start_session(s, ctx.settings, ctx.secret_key, user_id=user_id,
                                  client="test")
    client = TestClient(app)
    client.cookies.set(SESSION_COOKIE, cookie)
    return client


def _statements(db, client: TestClient, url: str) -> list[str]:
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_):  # noqa: ANN001
        seen.append(re.sub(r"\s+", " ", statement)[:160])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        r = client.get(url)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert r.status_code == 200, r.text[:300]
    return seen


def test_a_salespersons_customer_list_page_takes_at_most_four_statements(db, crm):
    client = _page_client(crm, db, "xiao.wang")
    for i in range(3):
        _create(db, crm.state.qiao.keyring, "xiao.wang", "customer",
                {"name": f"客户{i}", "mobile": f"1380013800{i}"})
    for _ in range(2):  # the first requests fill the per-process caches
        client.get("/apps/crm/forms/customer")
    seen = _statements(db, client, "/apps/crm/forms/customer?sort=-id")
    assert len(seen) <= LIST_PAGE_MAX, "\n".join(seen)
    assert "客户2" in client.get("/apps/crm/forms/customer?sort=-id").text


def test_the_people_to_hand_records_over_to_are_asked_for_by_name(db, crm):
    client = _page_client(crm, db, "xiao.wang")
    add_user(db, "lao.zhao", roles=("sales",))
    _create(db, crm.state.qiao.keyring, "xiao.wang", "customer",
            {"name": "李四", "mobile": "13800138000"})
    page = client.get("/apps/crm/forms/customer").text
    assert 'data-remote="/apps/crm/forms/customer/owners"' in page
    assert "lao.zhao" not in page  # the directory is not shipped with every list page
    found = client.get("/apps/crm/forms/customer/owners", params={"q": "zhao"}).json()
    assert [o["text"] for o in found["items"]] == ["lao.zhao"]
    assert len(client.get("/apps/crm/forms/customer/owners").json()["items"]) == 2
