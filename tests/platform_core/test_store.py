"""Store semantics a user relies on, on whichever database the run uses."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, text

from platform_core.errors import Conflict, InvalidInput, NotFound
from platform_core.models import OutboxEvent, Record, RecordHistory
from platform_core.outbox import hold_events, release_events
from platform_core.store import (
    Actor,
    create_record,
    create_records,
    delete_record,
    get_record,
    history,
    links_from,
    links_to,
    restore_record,
    set_links,
    update_record,
)
from tests.statements import statements_of

ALICE = Actor(user_id=7, department_id=3, name="alice")
BOB = Actor(user_id=8, department_id=3, name="bob")


def count(db, model) -> int:
    with db.read() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def events(db) -> list[tuple[str, int]]:
    with db.read() as s:
        rows = s.execute(select(OutboxEvent.event_type, OutboxEvent.record_id)
                         .order_by(OutboxEvent.id)).all()
    return [tuple(r) for r in rows]


def test_create_and_get_keeps_data_owner_and_versions(db):
    with db.write() as s:
        rec = create_record(s, app="crm", form="customer",
                            data={"name": "张三", "amount": "1200000.00", "tags": ["vip"]},
                            actor=ALICE)
    with db.read() as s:
        got = get_record(s, rec.id)
    assert got.data == {"name": "张三", "amount": "1200000.00", "tags": ["vip"]}
    assert (got.row_version, got.owner_id, got.department_id, got.created_by) == (1, 7, 3, 7)
    assert got.deleted_at is None and got.created_at is not None
    assert events(db) == [("record.created", rec.id)]


def test_get_missing_record_is_not_found(db):
    with db.read() as s, pytest.raises(NotFound, match="record 999 does not exist"):
        get_record(s, 999)


def test_update_merges_bumps_version_and_writes_one_diff(db):
    with db.write() as s:
        rec = create_record(s, app="crm", form="customer",
                            data={"name": "张三", "city": "北京"}, actor=ALICE)
    with db.write() as s:
        new = update_record(s, rec.id, changes={"city": "上海", "phone": "13800001234"},
                            expected_version=1, actor=BOB)
    assert new.data == {"name": "张三", "city": "上海", "phone": "13800001234"}
    assert (new.row_version, new.updated_by) == (2, 8)
    with db.read() as s:
        (h,) = history(s, rec.id)
    assert h.diff == {"city": ["北京", "上海"], "phone": [None, "13800001234"]}
    assert (h.action, h.row_version, h.actor_id) == ("update", 2, 8)
    assert events(db) == [("record.created", rec.id), ("record.updated", rec.id)]
    with db.read() as s:
        payload = s.execute(select(OutboxEvent.payload).order_by(OutboxEvent.id.desc())
                            ).scalars().first()
    assert payload["changes"] == {"city": ["北京", "上海"], "phone": [None, "13800001234"]}


def test_clearing_a_field_with_none_removes_it_and_is_in_the_diff(db):
    with db.write() as s:
        rec = create_record(s, app="crm", form="c", data={"a": 1, "b": 2}, actor=ALICE)
        rec = update_record(s, rec.id, changes={"a": None}, expected_version=1, actor=ALICE)
        assert rec.data == {"b": 2}
        assert history(s, rec.id)[0].diff == {"a": [1, None]}


def test_an_update_that_changes_nothing_writes_nothing(db):
    with db.write() as s:
        rec = create_record(s, app="crm", form="c", data={"a": 1}, actor=ALICE)
        same = update_record(s, rec.id, changes={"a": 1}, expected_version=1, actor=ALICE)
    assert same.row_version == 1
    assert count(db, RecordHistory) == 0 and len(events(db)) == 1


def test_stale_version_is_refused_and_nothing_is_overwritten(db):
    with db.write() as s:
        rec = create_record(s, app="crm", form="c", data={"stage": "lead"}, actor=ALICE)
    # Two people open version 1; Alice saves first, Bob's save must be refused.
    with db.write() as s:
        update_record(s, rec.id, changes={"stage": "contract"}, expected_version=1, actor=ALICE)
    with db.write() as s, pytest.raises(Conflict) as err:
        update_record(s, rec.id, changes={"stage": "lost"}, expected_version=1, actor=BOB)
    assert err.value.extra["current_version"] == 2
    assert "changed by someone else" in err.value.detail
    with db.read() as s:
        assert get_record(s, rec.id).data == {"stage": "contract"}
    assert count(db, RecordHistory) == 1


def test_concurrent_writers_in_two_sessions_one_wins(db):
    """Two transactions race on the same version: exactly one commits."""
    with db.write() as s:
        rec = create_record(s, app="crm", form="c", data={"n": 0}, actor=ALICE)
    barrier, outcomes = threading.Barrier(2), []

    def writer(actor: Actor, value: int) -> None:
        try:
            barrier.wait()
            with db.write() as s:
                update_record(s, rec.id, changes={"n": value}, expected_version=1, actor=actor)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=writer, args=(a, v)) for a, v in ((ALICE, 1), (BOB, 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    with db.read() as s:
        assert get_record(s, rec.id).row_version == 2


def test_soft_delete_hides_and_restore_brings_back(db):
    with db.write() as s:
        rec = create_record(s, app="crm", form="c", data={"a": 1}, actor=ALICE)
    with db.write() as s:
        deleted = delete_record(s, rec.id, actor=BOB, expected_version=1)
    assert deleted.deleted_at is not None and deleted.row_version == 2
    with db.read() as s:
        with pytest.raises(NotFound):
            get_record(s, rec.id)
        assert get_record(s, rec.id, include_deleted=True).data == {"a": 1}
    with db.write() as s:
        back = restore_record(s, rec.id, actor=ALICE)
    assert back.deleted_at is None and back.row_version == 3
    with db.write() as s, pytest.raises(Conflict, match="not in the recycle bin"):
        restore_record(s, rec.id, actor=ALICE)
    with db.read() as s:
        assert [h.action for h in history(s, rec.id)] == ["delete", "restore"]
    assert [e for e, _ in events(db)] == ["record.created", "record.deleted", "record.restored"]


def test_delete_with_stale_version_is_refused(db):
    with db.write() as s:
        rec = create_record(s, app="crm", form="c", data={"a": 1}, actor=ALICE)
        update_record(s, rec.id, changes={"a": 2}, expected_version=1, actor=ALICE)
    with db.write() as s, pytest.raises(Conflict):
        delete_record(s, rec.id, actor=BOB, expected_version=1)
    with db.read() as s:
        assert get_record(s, rec.id).deleted_at is None


def test_links_and_reverse_lookup(db):
    with db.write() as s:
        customer = create_record(s, app="crm", form="customer", data={"name": "张三"},
                                 actor=ALICE)
        other = create_record(s, app="crm", form="customer", data={"name": "李四"}, actor=ALICE)
        loan1 = create_record(s, app="crm", form="loan", data={"customer": customer.id},
                              actor=ALICE)
        loan2 = create_record(s, app="crm", form="loan", data={"customer": customer.id},
                              actor=ALICE)
        visit = create_record(s, app="crm", form="follow_up", data={}, actor=ALICE)
        set_links(s, loan1.id, "customer", [customer.id])
        set_links(s, loan2.id, "customer", [customer.id])
        set_links(s, visit.id, "customer", [customer.id])
    with db.read() as s:
        assert [(f, r.id) for f, r in links_to(s, customer.id)] == [
            ("customer", loan1.id), ("customer", loan2.id), ("customer", visit.id)]
        assert [r.id for _, r in links_to(s, customer.id, form="loan")] == [loan1.id, loan2.id]
        assert links_from(s, loan1.id, "customer") == [customer.id]
    with db.write() as s:  # re-pointing a relation replaces the link
        set_links(s, loan2.id, "customer", [other.id])
        delete_record(s, visit.id, actor=ALICE)
    with db.read() as s:
        assert [r.id for _, r in links_to(s, customer.id)] == [loan1.id]
        assert [r.id for _, r in links_to(s, other.id)] == [loan2.id]


def test_link_to_a_missing_record_is_refused_and_rolls_back(db):
    with pytest.raises(InvalidInput, match="linked record 4242 does not exist"):
        with db.write() as s:
            loan = create_record(s, app="crm", form="loan", data={}, actor=ALICE)
            set_links(s, loan.id, "customer", [4242])
    assert count(db, Record) == 0 and events(db) == []


def test_an_error_anywhere_leaves_no_row_and_no_event(db):
    with db.write() as s:
        rec = create_record(s, app="crm", form="c", data={"a": 1}, actor=ALICE)
    before = (count(db, Record), count(db, RecordHistory), events(db))
    with pytest.raises(RuntimeError), db.write() as s:
        create_records(s, app="crm", form="c", items=[{"x": i} for i in range(10)],
                       actor=ALICE)
        update_record(s, rec.id, changes={"a": 2}, expected_version=1, actor=ALICE)
        raise RuntimeError("the user's action failed half-way")
    assert (count(db, Record), count(db, RecordHistory), events(db)) == before
    with db.read() as s:
        assert get_record(s, rec.id).data == {"a": 1}


def test_a_failing_statement_rolls_back_the_whole_action(db):
    with pytest.raises(InvalidInput), db.write() as s:
        create_records(s, app="crm", form="c", items=[{"ok": 1}, "not a record"], actor=ALICE)
    assert count(db, Record) == 0 and events(db) == []


def test_bulk_create_writes_one_event_per_record_in_order(db):
    with db.write() as s:
        ids = create_records(s, app="crm", form="c", items=[{"i": i} for i in range(250)],
                             actor=ALICE)
    assert len(ids) == 250 and ids == sorted(ids)
    with db.read() as s:
        data = dict(s.execute(select(Record.id, Record.data)).all())
    assert [data[i]["i"] for i in ids] == list(range(250))
    assert [rid for _, rid in events(db)] == ids


def test_bad_keys_never_reach_sql(db):
    with db.write() as s, pytest.raises(ValueError, match="not a valid key"):
        create_records(s, app="crm'; drop table records; --", form="c", items=[{}],
                       actor=ALICE)


def test_database_settings_per_dialect(db):
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        else:
            kind = conn.execute(text(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name='records' AND column_name='data'")).scalar()
            assert kind == "jsonb"


def test_an_update_is_one_statement_on_postgresql_with_its_history_and_event(db):
    """The UPDATE, its history row and its event: one round trip on PostgreSQL (a writing
    WITH), three statements on SQLite. Either way the three rows agree."""
    with db.write() as s:
        rec = create_record(s, app="crm", form="c", data={"stage": "lead"}, actor=ALICE)

    def work() -> None:
        with db.write() as s:
            s.get(Record, rec.id)  # held: update_record reads nothing
            update_record(s, rec.id, changes={"stage": "won"}, expected_version=1, actor=BOB)

    writes = [sql for sql in statements_of(db, work)
              if sql.lstrip().upper().startswith(("UPDATE", "INSERT", "WITH"))]
    assert len(writes) == (1 if db.dialect == "postgresql" else 3), writes
    with db.read() as s:
        (h,) = history(s, rec.id)
        last = s.execute(select(OutboxEvent).order_by(OutboxEvent.id.desc())).scalars().first()
    assert (h.action, h.row_version, h.actor_id, h.diff) == ("update", 2, 8,
                                                             {"stage": ["lead", "won"]})
    assert (last.event_type, last.app, last.form, last.record_id, last.attempts) == (
        "record.updated", "crm", "c", rec.id, 0)
    assert last.payload == {"record_id": rec.id, "row_version": 2, "actor_id": 8,
                            "changes": {"stage": ["lead", "won"]}}


def test_a_refused_update_writes_no_history_and_no_event_in_a_transaction_that_goes_on(db):
    """The history row and the event are written only when the UPDATE matched: a stale
    version caught inside a transaction that then commits leaves neither behind."""
    with db.write() as s:
        rec = create_record(s, app="crm", form="c", data={"stage": "lead"}, actor=ALICE)
    with db.write() as s:
        update_record(s, rec.id, changes={"stage": "contract"}, expected_version=1, actor=ALICE)
    with db.write() as s:
        with pytest.raises(Conflict):
            update_record(s, rec.id, changes={"stage": "lost"}, expected_version=1, actor=BOB,
                          current=s.get(Record, rec.id))
        create_record(s, app="crm", form="c", data={"stage": "lead"}, actor=BOB)
    assert count(db, RecordHistory) == 1
    assert [e for e, _ in events(db)] == ["record.created", "record.updated", "record.created"]


def test_an_update_while_events_are_held_writes_its_history_and_holds_its_event(db):
    with db.write() as s:
        rec = create_record(s, app="crm", form="c", data={"stage": "lead"}, actor=ALICE)
    with db.write() as s:
        held = hold_events(s)
        try:
            update_record(s, rec.id, changes={"stage": "won"}, expected_version=1, actor=BOB)
            assert [e["event_type"] for e in held] == ["record.updated"]
            assert s.execute(select(func.count()).select_from(OutboxEvent)).scalar_one() == 1
        finally:
            release_events(s)
    assert count(db, RecordHistory) == 1 and len(events(db)) == 1
