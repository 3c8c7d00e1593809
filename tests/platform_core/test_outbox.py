"""The outbox dispatcher: id order, one transaction per batch, a failing handler retried
later without blocking the others, leases, dead letters, two dispatchers at once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, update

from platform_core.db import Database
from platform_core.models import OutboxEvent, utcnow
from platform_core.outbox import HANDLERS, Dispatcher, dead_letters, retry_delay
from platform_core.store import SYSTEM, create_record, update_record
from platform_core.webhooks.events import WebhookFanOut, register_builtins
from platform_core.webhooks.models import WebhookDelivery, WebhookSubscription


class Recorder:
    """Remembers which events it saw, in order; raises for the record ids in ``fail``."""

    def __init__(self, fail: set[int] | None = None, pause: float = 0.0):
        self.seen: list[int] = []
        self.fail = fail or set()
        self.pause = pause
        self.lock = threading.Lock()

    def handle(self, _session, event) -> None:
        time.sleep(self.pause)
        if event.record_id in self.fail:
            raise RuntimeError(f"cannot handle record {event.record_id}")
        with self.lock:
            self.seen.append(event.id)


def make_events(db, n: int, app: str = "crm") -> list[int]:
    """``n`` record.created events; their outbox ids."""
    with db.write() as s:
        for i in range(n):
            create_record(s, app=app, form="customer", data={"name": f"客户{i}"}, actor=SYSTEM)
    with db.read() as s:
        return list(s.execute(select(OutboxEvent.id).order_by(OutboxEvent.id)).scalars())


def events(db) -> dict[int, OutboxEvent]:
    with db.read() as s:
        return {e.id: e for e in s.execute(select(OutboxEvent)).scalars()}


def test_events_are_handled_once_in_id_order_and_marked_processed(db):
    ids = make_events(db, 5)
    first, second = Recorder(), Recorder()
    dispatcher = Dispatcher(db, [first, second], worker_id="w1", batch=3)
    assert dispatcher.run_once() == 3
    assert dispatcher.run_once() == 2
    assert dispatcher.run_once() == 0
    assert first.seen == ids and second.seen == ids
    for event in events(db).values():
        assert event.processed_at is not None and event.attempts == 0
        assert event.claimed_by == "w1" and event.claimed_until is None


def test_a_failing_handler_does_not_block_the_others_and_is_retried_later(db):
    ids = make_events(db, 3)
    with db.read() as s:
        bad_record = s.get(OutboxEvent, ids[1]).record_id
    ok, flaky = Recorder(), Recorder(fail={bad_record})
    dispatcher = Dispatcher(db, [ok, flaky], worker_id="w1", backoff_seconds=5)
    now = utcnow()
    assert dispatcher.run_once(now=now) == 3
    # the batch's pass stopped at the failure and was undone; then the batch was handled
    # again event by event, each in a savepoint: the failed event's rows are rolled back
    assert ok.seen == [ids[0], ids[1], *ids]
    assert flaky.seen == [ids[0], ids[0], ids[2]]
    failed = events(db)[ids[1]]
    assert failed.processed_at is None and failed.attempts == 1
    assert failed.claimed_by == "w1"  # handed out: its handlers may skip no look-up
    assert "Recorder: RuntimeError: cannot handle record" in failed.last_error
    assert failed.available_at.replace(tzinfo=None) == (now + timedelta(seconds=5)).replace(
        tzinfo=None)
    # not due yet; then due, and the handler works now
    assert dispatcher.run_once(now=now + timedelta(seconds=4)) == 0
    flaky.fail.clear()
    assert dispatcher.run_once(now=now + timedelta(seconds=5)) == 1
    assert ok.seen == [ids[0], ids[1], *ids, ids[1]]  # the whole event is retried
    assert flaky.seen == [ids[0], ids[0], ids[2], ids[1]]
    assert events(db)[ids[1]].processed_at is not None


def test_a_rolled_back_event_leaves_no_rows_and_is_fanned_out_once_on_retry(db):
    with db.write() as s:
        s.add(WebhookSubscription(app="crm", name="hook", url="https://93.184.215.14/",
                                  event_types=["*"], secret="{}", active=True))
    ids = make_events(db, 1)
    flaky = Recorder(fail=set(range(1, 1000)))
    dispatcher = Dispatcher(db, [WebhookFanOut(), flaky], worker_id="w1")
    now = utcnow()
    dispatcher.run_once(now=now)
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(WebhookDelivery)).scalar() == 0
    flaky.fail.clear()
    for step in (1, 2):  # the retry fans out; a handed-over-again event makes nothing new
        dispatcher.run_once(now=now + timedelta(minutes=step))
        with db.write() as s:
            s.get(OutboxEvent, ids[0]).processed_at = None if step == 1 else utcnow()
    with db.read() as s:
        rows = list(s.execute(select(WebhookDelivery)).scalars())
    assert [(r.event_id, r.event_type) for r in rows] == [(ids[0], "record.created")]


def test_a_failure_mid_batch_keeps_each_other_event_s_rows_once(db):
    """The batch runs in one savepoint; a failure undoes it and the batch is handled again
    event by event: the events before and after the failing one are fanned out exactly
    once, the failing one not at all."""
    with db.write() as s:
        s.add(WebhookSubscription(app="crm", name="hook", url="https://93.184.215.14/",
                                  event_types=["*"], secret="{}", active=True))
    ids = make_events(db, 3)
    with db.read() as s:
        bad_record = s.get(OutboxEvent, ids[1]).record_id
    dispatcher = Dispatcher(db, [WebhookFanOut(), Recorder(fail={bad_record})],
                            worker_id="w1")
    assert dispatcher.run_once(now=utcnow()) == 3
    with db.read() as s:
        fanned = sorted(s.execute(select(WebhookDelivery.event_id)).scalars())
    assert fanned == [ids[0], ids[2]]
    by_id = events(db)
    assert [by_id[i].processed_at is not None for i in ids] == [True, False, True]


def test_a_failure_near_the_end_of_the_budget_is_marked_in_the_same_run(db):
    """The batch's pass reaches the failing 9th event at about 0.8 s of a 1 s budget; the
    redo, event by event, still gets past it (then releases the rest), so the next batch
    does not stumble on it again."""
    ids = make_events(db, 12)
    with db.read() as s:
        bad_record = s.get(OutboxEvent, ids[8]).record_id
    slow = Recorder(fail={bad_record}, pause=0.1)
    dispatcher = Dispatcher(db, [slow], worker_id="w1", budget_seconds=1.0)
    dispatcher.run_once(now=utcnow())
    by_id = events(db)
    assert by_id[ids[8]].attempts == 1 and by_id[ids[8]].processed_at is None
    assert all(by_id[i].processed_at is not None for i in ids[:8])


def test_a_batch_that_succeeds_uses_one_savepoint(db):
    with db.write() as s:
        s.add(WebhookSubscription(app="crm", name="hook", url="https://93.184.215.14/",
                                  event_types=["*"], secret="{}", active=True))
    make_events(db, 20)
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert Dispatcher(db, [WebhookFanOut()], worker_id="w1").run_once(now=utcnow()) == 20
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", count)
    assert sum(s.startswith("SAVEPOINT") for s in seen) == 1


def test_after_max_attempts_an_event_is_a_dead_letter(db):
    (event_id,) = make_events(db, 1)
    dispatcher = Dispatcher(db, [Recorder(fail=set(range(1, 1000)))], max_attempts=3,
                            backoff_seconds=1)
    now = utcnow()
    for hour in range(5):
        dispatcher.run_once(now=now + timedelta(hours=hour))
    event = events(db)[event_id]
    assert event.attempts == 3 and event.processed_at is None
    with db.read() as s:
        assert [e.id for e in dead_letters(s, max_attempts=3)] == [event_id]
        assert dead_letters(s, max_attempts=4) == []


def test_a_live_lease_of_another_dispatcher_is_respected(db):
    (event_id,) = make_events(db, 1)
    now = utcnow()
    with db.write() as s:
        event = s.get(OutboxEvent, event_id)
        event.claimed_by, event.claimed_until = "other", now + timedelta(seconds=30)
    mine = Recorder()
    dispatcher = Dispatcher(db, [mine], worker_id="me")
    assert dispatcher.run_once(now=now) == 0
    assert dispatcher.run_once(now=now + timedelta(seconds=31)) == 1
    assert mine.seen == [event_id] and events(db)[event_id].claimed_by == "me"


def test_two_dispatchers_at_once_handle_each_event_exactly_once(db):
    ids = make_events(db, 30)
    shared = Recorder(pause=0.002)
    dispatchers = [Dispatcher(db, [shared], worker_id=f"w{i}", batch=4) for i in range(2)]
    start = threading.Barrier(2)

    def drain(d: Dispatcher) -> None:
        start.wait()
        while d.run_once():
            pass

    threads = [threading.Thread(target=drain, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(shared.seen) == ids
    assert all(e.processed_at is not None for e in events(db).values())


def test_handlers_come_from_the_registry():
    register_builtins()
    register_builtins()  # idempotent: start-up may run it again
    assert "webhooks" in HANDLERS
    dispatcher = Dispatcher.from_registry(None)  # type: ignore[arg-type]
    assert any(isinstance(h, WebhookFanOut) for h in dispatcher.handlers)


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 5), (2, 10), (3, 20), (12, 3600)])
def test_retry_delay_doubles_up_to_an_hour(attempts, seconds):
    assert retry_delay(attempts, 5) == timedelta(seconds=seconds)


def test_update_events_carry_their_changes(db):
    with db.write() as s:
        rec = create_record(s, app="crm", form="customer", data={"name": "甲"}, actor=SYSTEM)
        update_record(s, rec.id, changes={"name": "乙"}, expected_version=1, actor=SYSTEM)
    seen = []

    class Keep:
        def handle(self, _session, event) -> None:
            seen.append((event.event_type, event.payload.get("changes")))

    Dispatcher(db, [Keep()]).run_once()
    assert seen == [("record.created", None), ("record.updated", {"name": ["甲", "乙"]})]


def test_a_batch_stops_at_its_time_budget_and_leaves_the_rest_unclaimed(db):
    """A long batch would hold SQLite's write lock past a page's busy timeout: past the
    budget the dispatcher commits what it did and releases the rest at once."""
    ids = make_events(db, 6)
    slow = Recorder(pause=0.05)
    dispatcher = Dispatcher(db, [slow], worker_id="w1", batch=6, budget_seconds=0.08)
    first = dispatcher.run_once()
    assert 1 <= first < 6
    left = [e for e in events(db).values() if e.processed_at is None]
    assert len(left) == 6 - first and all(e.claimed_until is None for e in left)
    # released as never handed out: the next batch's handlers know nothing of them was
    # written, and skip their look-ups for work already done (``outbox_fresh``)
    assert all(e.claimed_by is None for e in left)
    fresh: list[set[int]] = []

    class Sees(Recorder):
        def handle(self, session, event) -> None:
            fresh.append(set(session.info["outbox_fresh"]))
            super().handle(session, event)

    dispatcher = Dispatcher(db, [Sees()], worker_id="w1", batch=6)
    assert dispatcher.run_once() == len(left)
    assert fresh[0] == {e.id for e in left}
    assert slow.seen == ids[:first]


def test_a_subscription_does_not_receive_what_happened_before_it(db):
    """Even when the dispatcher reaches an older event only after the subscription was
    made (a backlog), the subscriber gets only what happened since."""
    before = make_events(db, 1)
    with db.write() as s:
        s.add(WebhookSubscription(app="crm", name="hook", url="https://93.184.215.14/",
                                  event_types=["*"], secret="{}", active=True))
    after = [i for i in make_events(db, 1) if i not in before]
    dispatcher = Dispatcher(db, [WebhookFanOut()], worker_id="w1")
    while dispatcher.run_once():
        pass
    with db.read() as s:
        got = list(s.execute(select(WebhookDelivery.event_id)).scalars())
    assert got == after


def test_a_batch_claims_and_marks_its_events_with_one_statement_each(db):
    """The statements of a batch do not grow with the events its handlers took: they are
    claimed together and marked processed together, at the end of the batch's
    transaction. An executemany counts once per row (PostgreSQL runs each row's
    statement on its own)."""
    from sqlalchemy import event as sa_event

    def statements(n: int) -> int:
        make_events(db, n)
        seen: list[str] = []

        def count(_conn, _cursor, statement, params, _context, executemany) -> None:  # noqa: ANN001
            seen.extend([statement] * (len(params) if executemany else 1))

        sa_event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert Dispatcher(db, [Recorder()], worker_id="w1", batch=50).run_once() == n
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", count)
        assert all(e.processed_at is not None for e in events(db).values())
        return len(seen)

    one = statements(1)
    assert statements(20) == one


def test_a_batch_writes_its_events_once_with_one_sql_text_whatever_its_size(db):
    """The claim only reads (and on PostgreSQL locks): the one write of the outbox is the
    mark at the end, which names the worker that handled the events. Its SQL text is the
    same for a batch of 1 and of 20 — PostgreSQL gets the ids as one array — so the
    driver converts it once and the server can keep it prepared."""
    def outbox_writes(n: int) -> list[str]:
        make_events(db, n)
        seen: list[str] = []

        def keep(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
            if statement.lstrip().startswith("UPDATE outbox"):
                seen.append(statement)

        sa_event.listen(db.engine, "before_cursor_execute", keep)
        try:
            assert Dispatcher(db, [Recorder()], worker_id="w1", batch=50).run_once() == n
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", keep)
        return seen

    [one] = outbox_writes(1)
    twenty = outbox_writes(20)
    assert len(twenty) == 1
    if db.dialect == "postgresql":
        assert twenty == [one]
    assert all(e.claimed_by == "w1" and e.processed_at is not None
               for e in events(db).values())


def _claim_plan(db, dispatcher: Dispatcher) -> str:
    """The query plan of the statement ``dispatcher`` claims its batch with."""
    claims: list[tuple[str, object]] = []

    def keep(_conn, _cursor, statement, parameters, *_args) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM outbox" in statement \
                and "LIMIT" in statement:
            claims.append((statement, parameters))

    sa_event.listen(db.engine, "before_cursor_execute", keep)
    try:
        dispatcher.run_once()
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", keep)
    [(statement, parameters)] = claims
    explain = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
    with db.engine.connect() as conn:
        return "\n".join(str(row[-1]) for row in
                         conn.exec_driver_sql(explain + statement, parameters))


def test_a_claim_reads_the_pending_events_in_id_order_and_stops_after_its_batch(db):
    """Not every pending row read and sorted to keep a batch (a drain quadratic in its
    backlog): the partial index of the pending rows gives them in id order."""
    make_events(db, 400)
    with db.write() as s:  # most of the table handled long ago, as in a running system
        s.execute(update(OutboxEvent).where(OutboxEvent.id <= 300)
                  .values(processed_at=utcnow()))
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    # a pooled SQLite connection keeps the statistics it loaded (here: an earlier test's,
    # taken when every event was pending, with which a scan in id order looks as good)
    db.engine.dispose()
    plan = _claim_plan(db, Dispatcher(db, [Recorder()], worker_id="w1", batch=10))
    assert "ix_outbox_due" in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan


def test_on_postgresql_a_backlog_gets_statistics_that_let_the_claim_read_its_head(db):
    """A fresh install's first burst of events (an import): the outbox has never been
    analyzed, and with no statistics the planner sorts every pending event for each
    claim — 4–10 ms a claim at 20,000 — until autovacuum comes round a minute or more
    later. The dispatcher's first full batch gathers them; the next claims read the head
    of the pending index and stop."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite's planner takes the index without statistics")
    from platform_core.db import make_engine
    from platform_core.migrate import upgrade
    from tests.conftest import scratch_database

    with scratch_database(db.engine.url.render_as_string(hide_password=False),
                          "outbox_stats") as url:
        fresh = Database(make_engine(url))
        try:
            upgrade(fresh.engine)
            with fresh.engine.begin() as conn:  # no autovacuum during the test
                conn.exec_driver_sql("ALTER TABLE outbox SET (autovacuum_enabled = false)")
            make_events(fresh, 3000)
            dispatcher = Dispatcher(fresh, [Recorder()], worker_id="w1", batch=10)
            assert "Sort" in _plan_now(fresh, dispatcher)  # never analyzed
            assert dispatcher.run_once() == 10
            plan = _plan_now(fresh, dispatcher)
            assert "ix_outbox_due" in plan and "Sort" not in plan, plan
        finally:
            fresh.dispose()


def _plan_now(db, dispatcher: Dispatcher) -> str:
    """PostgreSQL's plan for ``dispatcher``'s claim now."""
    from sqlalchemy.dialects import postgresql

    sql = dispatcher.claim_statement(utcnow()).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    with db.engine.connect() as conn:
        return "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
