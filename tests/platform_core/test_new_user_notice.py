"""The notice of a new user (its one-time password and where to sign in) links to where
this Qiao is served: ``QIAO_BASE_URL`` when set, else this server's own port — never a
port 8000 it does not listen on."""

from __future__ import annotations

import pytest

from platform_core.app import create_app
from platform_core.settings import load_settings
from tests.security_setup import client_as


@pytest.mark.parametrize(("settings", "url"), [
    ({"port": 9123}, "http://127.0.0.1:9123/login"),
    ({"host": "0.0.0.0", "port": 8443}, "http://127.0.0.1:8443/login"),
    ({"port": 9123, "base_url": "https://crm.bank.example/"},
     "https://crm.bank.example/login"),
])
def test_the_new_user_notice_links_to_the_served_address(db, tmp_path, settings, url):
    app = create_app(load_settings(data_dir=tmp_path, **settings), db=db)
    with client_as(app, db, "admin") as admin:
        answer = admin.post("/api/v1/users", json={"username": "zhang", "display_name": "张"})
        assert answer.status_code == 201, answer.text
        assert answer.json()["sign_in_url"] == url
        again = admin.post(f"/api/v1/users/{answer.json()['id']}/reset-password")
        assert again.status_code == 200, again.text
        assert again.json()["sign_in_url"] == url


def test_qiao_port_from_the_environment_moves_the_links(monkeypatch):
    monkeypatch.setenv("QIAO_PORT", "8765")
    monkeypatch.delenv("QIAO_BASE_URL", raising=False)
    assert load_settings().base_url == "http://127.0.0.1:8765"
