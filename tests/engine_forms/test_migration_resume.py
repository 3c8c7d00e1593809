"""A form migration interrupted by a dying process continues after its cursor when the app
starts again; nothing is converted twice and no failure is counted twice."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine_forms import forms, publishing, records
from engine_forms.models import FormMigration
from engine_forms.versions import BATCH, claim_migration, resume_migrations, run_migration
from platform_core.app import create_app
from platform_core.models import Record, RecordHistory, utcnow
from platform_core.settings import load_settings
from platform_core.store import Actor
from tests.engine_forms.test_versions import ADMIN, V1, V2
from tests.security_setup import client_as

RECORDS = BATCH + 200


class Crash(Exception):
    """The process died here."""


@pytest.fixture
def many_leads(db):
    """RECORDS leads at version 1 (every 100th scored in words: it cannot become a
    number), and version 2 drafted."""
    with db.write() as s:
        forms.create_app(s, key="crm", name="CRM")
        forms.create_form(s, app="crm", raw=V1)
        publishing.publish(s, app="crm", key="lead", actor=ADMIN)
        pub = forms.published(s, "crm", "lead")
        ids = [records.create(s, pub, {"name": f"客户{i}", "phone_no": f"138{i:08d}",
                                        "score": "优秀" if i % 100 == 0 else str(i % 90)},
                              actor=ADMIN).id for i in range(RECORDS)]
        forms.put_draft(s, app="crm", key="lead", raw=V2)
    return ids


def _dies_in_second_batch():
    calls = []

    def load(*args):
        calls.append(args)
        if len(calls) == 2:  # the first batch committed, the second never will
            raise Crash
        return publishing.migration_chain(*args)

    return load


def test_an_interrupted_migration_resumes_after_its_cursor_when_the_app_starts(
        db, many_leads, tmp_path):
    with db.write() as s:
        job_id = publishing.publish(s, app="crm", key="lead", actor=ADMIN)["migration"]["id"]
    with pytest.raises(Crash):
        run_migration(db, job_id, load=_dies_in_second_batch(), worker="serve:gone:1:1")
    with db.read() as s:
        job = s.get(FormMigration, job_id)
        left = (job.status, job.last_id, job.done, job.failed, job.worker)
    assert left == ("running", many_leads[BATCH - 1], BATCH - 5, 5, "serve:gone:1:1")
    # while the dead runner's lease runs, nobody else takes the job
    assert claim_migration(db, "serve:other:2:2") is None
    with db.write() as s:  # a minute later: the lease ran out
        s.get(FormMigration, job_id).lease_until = utcnow() - timedelta(seconds=1)

    app = create_app(load_settings(data_dir=tmp_path, background_jobs=True), db=db)
    with TestClient(app):  # starting the app starts the background work
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with db.read() as s:
                if s.get(FormMigration, job_id).status == "done":
                    break
            time.sleep(0.2)
        status = client_as(app, db, "boss").get(
            f"/api/v1/apps/crm/forms/lead/migrations/{job_id}").json()
    assert (status["status"], status["done"], status["failed"]) == ("done", RECORDS - 7, 7)
    assert sorted(f["record_id"] for f in status["failures"]) == \
        [many_leads[i] for i in range(0, RECORDS, 100)]  # each once
    with db.read() as s:
        versions = s.execute(select(Record.schema_version)).scalars().all()
        migrated = s.execute(select(RecordHistory.record_id, RecordHistory.actor_id)
                             .where(RecordHistory.action == "migrate")).all()
    assert sorted(versions) == [1] * 7 + [2] * (RECORDS - 7)
    assert len(migrated) == len({r for r, _ in migrated}) == RECORDS - 7  # none twice
    assert {actor for _, actor in migrated} == {ADMIN.user_id}  # as who published


def test_a_queued_migration_whose_process_stopped_is_run_by_the_next_worker(db, many_leads):
    with db.write() as s:  # published, but the process stopped before it began converting
        job_id = publishing.publish(s, app="crm", key="lead",
                                    actor=Actor(user_id=7, name="li"))["migration"]["id"]
    assert resume_migrations(db, "worker:next:3:3", load=publishing.migration_chain) == 1
    with db.read() as s:
        job = s.get(FormMigration, job_id)
        assert (job.status, job.done, job.worker, job.lease_until) == \
            ("done", RECORDS - 7, None, None)
    assert resume_migrations(db, "worker:next:3:3", load=publishing.migration_chain) == 0
