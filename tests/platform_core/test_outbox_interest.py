"""Handlers that say what they want (``interest``): the dispatcher hands them only those
events, and marks the events nobody wants processed in bulk — an import nobody subscribes
to leaves no backlog — without losing one that somebody does want."""

from __future__ import annotations

from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from platform_core.models import OutboxEvent
from platform_core.outbox import SKIP_BATCH, Dispatcher
from platform_core.store import SYSTEM, create_records
from tests.platform_core.test_outbox import Recorder


class Picky(Recorder):
    """A recorder interested in ``pairs`` (what a rules handler with one enabled rule, or
    a webhook subscription, says); ``pairs`` may change between batches."""

    def __init__(self, pairs: set[tuple[str, str]]):
        super().__init__()
        self.pairs = pairs

    def interest(self, _session) -> set[tuple[str, str]]:
        return set(self.pairs)


def _load(db, app: str, form: str, n: int) -> None:
    with db.write() as s:
        create_records(s, app=app, form=form, items=[{"name": f"客户{i}"} for i in range(n)],
                       actor=SYSTEM)


def _unprocessed(db) -> int:
    with db.read() as s:
        return s.execute(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.processed_at.is_(None))).scalar_one()


def test_events_nobody_wants_are_marked_processed_in_bulk_and_the_wanted_handed_over(db):
    _load(db, "crm", "customer", 30)
    _load(db, "hr", "staff", 20)
    crm = Picky({("crm", "record.created")})
    other = Picky(set())
    dispatcher = Dispatcher(db, [crm, other], worker_id="w1", batch=100)
    assert dispatcher.run_once() == 50  # 20 skipped in one statement + 30 handled
    assert _unprocessed(db) == 0
    with db.read() as s:
        crm_ids = list(s.execute(select(OutboxEvent.id).where(OutboxEvent.app == "crm")
                                 .order_by(OutboxEvent.id)).scalars())
    assert crm.seen == crm_ids and other.seen == []  # each handler only what it wants


def test_a_handler_interested_later_gets_the_events_written_after(db):
    picky = Picky(set())
    dispatcher = Dispatcher(db, [picky], worker_id="w1")
    _load(db, "crm", "customer", 3)
    assert dispatcher.run_once() == 3 and picky.seen == []  # nobody wanted them
    picky.pairs = {("crm", "record.created")}  # a rule enabled, a subscription made
    _load(db, "crm", "customer", 2)
    assert dispatcher.run_once() == 2 and len(picky.seen) == 2


def test_a_handler_without_interest_still_gets_every_event(db):
    everything, picky = Recorder(), Picky(set())
    _load(db, "crm", "customer", 4)
    assert Dispatcher(db, [everything, picky], worker_id="w1").run_once() == 4
    assert len(everything.seen) == 4 and picky.seen == []


def test_a_large_unwanted_load_drains_in_few_batches(db):
    _load(db, "crm", "customer", SKIP_BATCH + 10)
    picky = Picky(set())
    # a budget no busy machine reaches: past the default 0.5 s (marking 5,000 rows on a
    # loaded machine took longer) the batch rightly leaves the rest for the next run
    dispatcher = Dispatcher(db, [picky], worker_id="w1", budget_seconds=60)
    # one statement marks SKIP_BATCH of them; the rest go through the normal batch
    assert dispatcher.run_once() == SKIP_BATCH + 10
    assert _unprocessed(db) == 0 and picky.seen == []


def _bulk_looks(db, dispatcher: Dispatcher) -> int:
    """How many bulk looks for unwanted events one ``run_once`` made (and its count)."""
    looks: list[str] = []

    def keep(_conn, _cursor, statement, *_args) -> None:
        if statement.startswith("UPDATE outbox") and "IN (SELECT" in statement:
            looks.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", keep)
    try:
        dispatcher.run_once()
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", keep)
    return len(looks)


def test_a_look_for_unwanted_events_that_found_none_waits_for_a_batch_holding_one(db):
    """The bulk look reads the pending rows until it has found its 5,000: with a backlog
    of wanted events it read all of them for every batch. After a look that found none,
    the next is made only once a claimed batch holds an event nobody wants."""
    picky = Picky({("crm", "record.created")})
    dispatcher = Dispatcher(db, [picky], worker_id="w1", batch=10)
    _load(db, "crm", "customer", 30)
    assert _bulk_looks(db, dispatcher) == 1  # the first run looks (and finds none)
    assert _bulk_looks(db, dispatcher) == 0
    _load(db, "hr", "staff", 30)  # nobody wants these: they come after 10 wanted ones
    assert _bulk_looks(db, dispatcher) == 0  # the last 10 wanted ones
    assert _bulk_looks(db, dispatcher) == 0  # 10 unwanted ones, in a batch
    assert _bulk_looks(db, dispatcher) == 1  # so this run marks the other 20 at once
    assert _unprocessed(db) == 0 and len(picky.seen) == 30
