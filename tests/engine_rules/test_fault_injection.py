"""Fault injection: real ``qiao worker`` processes over pending events whose rule writes
an in-app notification and creates a record.

- SQLite (a file database made by ``qiao init``): the worker is killed with SIGKILL in
  the middle of dispatching 1,000 events and started again (``worker --once``); every
  action ran exactly once — 1,000 notifications, 1,000 created records, no trigger twice.
- PostgreSQL only: two workers dispatch 5,000 events at the same time; no event is
  handled twice (one run and one notification per event, unique action keys) and none
  is missed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import distinct, func, select

from engine_rules.models import ActionRun, Notification, RuleRun
from platform_core.app import create_app
from platform_core.db import Database
from platform_core.models import OutboxEvent, Record
from platform_core.settings import load_settings
from tests.conftest import PG_URL
from tests.engine_flows.flows_setup import APP, build_world, ok
from tests.security_setup import client_as

ROOT = Path(__file__).resolve().parents[2]
AUDIT_FORM = {"key": "audit", "name": "受理记录", "fields": [
    {"key": "ref", "label": "案件", "type": "text"},
    {"key": "case_id", "label": "案件号", "type": "number"}]}
NOTIFY = {"type": "notify", "channel": "in_app", "to": {"users": ["boss"]},
          "title": "新案件", "template": "{{ record.title }}"}
CREATE = {"type": "create_record", "form": "audit",
          "values": {"ref": "title", "case_id": "amount"}}
RULE = {"key": "accept", "name": "受理", "trigger": {"type": "record.created", "form": "case"},
        "actions": [NOTIFY, CREATE]}


def _env(data_dir: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIAO_")}
    return env | {"QIAO_DATA_DIR": str(data_dir), "QIAO_DATABASE_URL": url,
                  "QIAO_LOG_LEVEL": "warning", "QIAO_ADMIN_PASSWORD": "Init-Passw0rd!x",
                  "PYTHONPATH": str(ROOT)}


def _qiao(env: dict[str, str], *args: str, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "platform_core", *args], cwd=ROOT, env=env,
                            stdout=out, stderr=subprocess.STDOUT)


def _prepare(app: Any, db: Database, events: int, rule: dict[str, Any] = RULE) -> int:
    """App ``bank``, the ``audit`` form, the rule and ``events`` new cases (their
    ``record.created`` events pending); the user the rule notifies."""
    with client_as(app, db, "boss") as boss:
        build_world(app, db, boss)
        ok(boss.post(f"{APP}/forms", json=AUDIT_FORM), 201)
        ok(boss.post(f"{APP}/forms/audit/publish"))
        ok(boss.post(f"{APP}/rules", json=rule), 201)
        for start in range(0, events, 1000):
            batch = [{"title": f"案件{i}", "amount": str(i)}
                     for i in range(start, min(start + 1000, events))]
            ok(boss.post(f"{APP}/forms/case/records/bulk", json={"records": batch}), 201)
        return boss.user_id


def _processed(db: Database) -> int:
    with db.read() as s:
        return s.execute(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.form == "case", OutboxEvent.processed_at.is_not(None))).scalar_one()


def _pending(db: Database) -> int:
    with db.read() as s:
        return s.execute(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.processed_at.is_(None))).scalar_one()


def _assert_each_action_once(db: Database, events: int, user_id: int,
                             actions: int = 2) -> None:
    with db.read() as s:
        count = lambda stmt: s.execute(stmt).scalar_one()  # noqa: E731
        assert count(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.processed_at.is_(None))) == 0
        # one notification per case, to the rule's user; nothing twice
        assert count(select(func.count()).select_from(Notification)) == events
        assert count(select(func.count(distinct(Notification.record_id)))) == events
        assert count(select(func.count()).select_from(Notification).where(
            Notification.user_id != user_id)) == 0
        # one created record per case
        refs = [r for (r,) in s.execute(select(Record.data).where(Record.form == "audit"))]
        assert len(refs) == (events if actions == 2 else 0)
        assert len({r["ref"] for r in refs}) == len(refs)
        # one run per trigger; every action key once
        assert count(select(func.count()).select_from(RuleRun)) == events
        assert count(select(func.count(distinct(RuleRun.trigger_key)))) == events
        assert count(select(func.count()).select_from(RuleRun).where(
            RuleRun.status != "done")) == 0
        assert count(select(func.count()).select_from(ActionRun)) == actions * events
        assert count(select(func.count(distinct(ActionRun.key)))) == actions * events
        assert count(select(func.count()).select_from(ActionRun).where(
            ActionRun.status != "done")) == 0


def _wait(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def test_a_worker_killed_mid_dispatch_loses_and_repeats_nothing(tmp_path):
    events = 1000
    data = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'qiao.db'}"
    env = _env(data, url)
    log = tmp_path / "worker.log"
    assert _wait(_qiao(env, "init", log=log), 120) == 0, log.read_text()
    db = Database.from_url(url)
    try:
        app = create_app(load_settings(data_dir=data, database_url=url,
                                       api_rate_per_minute=10**9), db=db)
        user_id = _prepare(app, db, events)
        assert _pending(db) == events

        worker = _qiao(env, "worker", log=log)
        try:
            deadline = time.monotonic() + 90
            while (done := _processed(db)) < 150:
                assert worker.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the worker did not start dispatching"
                time.sleep(0.005)
            worker.send_signal(signal.SIGKILL)
            assert worker.wait(10) == -signal.SIGKILL
        finally:
            if worker.poll() is None:
                worker.kill()
        at_kill = _processed(db)
        assert done <= at_kill < events, "killed too late: nothing was left to dispatch"

        assert _wait(_qiao(env, "worker", "--once", log=log), 120) == 0, log.read_text()
        _assert_each_action_once(db, events, user_id)
    finally:
        db.dispose()


@pytest.mark.skipif(not PG_URL, reason="two concurrent workers need PostgreSQL "
                                       "(QIAO_TEST_DATABASE_URL)")
def test_two_workers_on_postgresql_handle_each_event_once(db, database_url, tmp_path):
    events = 5000
    data = tmp_path / "data"
    app = create_app(load_settings(data_dir=data, api_rate_per_minute=10**9), db=db)
    # the notification only: 5,000 events (no second wave of created records) in time
    user_id = _prepare(app, db, events, RULE | {"actions": [NOTIFY]})
    env = _env(data, database_url)
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = [_qiao(env, "worker", log=log) for log in logs]
    try:
        deadline = time.monotonic() + 240  # a loaded machine
        while _pending(db):
            for w, log in zip(workers, logs, strict=True):
                assert w.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{_pending(db)} events still pending"
            time.sleep(0.2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            _wait(w, 30)
    _assert_each_action_once(db, events, user_id, actions=1)
    with db.read() as s:
        by_worker = dict(s.execute(select(OutboxEvent.claimed_by, func.count())
                                   .group_by(OutboxEvent.claimed_by)).all())
    assert len(by_worker) == 2, by_worker  # both took part
