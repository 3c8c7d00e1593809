"""Webhooks end to end: a real HTTP receiver on loopback (allow-listed here) gets each event
once, signed; failures are retried with backoff, then dead-lettered, then replayed; SSRF
destinations are refused; a lease keeps two senders from sending twice; the API needs
``app:manage``. Time is driven with ``now=`` (the background loop is off)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from platform_core.app import create_app
from platform_core.models import utcnow
from platform_core.outbox import Dispatcher
from platform_core.security.models import AuditEntry
from platform_core.settings import SettingsError, load_settings
from platform_core.store import (
    SYSTEM,
    create_record,
    delete_record,
    migrate_record,
    restore_record,
    update_record,
)
from platform_core.webhooks import ssrf
from platform_core.webhooks.background import http_client, run_background
from platform_core.webhooks.events import WebhookFanOut
from platform_core.webhooks.models import WebhookDelivery, WebhookSubscription
from platform_core.webhooks.sender import deliver_due, retry_delay
from platform_core.webhooks.ssrf import AllowList, check_url
from tests.security_setup import client_as

HOOKS = "/api/v1/apps/crm/webhooks"
PUBLIC_IP = "93.184.215.14"  # a public address: no DNS needed to subscribe to it


# -- a real receiver ----------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers from ``plan``
    (status codes, in turn; 200 once it runs out)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.plan: list[int] = []
        self.on_request: Callable[[], None] | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append({"headers": dict(self.headers), "body": body,
                                       "path": self.path})
                if outer.on_request is not None:
                    outer.on_request()
                status = outer.plan.pop(0) if outer.plan else 200
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                reply = b"receiver is down" if status >= 500 else b"ok"
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def settings(tmp_path):
    return load_settings(data_dir=tmp_path / "data", encryption_keys="", background_jobs=False,
                         webhook_allow_hosts="127.0.0.1")


@pytest.fixture
def app(settings, db):
    return create_app(settings, db=db)


@pytest.fixture
def admin(app, db) -> TestClient:
    return client_as(app, db, "admin")


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with http_client() as client:
        yield client


def tick(app, http: httpx.Client, now=None) -> int:
    """One background tick: dispatch the outbox, send what is due."""
    dispatcher = Dispatcher(app.state.qiao.db, [WebhookFanOut()], worker_id="tests")
    return run_background(app.state.qiao, dispatcher=dispatcher, client=http, now=now)


def subscribe(admin: TestClient, url: str, types: list[str] | None = None,
              **extra: Any) -> dict[str, Any]:
    r = admin.post(HOOKS, json={"name": "ERP", "url": url,
                                "event_types": types or ["*"], **extra})
    assert r.status_code == 201, r.text
    return r.json()


def new_record(db, app: str = "crm", **data: Any) -> int:
    with db.write() as s:
        return create_record(s, app=app, form="customer", data=data or {"name": "张三"},
                             actor=SYSTEM).id


def deliveries(admin: TestClient, hook_id: int, **params: Any) -> list[dict[str, Any]]:
    r = admin.get(f"{HOOKS}/{hook_id}/deliveries", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def verify_signature(secret: str, request: dict[str, Any]) -> bool:
    """The recipe of docs/webhooks.md, as a receiver would write it."""
    timestamp = request["headers"]["X-Qiao-Timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." +
                                    request["body"], hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) <= 300
    return fresh and hmac.compare_digest(expected, request["headers"]["X-Qiao-Signature"])


# -- delivery -----------------------------------------------------------------------------


def test_each_event_arrives_once_signed_with_its_headers(admin, app, db, receiver, http):
    hook = subscribe(admin, receiver.url, ["record.created", "record.updated",
                                           "record.deleted"])
    rid = new_record(db)
    with db.write() as s:
        update_record(s, rid, changes={"name": "李四"}, expected_version=1, actor=SYSTEM)
        delete_record(s, rid, actor=SYSTEM)
        restore_record(s, rid, actor=SYSTEM)  # not subscribed
    new_record(db, app="other")  # another app's event
    assert tick(app, http) == 5 + 3  # five events dispatched, three deliveries sent
    assert tick(app, http) == 0 and tick(app, http, utcnow() + timedelta(days=3)) == 0

    assert [b["type"] for b in receiver.bodies()] == ["record.created", "record.updated",
                                                       "record.deleted"]
    log = deliveries(admin, hook["id"])
    for request, body in zip(receiver.requests, receiver.bodies(), strict=True):
        headers = request["headers"]
        assert verify_signature(hook["secret"], request)
        assert not verify_signature(hook["secret"] + "x", request)
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Qiao-Event"] == body["type"]
        assert headers["X-Qiao-Delivery"] in {str(d["id"]) for d in log}
        assert body["app"] == "crm" and body["form"] == "customer"
        assert body["record_id"] == rid == body["data"]["record_id"]
        assert body["id"] == f"evt_{next(d['event_id'] for d in log if str(d['id']) == headers['X-Qiao-Delivery'])}"  # noqa: E501
        assert body["occurred_at"].endswith("Z")
    assert receiver.bodies()[1]["data"]["changes"] == {"name": ["张三", "李四"]}
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [
        ("delivered", 1, 200)] * 3


def test_a_receiver_failing_three_times_gets_the_event_exactly_once_more(
        admin, app, db, receiver, http):
    hook = subscribe(admin, receiver.url)
    new_record(db)
    receiver.plan = [500, 500, 500]
    t0 = utcnow()
    tick(app, http, t0)
    (entry,) = deliveries(admin, hook["id"])
    assert (entry["status"], entry["attempts"], entry["last_status_code"]) == ("pending", 1,
                                                                               500)
    assert entry["last_error"] == "HTTP 500: receiver is down"
    # the backoff: 10 s, then 1 min, then 6 min; nothing is sent before it is due
    for offset, expected in [(9, 1), (10, 2), (69, 2), (70, 3), (429, 3), (430, 4),
                             (86400 * 3, 4)]:
        tick(app, http, t0 + timedelta(seconds=offset))
        assert len(receiver.requests) == expected, offset
    (entry,) = deliveries(admin, hook["id"])
    assert (entry["status"], entry["attempts"], entry["last_status_code"]) == ("delivered",
                                                                               4, 200)
    assert entry["last_error"] is None and entry["next_attempt_at"] is None
    assert len({r["body"] for r in receiver.requests}) == 1  # the same body each time


def test_a_permanently_failing_receiver_ends_dead_and_a_replay_sends_it_again(
        admin, app, db, receiver, http):
    hook = subscribe(admin, receiver.url)
    new_record(db)
    receiver.plan = [503] * 8
    now = utcnow()
    for day in range(10):
        tick(app, http, now + timedelta(days=day))
    assert len(receiver.requests) == 8  # QIAO_WEBHOOK_MAX_ATTEMPTS, then no more
    (dead,) = deliveries(admin, hook["id"], status="dead")
    assert (dead["attempts"], dead["last_status_code"]) == (8, 503)
    assert deliveries(admin, hook["id"], status="pending") == []

    r = admin.post(f"{HOOKS}/{hook['id']}/deliveries/{dead['id']}/replay")
    assert r.status_code == 202, r.text
    replay = r.json()
    assert (replay["status"], replay["replay_of"], replay["attempts"]) == ("pending",
                                                                           dead["id"], 0)
    tick(app, http)
    assert len(receiver.requests) == 9
    assert receiver.bodies()[-1] == receiver.bodies()[0]  # same event id: receivers dedupe
    assert receiver.requests[-1]["headers"]["X-Qiao-Delivery"] == str(replay["id"])
    assert [d["status"] for d in deliveries(admin, hook["id"])] == ["delivered", "dead"]
    with db.read() as s:
        assert s.execute(select(AuditEntry.detail).where(
            AuditEntry.action == "webhook.replay")).scalar_one() == {
                "app": "crm", "delivery_id": dead["id"], "replay_id": replay["id"]}
    # a pending delivery has nothing to replay; another webhook's delivery is not found
    pending = admin.post(f"{HOOKS}/{hook['id']}/test").json()
    assert admin.post(f"{HOOKS}/{hook['id']}/deliveries/{pending['id']}/replay"
                      ).status_code == 409
    other = subscribe(admin, receiver.url)
    assert admin.post(f"{HOOKS}/{other['id']}/deliveries/{dead['id']}/replay"
                      ).status_code == 404


def test_a_lease_keeps_a_second_sender_from_sending_it_again(admin, app, db, receiver, http):
    subscribe(admin, receiver.url)
    new_record(db)
    Dispatcher(db, [WebhookFanOut()]).run_once()
    ctx = app.state.qiao
    second: list[int] = []

    def while_the_first_sends() -> None:
        if not second:  # the other worker runs while the first one's request is open
            second.append(deliver_due(ctx.db, ctx.keyring, ctx.settings, client=http,
                                      worker_id="B"))

    receiver.on_request = while_the_first_sends
    assert deliver_due(ctx.db, ctx.keyring, ctx.settings, client=http, worker_id="A") == 1
    assert second == [0] and len(receiver.requests) == 1
    assert deliver_due(ctx.db, ctx.keyring, ctx.settings, client=http, worker_id="B",
                       now=utcnow() + timedelta(hours=1)) == 0  # delivered: never again


def test_sealed_values_never_leave(admin, app, db, receiver, http):
    hook = subscribe(admin, receiver.url, ["record.updated"])
    keyring = app.state.qiao.keyring
    context = "crm.customer.id_number"
    rid = new_record(db, name="王五", id_number=keyring.seal("110101199001011234",
                                                            context=context))
    with db.write() as s:
        update_record(s, rid, changes={"id_number": keyring.seal("110101199001015678",
                                                                 context=context),
                                       "name": "王六"}, expected_version=1, actor=SYSTEM)
    tick(app, http)
    (request,) = receiver.requests
    assert b"$enc" not in request["body"] and b"1101011990" not in request["body"]
    assert json.loads(request["body"])["data"]["changes"] == {"id_number": [None, None],
                                                              "name": ["王五", "王六"]}
    assert "$enc" not in json.dumps(deliveries(admin, hook["id"]))


def test_star_means_every_domain_event_and_a_paused_webhook_gets_none(
        admin, app, db, receiver, http):
    hook = subscribe(admin, receiver.url, ["*"])
    rid = new_record(db)
    with db.write() as s:
        migrate_record(s, rid, data={"name": "张三", "v2": True}, schema_version=2,
                       actor=SYSTEM)  # an internal event: not sent
        delete_record(s, rid, actor=SYSTEM)
        restore_record(s, rid, actor=SYSTEM)
    tick(app, http)
    assert [b["type"] for b in receiver.bodies()] == ["record.created", "record.deleted",
                                                       "record.restored"]
    r = admin.patch(f"{HOOKS}/{hook['id']}", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    new_record(db)
    tick(app, http)
    assert len(receiver.requests) == 3
    assert admin.post(f"{HOOKS}/{hook['id']}/test").status_code == 409


def test_ping_is_signed_with_the_callers_secret_and_a_new_secret_applies(
        admin, app, receiver, http, db):
    mine = "my-own-secret-0123456789"
    hook = subscribe(admin, receiver.url, ["record.created"], secret=mine)
    assert hook["secret"] == mine
    r = admin.post(f"{HOOKS}/{hook['id']}/test")
    assert r.status_code == 202 and r.json()["event_type"] == "ping"
    tick(app, http)
    (request,) = receiver.requests
    assert verify_signature(mine, request)
    assert json.loads(request["body"])["data"] == {"subscription_id": hook["id"],
                                                   "name": "ERP"}
    changed = admin.patch(f"{HOOKS}/{hook['id']}", json={"secret": "a-new-secret-987654321"})
    assert changed.status_code == 200 and "secret" not in changed.json()
    admin.post(f"{HOOKS}/{hook['id']}/test")
    tick(app, http)
    assert verify_signature("a-new-secret-987654321", receiver.requests[-1])
    assert not verify_signature(mine, receiver.requests[-1])


def test_the_secret_is_shown_once_and_stored_sealed(admin, db, receiver):
    hook = subscribe(admin, receiver.url)
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) > 40
    assert "secret" not in admin.get(f"{HOOKS}/{hook['id']}").json()
    assert all("secret" not in h for h in admin.get(HOOKS).json()["items"])
    with db.read() as s:
        stored = s.get(WebhookSubscription, hook["id"]).secret
    assert hook["secret"] not in stored and "$enc" in json.loads(stored)


def test_redirects_are_not_followed_and_network_errors_are_retried(admin, app, db, http,
                                                                   receiver):
    receiver.plan = [302]
    hook = subscribe(admin, receiver.url, ["record.created"])
    closed = Receiver()
    closed.close()  # nothing listens on its port any more
    down = subscribe(admin, closed.url, ["record.created"])
    new_record(db)
    tick(app, http)
    assert len(receiver.requests) == 1
    (moved,) = deliveries(admin, hook["id"])
    assert moved["last_status_code"] == 302 and "not followed" in moved["last_error"]
    (refused,) = deliveries(admin, down["id"])
    assert refused["last_status_code"] is None and "ConnectError" in refused["last_error"]
    assert refused["status"] == "pending" and refused["attempts"] == 1


def test_the_delivery_log_pages_newest_first(admin, app, db, receiver, http):
    hook = subscribe(admin, receiver.url, ["record.created"])
    for _ in range(5):
        new_record(db)
    tick(app, http)
    page = admin.get(f"{HOOKS}/{hook['id']}/deliveries", params={"limit": 2}).json()
    ids = [d["id"] for d in page["items"]]
    assert ids == sorted(ids, reverse=True) and page["next_before"] == ids[-1]
    rest = deliveries(admin, hook["id"], before=page["next_before"])
    assert len(rest) == 3 and max(d["id"] for d in rest) < ids[-1]
    assert deliveries(admin, hook["id"], status="delivered", limit=500)[0]["body"]["type"] == \
        "record.created"
    assert admin.get(f"{HOOKS}/{hook['id']}/deliveries",
                     params={"status": "lost"}).status_code == 422


# -- subscriptions ------------------------------------------------------------------------


def test_subscriptions_are_listed_changed_deleted_and_audited(admin, db, receiver):
    hook = subscribe(admin, receiver.url, ["record.created", "record.created", "ping"])
    assert hook["event_types"] == ["record.created", "ping"]  # duplicates dropped
    assert [h["id"] for h in admin.get(HOOKS).json()["items"]] == [hook["id"]]
    assert admin.get("/api/v1/apps/other/webhooks").json()["items"] == []
    assert admin.get(f"/api/v1/apps/other/webhooks/{hook['id']}").status_code == 404
    r = admin.patch(f"{HOOKS}/{hook['id']}", json={"name": "CRM sync",
                                                   "event_types": ["task.completed"]})
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["event_types"]) == ("CRM sync", ["task.completed"])
    with db.write() as s:
        s.add(WebhookDelivery(subscription_id=hook["id"], event_type="ping", body={}))
    assert admin.delete(f"{HOOKS}/{hook['id']}").status_code == 204
    assert admin.get(f"{HOOKS}/{hook['id']}").status_code == 404
    with db.read() as s:
        assert s.execute(select(WebhookDelivery)).first() is None  # the log went with it
        audit = s.execute(select(AuditEntry.action, AuditEntry.target, AuditEntry.detail)
                          .where(AuditEntry.action.startswith("webhook."))
                          .order_by(AuditEntry.id)).all()
    assert [(a, t) for a, t, _ in audit] == [(f"webhook.{x}", f"webhook:{hook['id']}")
                                             for x in ("create", "update", "delete")]
    assert audit[0][2] == {"app": "crm", "name": "ERP", "host": "127.0.0.1",
                           "event_types": ["record.created", "ping"], "active": True}
    assert "secret" not in json.dumps(audit[0][2])


@pytest.mark.parametrize("body", [
    {"event_types": ["record.exploded"]},
    {"event_types": []},
    {"secret": "short"},
    {"colour": "red"},
    {"url": "ftp://127.0.0.1/hook"},
    {"url": "not a url"},
    {"url": "http://user:pw@127.0.0.1/hook"},
])
def test_bad_subscriptions_are_refused(admin, receiver, body):
    r = admin.post(HOOKS, json={"name": "ERP", "url": receiver.url,
                                "event_types": ["*"]} | body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_every_route_needs_app_manage(app, db, admin, receiver):
    hook = subscribe(admin, receiver.url)
    staff = client_as(app, db, "staff", roles=("staff",))
    base = f"{HOOKS}/{hook['id']}"
    for method, url in [("GET", HOOKS), ("POST", HOOKS), ("GET", base), ("PATCH", base),
                        ("DELETE", base), ("GET", f"{base}/deliveries"),
                        ("POST", f"{base}/deliveries/1/replay"), ("POST", f"{base}/test")]:
        assert staff.request(method, url, json={}).status_code == 403, (method, url)
    anonymous = TestClient(app, raise_server_exceptions=False)
    assert anonymous.get(f"{base}/deliveries").status_code == 401


# -- SSRF ---------------------------------------------------------------------------------


@pytest.fixture
def strict_admin(tmp_path, db) -> TestClient:
    """An admin of an app without any allow-list (the default)."""
    settings = load_settings(data_dir=tmp_path / "strict", encryption_keys="",
                             background_jobs=False)
    return client_as(create_app(settings, db=db), db, "admin2")


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://10.0.0.1/", "private"),
    ("http://localhost/", "loopback"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://[::1]/hook", "loopback"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://0.0.0.0/", "unspecified"),
    ("https://100.64.0.1/", "non-public"),
    ("https://224.0.0.1/", "multicast"),
])
def test_private_destinations_are_refused_without_the_allow_list(strict_admin, url, reason):
    r = strict_admin.post(HOOKS, json={"name": "x", "url": url, "event_types": ["*"]})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "unsafe_webhook_url" and problem["reason"] == reason
    assert "QIAO_WEBHOOK_ALLOW_HOSTS" in problem["detail"] and reason in problem["detail"]


def test_public_https_is_accepted_and_plain_http_only_when_allow_listed(strict_admin):
    ok = strict_admin.post(HOOKS, json={"name": "x", "url": f"https://{PUBLIC_IP}/hook",
                                        "event_types": ["*"]})
    assert ok.status_code == 201, ok.text
    r = strict_admin.post(HOOKS, json={"name": "x", "url": f"http://{PUBLIC_IP}/hook",
                                       "event_types": ["*"]})
    assert r.status_code == 422 and r.json()["reason"] == "insecure_scheme"
    r = strict_admin.patch(f"{HOOKS}/{ok.json()['id']}", json={"url": "https://10.1.2.3/"})
    assert r.status_code == 422 and r.json()["reason"] == "private"


def test_a_name_resolving_to_a_private_address_is_refused(strict_admin, monkeypatch):
    monkeypatch.setattr(ssrf, "resolve", lambda _h, _p: [ipaddress.ip_address("8.8.8.8"),
                                                         ipaddress.ip_address("10.0.0.7")])
    r = strict_admin.post(HOOKS, json={"name": "x", "url": "https://hooks.example/",
                                       "event_types": ["*"]})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("webhook URL refused: hooks.example resolves to "
                                         "10.0.0.7, which is a private address")


def test_dns_rebinding_is_refused_at_send_time(strict_admin, db, monkeypatch):
    monkeypatch.setattr(ssrf, "resolve", lambda _h, _p: [ipaddress.ip_address(PUBLIC_IP)])
    hook = strict_admin.post(HOOKS, json={"name": "x", "url": "https://hooks.example/in",
                                          "event_types": ["*"]}).json()
    new_record(db)
    monkeypatch.setattr(ssrf, "resolve", lambda _h, _p: [ipaddress.ip_address("127.0.0.1")])
    sent: list[httpx.Request] = []
    client = httpx.Client(transport=httpx.MockTransport(
        lambda request: sent.append(request) or httpx.Response(200)))
    ctx = strict_admin.app.state.qiao
    Dispatcher(db, [WebhookFanOut()]).run_once()
    assert deliver_due(ctx.db, ctx.keyring, ctx.settings, client=client) == 1
    assert sent == []
    (entry,) = deliveries(strict_admin, hook["id"])
    assert entry["status"] == "pending" and entry["attempts"] == 1
    assert entry["last_error"].startswith("not sent: webhook URL refused: hooks.example "
                                          "resolves to 127.0.0.1, which is a loopback")


def test_the_request_goes_to_the_checked_address_with_the_name_kept(
        tmp_path, db, receiver, http, monkeypatch):
    """Pinning: the connection goes to the address that passed the check; Host keeps the
    name (a second lookup by the HTTP client could have answered differently)."""
    settings = load_settings(data_dir=tmp_path / "pin", encryption_keys="",
                             background_jobs=False, webhook_allow_hosts="127.0.0.0/8")
    app = create_app(settings, db=db)
    admin = client_as(app, db, "admin3")
    monkeypatch.setattr(ssrf, "resolve", lambda _h, _p: [ipaddress.ip_address("127.0.0.1")])
    subscribe(admin, f"http://receiver.test:{receiver.port}/hook", ["record.created"])
    new_record(db)
    tick(app, http)
    (request,) = receiver.requests
    assert request["headers"]["Host"] == f"receiver.test:{receiver.port}"
    assert request["headers"]["Connection"] == "close"  # never reused for another name
    assert request["path"] == "/hook"


def test_allow_list_parsing_and_checks():
    allow = AllowList.parse(" hooks.internal., 127.0.0.1 , 10.1.0.0/16, [::1] ")
    assert allow.hosts == {"hooks.internal"}
    assert [str(n) for n in allow.networks] == ["127.0.0.1/32", "10.1.0.0/16", "::1/128"]
    assert check_url("http://hooks.internal/x", allow).allow_listed
    assert check_url("http://10.1.200.3/x", allow).allow_listed
    with pytest.raises(ssrf.UnsafeDestination):
        check_url("https://10.2.0.1/x", allow)
    with pytest.raises(ssrf.UnsafeDestination, match="does not resolve"):
        check_url(f"https://{'a' * 70}.example/", allow)  # no crash on a bad name
    with pytest.raises(ValueError, match="'bad host!'"):
        AllowList.parse("ok.example, bad host!")
    with pytest.raises(SettingsError, match="QIAO_WEBHOOK_ALLOW_HOSTS"):
        load_settings(webhook_allow_hosts="10.0.0.0/33x")


@pytest.mark.parametrize(("attempt", "seconds"), [(1, 10), (2, 60), (3, 360), (4, 2160),
                                                  (5, 12960), (6, 77760), (7, 86400)])
def test_the_retry_schedule(attempt, seconds):
    assert retry_delay(attempt, 10) == timedelta(seconds=seconds)


# -- the background loop ------------------------------------------------------------------


def test_the_app_runs_the_loop_in_the_background(tmp_path, db, receiver):
    settings = load_settings(data_dir=tmp_path / "bg", encryption_keys="",
                             webhook_allow_hosts="127.0.0.1", background_jobs=True)
    app = create_app(settings, db=db)
    admin = client_as(app, db, "admin4")
    subscribe(admin, receiver.url, ["record.created"])
    with TestClient(app):
        new_record(db)
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [b["type"] for b in receiver.bodies()] == ["record.created"]


def test_qiao_worker_delivers_without_a_web_server(settings, admin, db, receiver,
                                                   database_url):
    """``qiao worker --once`` (beside web processes with background jobs off) does the
    outbox and webhook work that is due, then exits."""
    import os
    import subprocess
    import sys

    hook = subscribe(admin, receiver.url, ["record.created"])
    record_id = new_record(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIAO_")}
    env |= {"QIAO_DATA_DIR": str(settings.data_dir), "QIAO_DATABASE_URL": database_url,
            "QIAO_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}
    done = subprocess.run([sys.executable, "-m", "platform_core", "worker", "--once"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "background work done" in done.stdout
    assert [(b["type"], b["record_id"]) for b in receiver.bodies()] == [
        ("record.created", record_id)]
    assert [d["status"] for d in deliveries(admin, hook["id"])] == ["delivered"]
