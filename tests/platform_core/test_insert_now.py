"""``platform_core.db.insert_now``: a new object's row written at once, the object kept in
the session as persistent, with nothing about it left to read back or flush."""

from __future__ import annotations

from sqlalchemy import event, select

from platform_core.db import insert_now
from platform_core.models import OutboxEvent, utcnow


def test_the_row_is_written_and_the_object_needs_no_further_statement(db):
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_):  # noqa: ANN001
        seen.append(statement)

    with db.write() as session:
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            now = utcnow()
            row = insert_now(session, OutboxEvent(
                event_type="record.created", app="a", form="f", record_id=7,
                payload={"x": 1}, created_at=now, available_at=now))
            assert len(seen) == 1 and seen[0].startswith("INSERT INTO outbox")
            # its id, and the columns it left to their defaults, without a read back
            assert row.id is not None and row.attempts == 0 and row.depth == 0
            assert session.get(OutboxEvent, row.id) is row
            assert not session.dirty and not session.new
            session.flush()
            assert len(seen) == 1
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    with db.read() as session:
        stored = session.execute(select(OutboxEvent).where(OutboxEvent.id == row.id)
                                 ).scalar_one()
        assert (stored.event_type, stored.record_id, stored.payload, stored.attempts) == (
            "record.created", 7, {"x": 1}, 0)


def test_adopt_makes_a_core_row_the_session_s_object_or_refreshes_the_one_it_holds(db):
    """``adopt``: the row an UPDATE … RETURNING answered becomes the session's persistent
    object; a copy the session already holds is brought up to date, not duplicated."""
    from sqlalchemy import update

    from platform_core.db import adopt

    now = utcnow()
    with db.write() as session:
        held = insert_now(session, OutboxEvent(
            event_type="record.created", app="a", form="f", record_id=7,
            payload={"x": 1}, created_at=now, available_at=now))
        table = OutboxEvent.__table__
        bump = update(table).where(table.c.id == held.id).values(
            attempts=table.c.attempts + 1, payload={"x": 2}).returning(*table.c)
        row = session.connection().execute(bump).mappings().one()
        assert adopt(session, OutboxEvent, row) is held
        assert (held.attempts, held.payload) == (1, {"x": 2}) and not session.dirty
        session.expunge(held)
        row = session.connection().execute(bump).mappings().one()
        fresh = adopt(session, OutboxEvent, row)
        assert fresh is not held and session.get(OutboxEvent, held.id) is fresh
        assert (fresh.attempts, fresh.payload, fresh.created_at) == (2, {"x": 2}, held.created_at)
        assert not session.dirty and not session.new
