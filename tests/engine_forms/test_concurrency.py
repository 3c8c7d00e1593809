"""Auto numbers and unique fields under concurrent creates (real threads, real database)."""

from __future__ import annotations

import re
import threading

from engine_forms import forms, publishing, records
from engine_forms.records import DuplicateValue
from engine_forms.validation import RecordInvalid
from platform_core.store import Actor

ADMIN = Actor(user_id=1, name="admin")
TICKET = {"key": "ticket", "name": "工单", "fields": [
    {"key": "no", "label": "编号", "type": "auto_number", "pattern": "T-{YYYY}-{0000}"},
    {"key": "code", "label": "代码", "type": "text", "unique": True}]}


def _setup(db) -> None:
    with db.write() as s:
        forms.create_app(s, key="ops", name="运营")
        forms.create_form(s, app="ops", raw=TICKET)
        publishing.publish(s, app="ops", key="ticket", actor=ADMIN)


def _race(n: int, work) -> list[object]:
    barrier, results = threading.Barrier(n), []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcome: object = work(i)
        except Exception as exc:  # noqa: BLE001 - the outcome is what we assert on
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_twenty_concurrent_creates_get_gap_free_unique_numbers(db):
    _setup(db)

    def create(i: int) -> str:
        with db.write() as s:
            pub = forms.published(s, "ops", "ticket")
            return records.create(s, pub, {"code": f"c{i}"}, actor=ADMIN).data["no"]

    numbers = _race(20, create)
    assert all(isinstance(n, str) for n in numbers), numbers
    assert sorted(int(re.sub(r".*-", "", n)) for n in numbers) == list(range(1, 21))


def test_a_failed_create_does_not_burn_a_number(db):
    _setup(db)
    with db.write() as s:
        pub = forms.published(s, "ops", "ticket")
        records.create(s, pub, {"code": "a"}, actor=ADMIN)
    try:
        with db.write() as s:
            pub = forms.published(s, "ops", "ticket")
            records.create(s, pub, {"code": "b"}, actor=ADMIN)
            raise RuntimeError("the rest of the action failed")
    except RuntimeError:
        pass
    with db.write() as s:
        pub = forms.published(s, "ops", "ticket")
        assert records.create(s, pub, {"code": "c"}, actor=ADMIN).data["no"].endswith("0002")


def test_unique_field_under_concurrent_creates_exactly_one_wins(db):
    _setup(db)

    def create(_i: int) -> int:
        with db.write() as s:
            pub = forms.published(s, "ops", "ticket")
            return records.create(s, pub, {"code": "SAME"}, actor=ADMIN).id

    outcomes = _race(10, create)
    winners = [o for o in outcomes if isinstance(o, int)]
    losers = [o for o in outcomes if isinstance(o, DuplicateValue | RecordInvalid)]
    assert len(winners) == 1 and len(losers) == 9, outcomes


def test_a_unique_field_binds_only_its_own_form(db):
    """Two records of another form may share a value that is unique in this one (the
    unique index once spanned every form's records and refused the second customer
    named like a ticket's code — or like each other)."""
    _setup(db)
    note = {"key": "note", "name": "便签", "fields": [
        {"key": "code", "label": "代码", "type": "text"}]}
    with db.write() as s:
        forms.create_form(s, app="ops", raw=note)
        publishing.publish(s, app="ops", key="note", actor=ADMIN)
    with db.write() as s:
        tickets, notes = forms.published(s, "ops", "ticket"), forms.published(s, "ops", "note")
        records.create(s, tickets, {"code": "same"}, actor=ADMIN)
        records.create(s, notes, {"code": "same"}, actor=ADMIN)
        records.create(s, notes, {"code": "same"}, actor=ADMIN)
    with db.write() as s:
        tickets = forms.published(s, "ops", "ticket")
        try:
            records.create(s, tickets, {"code": "same"}, actor=ADMIN)
        except (DuplicateValue, RecordInvalid):
            pass
        else:
            raise AssertionError("a second ticket with the same code was accepted")
