"""Many processes on one PostgreSQL database (issue 23): two ``qiao serve`` web processes
and two ``qiao worker`` processes. 1,000 record events driven through both web
processes reach the rules and the webhook receiver once each — none lost, none doubled,
no 5xx; a session made on one web process works on the other; the sign-in rate limit is
one budget, not one per process; exactly one worker leads the scheduler, and when it is
killed the other takes over. It runs in CI's PostgreSQL pass; under ``CI=true`` that pass
fails, rather than skips, without PostgreSQL (the SQLite pass skips it, like every test that
needs PostgreSQL)."""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select, text

from platform_core.db import Database
from platform_core.leader import LOCK_KEY
from platform_core.models import OutboxEvent, Record
from platform_core.webhooks.events import DOMAIN_EVENTS
from tests.chaos.checks import pending_work
from tests.chaos.cluster import PASSWORD, WEB, WORKER, Cluster
from tests.chaos.receiver import Receiver
from tests.chaos.run import recover, setup
from tests.chaos.workload import CUSTOMERS, Api
from tests.conftest import DATABASE_PASS, PG_URL, scratch_database

CREATES, UPDATES = 500, 500  # 1,000 record events
WORKERS = (WORKER, "worker2")
LOGIN_RATE = 10  # QIAO_LOGIN_RATE_PER_MINUTE's default

if not PG_URL and DATABASE_PASS and os.environ.get("CI") == "true":
    pytest.fail("the cluster test needs PostgreSQL in CI (QIAO_TEST_DATABASE_URL)",
                pytrace=False)
pytestmark = pytest.mark.skipif(not PG_URL, reason="runs Qiao as in production: on "
                                                   "PostgreSQL (QIAO_TEST_DATABASE_URL)")


@pytest.fixture
def cluster(tmp_path):
    with scratch_database(PG_URL, f"cluster_{os.getpid()}") as url:
        c = Cluster(tmp_path, url)
        token = c.prepare()
        for name in (*WEB, *WORKERS):
            c.start(name)
        try:
            for name in (*WEB, *WORKERS):
                c.wait_ready(name)
            c.token = token  # type: ignore[attr-defined]
            yield c
        finally:
            c.stop()


def leader(db: Database) -> list[str]:
    """The application names of the processes holding the scheduler's advisory lock."""
    with db.read() as s:
        return list(s.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = :k"),
            {"k": LOCK_KEY}).scalars())


def wait_for(what, timeout: float = 60.0):  # noqa: ANN001, ANN201
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        found = what()
        if found:
            return found
        time.sleep(0.5)
    return what()


def test_two_web_two_workers_share_one_database(cluster):
    db = Database.from_url(cluster.database_url)
    receiver = Receiver().start()
    ports = [cluster.ports[name] for name in WEB]
    api = Api(ports, cluster.token)
    try:
        setup(api, receiver)
        with db.read() as s:
            watermark = s.execute(select(func.coalesce(func.max(OutboxEvent.id), 0))
                                  ).scalar_one()

        def create(n: int) -> int:
            out = api.call("POST", CUSTOMERS, key=f"c-{n}", json={
                "name": f"客户{n}", "mobile": f"13{n:09d}", "city": f"S{n}"})
            assert out.ok, f"create {n}: {out.status}"
            return out.json()["id"]

        def update(pair: tuple[int, int]) -> None:
            n, record_id = pair
            for _ in range(20):  # a rule may touch it meanwhile: read again, then write
                got = api.call("GET", f"{CUSTOMERS}/{record_id}")
                out = api.call("PATCH", f"{CUSTOMERS}/{record_id}", json={"city": f"M{n}"},
                               headers={"If-Match": got.response.headers["etag"]})
                if out.ok:
                    return
                assert out.status == 412 or out.status == 409, f"update {n}: {out.status}"
            raise AssertionError(f"update {n} kept conflicting")

        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(create, range(CREATES)))
            list(pool.map(update, enumerate(ids[:UPDATES])))
        recover(db, 150, say=lambda _line: None)
        assert not api.errors, api.errors[:5]  # zero 5xx

        with db.read() as s:
            events = Counter(s.execute(select(OutboxEvent.event_type).where(
                OutboxEvent.id > watermark, OutboxEvent.app == "crm",
                OutboxEvent.form == "customer")).scalars())
            effects = Counter(s.execute(select(Record.data["kind"].as_string()).where(
                Record.app == "crm", Record.form == "chaos_effect",
                Record.deleted_at.is_(None))).scalars())
            expected = {f"evt_{i}" for i in s.execute(select(OutboxEvent.id).where(
                OutboxEvent.id > watermark, OutboxEvent.app == "crm",
                OutboxEvent.event_type.in_(DOMAIN_EVENTS))).scalars()}
        assert events["record.created"] == CREATES and events["record.updated"] >= UPDATES
        assert effects == Counter(created=CREATES, moved=UPDATES)  # each rule effect once
        arrived = receiver.counts("/hook", "event_id")
        calls = receiver.counts("/rule", "action")
        assert len(calls) == CREATES and set(calls.values()) == {1}
        assert set(arrived) == expected  # every event delivered: none lost
        deliveries = {(a.event_id, a.delivery) for a in receiver.of("/hook")}
        assert len(deliveries) == len(expected)  # one delivery id per event: none doubled
        assert pending_work(db) == dict.fromkeys(pending_work(db), 0)
    finally:
        receiver.close()
        for client in api.clients:
            client.close()

    # a session made on web1 is honoured by web2
    web1, web2 = (httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=20) for p in ports)
    with web1, web2:
        web1.get("/login")
        csrf = web1.cookies["qiao_login_csrf"]
        signed = web1.post("/login", data={"username": "admin", "password": PASSWORD,
                                           "csrf_token": csrf}, follow_redirects=False)
        assert signed.status_code in (302, 303), signed.text[:300]
        web2.cookies.set("qiao_session", web1.cookies["qiao_session"])
        me = web2.get("/api/v1/me")
        assert me.status_code == 200 and me.json()["username"] == "admin"

        # the sign-in limit is one budget over both processes, not one each
        answers = [(web1, web2)[n % 2].post("/api/v1/auth/token", json={
            "username": f"nobody{n}", "password": "wrong"}).status_code
            for n in range(LOGIN_RATE + 2)]
        assert 429 in answers and answers.index(429) <= LOGIN_RATE, answers

    # exactly one worker leads the scheduler; kill it and the other takes over
    first = wait_for(lambda: leader(db))
    assert len(first) == 1 and first[0] in WORKERS, first
    cluster.kill(first[0])
    after = wait_for(lambda: [n for n in leader(db) if n != first[0]])
    assert after == [n for n in WORKERS if n != first[0]], after
    db.engine.dispose()

