"""The outbox dispatcher: the one consumer of domain events (``OutboxEvent``).

Every change writes its event in the same transaction as the change itself; the
dispatcher hands each event to every registered handler (webhook fan-out here, the rules
engine later) and marks it processed. Handlers plug in through ``HANDLERS`` (registered
at start-up, e.g. ``platform_core.webhooks.register_builtins()``) or are passed to
``Dispatcher`` directly.

One ``run_once`` is one transaction, in this order:

1. **claim** up to ``batch`` due events — unprocessed, ``available_at`` reached, fewer
   than ``max_attempts`` tries, no live lease — in id order. PostgreSQL locks them
   ``FOR UPDATE SKIP LOCKED``, so a second dispatcher takes the next ones; SQLite's
   ``BEGIN IMMEDIATE`` (``Database.write()``) lets one dispatcher run at a time. The
   claim writes nothing: the row locks (or SQLite's one writer) keep the batch from
   any other dispatcher until commit, and by then its events are processed. A live
   lease (``claimed_until``) found on an event is still respected; this dispatcher
   sets none;
2. for each event, in id order: every handler's ``handle(session, event)``, the whole
   batch inside one SAVEPOINT. Handlers only write rows (a webhook delivery, a rule run)
   — never network I/O, which belongs to whoever later reads those rows;
3. all handlers succeeded → ``processed_at`` set, and ``claimed_by`` to who handled it
   (one UPDATE for the batch). One raised → the batch's savepoint is rolled back and the
   batch handled again event by event, each in a SAVEPOINT of its own: an event whose
   handler raises again has its savepoint rolled back (no handler's rows of this event
   are kept), ``attempts`` + 1, ``last_error``, and ``available_at``
   pushed back by the backoff, ``claimed_by`` set (it was handed out); the rest of the
   batch goes on;
4. commit. A crash before it loses nothing: the events are claimed again. (After a full
   batch, PostgreSQL's statistics of the outbox are refreshed now and then:
   ``Dispatcher._refresh_statistics``.)

So an event is handed to each handler **at least once**, and retried as a whole: a
handler must be idempotent (the webhook fan-out skips deliveries it already made). Events
are handled in id order, except that a failed event is retried later, after events
behind it. One that still fails after ``max_attempts`` tries stays unprocessed with its
error: ``dead_letters`` lists them.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, not_, or_, select, true, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from platform_core.db import Database, one_of
from platform_core.models import OutboxEvent, utcnow
from platform_core.registry import Registry

log = logging.getLogger("qiao.outbox")
MAX_DELAY = timedelta(hours=1)
SKIP_BATCH = 5000  # events nobody wants, marked processed per statement
STATISTICS_EVERY = 300.0  # seconds: PostgreSQL's statistics of the outbox, at most this often


class Handler(Protocol):
    """Reacts to one domain event by writing rows in the dispatcher's transaction.

    A handler may also offer ``interest(session) -> set[tuple[str, str]]``: the (app,
    event type) pairs it could act on as things stand (its enabled rules, its active
    subscriptions). The dispatcher then hands it only those events, and an event no
    handler is interested in is marked processed without being handled at all — in bulk,
    so a 200,000-row import nobody subscribes to leaves no backlog behind. A handler
    without ``interest`` gets every event.

    And ``prepare(session, events)``: called once per batch, before the first event is
    handled, with the batch's events it will be handed — to read what they all need in
    one statement instead of one per event.

    And ``finish(session, failed=False)``: called when the events handed over since the
    last call are done — the batch, or one event retried alone — still inside their
    savepoint, so that a handler may keep rows back and write a batch's rows in one
    statement; with ``failed=True`` after that work was rolled back (drop what was kept).
    A ``finish`` that raises fails the batch like a ``handle`` that raises.

    ``session.info["outbox_fresh"]`` holds the ids of the batch's events no dispatcher
    had claimed before: nothing a handler writes for an event can have been committed
    yet, so it may skip its idempotency look-ups for those."""

    def handle(self, session: Session, event: OutboxEvent) -> None: ...


HANDLERS: Registry[Handler] = Registry("outbox handler")

# How deep in a cascade the code writing events runs: 0 for a person's change, n + 1 for
# a change a rule made while handling an event of depth n. Every event written takes it
# as its ``depth``, so the rules engine can stop cascades (a rule's update triggering
# rules that update …) at a fixed depth.
CASCADE_DEPTH: ContextVar[int] = ContextVar("qiao_cascade_depth", default=0)

# -- writing events -----------------------------------------------------------------------

_HELD = "qiao_outbox_held"
_EVENT_ROW = OutboxEvent.__table__.insert()


def add_event(session: Session, values: dict[str, Any]) -> None:
    """Write an outbox event (the columns of ``OutboxEvent`` but its id) in this
    transaction: at once, or, while an operation holds its events (``hold_events``), with
    them when it ends — one INSERT for all, in the order they were added."""
    held = session.info.get(_HELD)
    if held is None:
        session.execute(_EVENT_ROW, values)
    else:
        held.append(values)


def hold_events(session: Session) -> list[dict[str, Any]]:
    """From now on, ``add_event`` gathers the events of ``session`` in the list returned,
    which the caller writes (``_EVENT_ROW``-shaped rows) and then ``release_events``."""
    return session.info.setdefault(_HELD, [])


def events_held(session: Session) -> bool:
    """Whether ``add_event`` is gathering this session's events (``hold_events``)."""
    return _HELD in session.info


