"""A rule's update racing a person's edit of the same record (PostgreSQL: writers really run
at once there; SQLite lets one writer in at a time).

Found by the crash test (``tests/chaos``): a loan case's ``customer_following`` rule
(``update_record`` via ``customer``) failed with "record 1 was changed by someone else"
while an integrator's PATCH of that customer was committing — the rule read the record,
the edit committed, the rule's conditional UPDATE found a newer version: a failed run in
the dead letters, the customer never marked. A rule writes what it decides on the record
as it is: it locks its targets before reading them, so the edit goes first and the rule
then applies its change on top, or the rule goes first and the edit gets its 409.
"""

from __future__ import annotations

import threading

import pytest

from platform_core.store import Actor, update_record
from tests.conftest import PG_URL
from tests.engine_rules.conftest import dispatch
from tests.engine_rules.rules_setup import add_rule, records, runs, visit, visit_form

pytestmark = pytest.mark.skipif(not PG_URL, reason="concurrent writers need PostgreSQL "
                                                   "(QIAO_TEST_DATABASE_URL)")


def _edit_while(world, record_id: int, change: dict, editing: threading.Event,
                release: threading.Event) -> None:
    """A person's edit of ``record_id``: written (the row held), then committed only once
    ``release`` is set."""
    with world.db.write() as s:
        update_record(s, record_id, changes=change, expected_version=1,
                      actor=Actor(user_id=None, name="a person"))
        editing.set()
        release.wait(30)


def _race(world, record_id: int, change: dict) -> None:
    """Dispatch the outbox while a person's edit of the record commits."""
    editing, release = threading.Event(), threading.Event()
    person = threading.Thread(target=_edit_while,
                              args=(world, record_id, change, editing, release))
    person.start()
    try:
        assert editing.wait(30)
        threading.Timer(1.0, release.set).start()  # commits while the rule is at it
        dispatch(world)
    finally:
        release.set()
        person.join(30)


def test_a_rule_updating_a_record_a_person_is_saving_waits_and_keeps_both(world):
    add_rule(world, key="stamp", trigger={"type": "record.created", "form": "case"},
             actions=[{"type": "update_record", "values": {"note": '"已受理"'}}])
    rec = world.case(title="甲", region="华东")
    _race(world, rec, {"region": "华北"})
    [run] = runs(world, "stamp")
    assert run["status"] == "done", run
    data = world.record(rec)
    assert data["region"] == "华北" and data["note"] == "已受理"  # both changes kept


def test_a_rule_tagging_a_record_a_person_is_saving_waits_and_keeps_both(world):
    visit_form(world)
    add_rule(world, key="tag", trigger={"type": "record.created", "form": "visit"},
             actions=[{"type": "set_tags", "field": "tags", "add": ["vip"]}])
    rec = visit(world, subject="电话", tags=["new"])
    _race(world, rec, {"status": "已联系"})
    [run] = runs(world, "tag")
    assert run["status"] == "done", run
    data = records(world, "visit")[0]
    assert data["status"] == "已联系" and sorted(data["tags"]) == ["new", "vip"]