def release_events(session: Session) -> None:
    session.info.pop(_HELD, None)



def default_worker_id() -> str:
    """``host:pid:random``: unique per process, readable in a lease column."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def retry_delay(attempts: int, base_seconds: float) -> timedelta:
    """Wait after the ``attempts``-th failure: base, 2×, 4× … at most an hour."""
    return min(timedelta(seconds=base_seconds * 2 ** max(attempts - 1, 0)), MAX_DELAY)


_OUTBOX = OutboxEvent.__table__


def _handled(dialect: str) -> Any:
    """The UPDATE that marks a batch's handled events processed, by the worker that
    handled them (the ids as ``db.one_of`` passes them)."""
    return update(_OUTBOX).where(one_of(_OUTBOX.c.id, dialect)).values(
        processed_at=bindparam("now"), claimed_by=bindparam("worker"), claimed_until=None)


_HANDLED = {dialect: _handled(dialect) for dialect in ("postgresql", "sqlite")}


class Dispatcher:
    """Claims due outbox events and runs every handler on each (see the module docstring
    for the order of events)."""

    def __init__(self, db: Database, handlers: Sequence[Handler], worker_id: str | None = None,
                 *, batch: int = 100, max_attempts: int = 10,
                 backoff_seconds: float = 5.0, budget_seconds: float = 0.5):
        self.db = db
        self.handlers = list(handlers)
        self.worker_id = worker_id or default_worker_id()
        self.batch = batch
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        # a batch's transaction holds SQLite's one write lock: past this many seconds the
        # rest of the batch is left for the next run, so a page's write never waits long
        self.budget_seconds = budget_seconds
        self._analyzed_at = -STATISTICS_EVERY  # this dispatcher's last ANALYZE (monotonic)
        # whether the next run first marks the due events nobody wants in bulk: a look
        # that found none (which read every pending row) is not repeated until a claimed
        # batch holds such an event
        self._look_for_unwanted = True

    @classmethod
    def from_registry(cls, db: Database, *, context: Any = None, **kwargs: Any) -> Dispatcher:
        """A dispatcher over every handler in ``HANDLERS`` (in key order); a handler with
        ``for_context`` is bound to the running app's ``context`` (its keyring …)."""
        handlers = [h.for_context(context) if context is not None and hasattr(
            h, "for_context") else h for _key, h in HANDLERS.items()]
        return cls(db, handlers, **kwargs)

    def run_once(self, *, now: datetime | None = None) -> int:
        """Claim and handle one batch in one transaction; how many events it handled
        (fewer than it claimed when the time budget ran out: those are released), those
        no handler wanted included."""
        now, started, handled = now or utcnow(), time.monotonic(), 0
        with self.db.write() as session:
            interests = self._interests(session)
            if interests is not None and self._look_for_unwanted:
                skipped = self._skip_unwanted(session, now, interests)
                handled += skipped
                self._look_for_unwanted = skipped > 0
            events = self._claim(session, now)
            if interests is not None and not self._look_for_unwanted:
                # an event nobody wants among these: more may follow (an import nobody
                # subscribes to), so the next run looks for them in bulk again
                self._look_for_unwanted = any(
                    all(pairs is not None and (e.app, e.event_type) not in pairs
                        for pairs in interests) for e in events)
            self._prepare(session, events, interests)
            done: list[int] = []
            try:
                # The whole batch in one savepoint, not one per event (two statements
                # each, two round trips on PostgreSQL); a handler failing undoes the
                # batch's work, which is then done again event by event (step 3).
                with session.begin_nested():
                    count = self._handle(session, events, now, interests, started,
                                         handled, done, alone=False)
                    self._finish(session)
            except Exception as exc:  # noqa: BLE001 — retried below, event by event
                self._finish(session, failed=True)
                log.info("outbox batch of %s events redone event by event: %s: %s",
                         len(events), type(exc).__name__, exc)
                # the redo gets past the failing event whatever the clock says: else a
                # failure near the budget's end would be reached again by every batch
                failed_at, done = len(done), []
                count = self._handle(session, events, now, interests, started, handled,
                                     done, alone=True, through=failed_at)
            handled += count
            # The handled events are marked in one statement, not one UPDATE each (a fifth
            # of the dispatcher's time with the CRM's rules); same transaction as their work.
            # (The failed ones were changed through the ORM: flushed first.)
            session.flush()
            mark = _HANDLED[self.db.dialect]
            for start in range(0, len(done), 500):
                session.execute(mark, {"ids": done[start:start + 500], "now": now,
                                       "worker": self.worker_id})
        if len(events) == self.batch:
            self._refresh_statistics()
        return handled

    def _refresh_statistics(self) -> None:
        """PostgreSQL: ``ANALYZE outbox`` after a full batch, at most every
        ``STATISTICS_EVERY`` seconds, in a transaction of its own that gives up rather than
        wait for a lock (a VACUUM running).

        The claim's plan follows the table's statistics. Taken while few events were
        pending (or never, on a fresh install), they make a sort of every pending event
        look cheapest — each claim of a burst of 20,000 events then read and sorted them
        all (4–10 ms a claim), until autovacuum came round a minute or more later. With
        statistics that see the backlog, the claim reads the head of ``ix_outbox_due``
        and stops. A full batch is the sign of a backlog; one ANALYZE samples 30,000 rows."""
        if self.db.dialect != "postgresql" or \
                time.monotonic() < self._analyzed_at + STATISTICS_EVERY:
            return
        self._analyzed_at = time.monotonic()
        try:
            with self.db.engine.connect() as conn, conn.begin():
                conn.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
                conn.exec_driver_sql("ANALYZE outbox")
        except OperationalError as exc:
            log.info("outbox statistics not refreshed now: %s", exc)

    def _interests(self, session: Session) -> list[set[tuple[str, str]] | None] | None:
        """Each handler's (app, event type) pairs (None: every event), or None when no
        handler says what it wants."""
        found = [h.interest(session) if hasattr(h, "interest") else None
                 for h in self.handlers]
        return None if all(i is None for i in found) else found

    def _finish(self, session: Session, *, failed: bool = False) -> None:
        """Each handler with ``finish`` told that the events handed to it since the last
        call are done (it writes what it kept back for the batch), or, ``failed``, that
        their work was rolled back (it forgets what it kept back)."""
        for handler in self.handlers:
            finish = getattr(handler, "finish", None)
            if finish is not None:
                if failed:
                    finish(session, failed=True)
                else:
                    try:
                        finish(session)
                    except Exception as exc:
                        raise HandlerFailed(type(handler).__name__, exc) from exc

    def _prepare(self, session: Session, events: list[OutboxEvent],
                 interests: list[set[tuple[str, str]] | None] | None) -> None:
        """Each handler with ``prepare`` told the batch's events it will be handed."""
        for i, handler in enumerate(self.handlers):
            prepare = getattr(handler, "prepare", None)
            pairs = None if interests is None else interests[i]
            wanted = [e for e in events if pairs is None or (e.app, e.event_type) in pairs]
            if prepare is not None and wanted:
                prepare(session, wanted)

    def _due(self, now: datetime) -> list[Any]:
        return [OutboxEvent.processed_at.is_(None), OutboxEvent.available_at <= now,
                OutboxEvent.attempts < self.max_attempts,
                or_(OutboxEvent.claimed_until.is_(None), OutboxEvent.claimed_until <= now)]

    def _skip_unwanted(self, session: Session, now: datetime,
                       interests: list[set[tuple[str, str]] | None]) -> int:
        """Mark processed, in one statement, up to ``SKIP_BATCH`` due events that no
        handler is interested in; how many."""
        if any(i is None for i in interests):
            return 0
        by_app: dict[str, set[str]] = {}
        for pairs in interests:
            for app, event_type in pairs or ():
                by_app.setdefault(app, set()).add(event_type)
        wanted = or_(*(and_(OutboxEvent.app == app, OutboxEvent.event_type.in_(sorted(types)))
                       for app, types in sorted(by_app.items()))) if by_app else None
        unwanted = true() if wanted is None else or_(OutboxEvent.app.is_(None), not_(wanted))
        ids = (select(OutboxEvent.id).where(*self._due(now), unwanted)
               .order_by(OutboxEvent.id).limit(SKIP_BATCH)
               .with_for_update(skip_locked=True))  # rendered on PostgreSQL only
        done = session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids.scalar_subquery()))
                               .values(processed_at=now, claimed_until=None)
                               .execution_options(synchronize_session=False))
        return done.rowcount or 0

    def claim_statement(self, now: datetime) -> Any:
        """The SELECT a claim runs: the first ``batch`` due events in id order."""
        return (select(OutboxEvent)
                .where(*self._due(now))
                .order_by(OutboxEvent.id).limit(self.batch)
                .with_for_update(skip_locked=True))  # rendered on PostgreSQL only

    def _claim(self, session: Session, now: datetime) -> list[OutboxEvent]:
        events = list(session.execute(self.claim_statement(now)).scalars())
        # never handed out before: no handler has committed anything for these yet
        session.info["outbox_fresh"] = {e.id for e in events if e.claimed_by is None}
        return events

    def _handle(self, session: Session, events: list[OutboxEvent], now: datetime,
                interests: list[set[tuple[str, str]] | None] | None, started: float,
                handled: int, done: list[int], *, alone: bool, through: int = 0) -> int:
        """Each event to the handlers that want it until the time budget runs out (the
        rest are released for the next run; the first ``through`` + 1 events are handled
        in any case); the ids all handlers took are appended to ``done``; how many events
        were handled. ``alone``: each event in a savepoint of its own, a failure marked
        for a later retry (``_dispatch``); otherwise a failure raises (``done`` then
        holds the events handled before the one that failed)."""
        count = 0
        for index, event in enumerate(events):
            if index > through and handled + count and \
                    time.monotonic() - started > self.budget_seconds:
                # not handled: the next run takes it, as never handed out (nothing of
                # it was written), so its handlers skip their look-ups for work done
                event.claimed_by, event.claimed_until = None, None
                continue
            if alone:
                if self._dispatch(session, event, now, interests):
                    done.append(event.id)
            else:
                self._hand_over(session, event, interests)
                done.append(event.id)
            count += 1
        return count

    def _hand_over(self, session: Session, event: OutboxEvent,
                   interests: list[set[tuple[str, str]] | None] | None) -> None:
        """``event`` to each handler that wants it; a failure raises ``HandlerFailed``."""
        pair = (event.app, event.event_type)
        for handler, wants in zip(self.handlers, interests or [None] * len(self.handlers),
                                  strict=True):
            if wants is None or pair in wants:
                try:
                    handler.handle(session, event)
                except Exception as exc:
                    raise HandlerFailed(type(handler).__name__, exc) from exc

    def _dispatch(self, session: Session, event: OutboxEvent, now: datetime,
                  interests: list[set[tuple[str, str]] | None] | None = None) -> bool:
        """Hand ``event`` to the handlers that want it in a savepoint: True when all of
        them took it (the caller marks it processed), False when one failed (its work
        undone, the event retried later, marked here)."""
        try:
            with session.begin_nested():
                self._hand_over(session, event, interests)
                self._finish(session)
        except Exception as exc:  # any handler failure: retry the event later
            self._finish(session, failed=True)
            where, cause = (exc.where, exc.cause) if isinstance(exc, HandlerFailed) \
                else ("dispatcher", exc)
            event.attempts += 1
            event.last_error = f"{where}: {type(cause).__name__}: {cause}"[:2000]
            event.available_at = now + retry_delay(event.attempts, self.backoff_seconds)
            log.warning("outbox event %s (%s) failed, attempt %s: %s", event.id,
                        event.event_type, event.attempts, event.last_error)
            event.claimed_by, event.claimed_until = self.worker_id, None
            return False
        return True


class HandlerFailed(Exception):
    """A handler raised while handling an event (``where``: the handler's class)."""

    def __init__(self, where: str, cause: Exception):
        super().__init__(f"{where}: {cause}")
        self.where, self.cause = where, cause


def dead_letters(session: Session, *, max_attempts: int = 10,
                 limit: int = 100) -> list[OutboxEvent]:
    """Events no dispatcher will try again (``max_attempts`` failures), newest first."""
    return list(session.execute(
        select(OutboxEvent).where(OutboxEvent.processed_at.is_(None),
                                  OutboxEvent.attempts >= max_attempts)
        .order_by(OutboxEvent.id.desc()).limit(limit)).scalars())
