"""A flow writing the record while a person's edit of it commits (PostgreSQL: writers
really run at once there; SQLite lets one writer in at a time).

A task completed with data and a service step's ``set_fields`` read the record and then
write it. Without a lock, an edit committing between the two turned the flow's write into
"changed by someone else": the person's whole completion failed with a conflict. Now the
flow holds the row before reading it: the edit goes first and the flow writes on top of
it, keeping both changes."""

from __future__ import annotations

import threading

import pytest

from platform_core.store import Actor, update_record
from tests.conftest import PG_URL
from tests.engine_flows.flows_setup import linear, stamp_flow

pytestmark = pytest.mark.skipif(not PG_URL, reason="concurrent writers need PostgreSQL "
                                                   "(QIAO_TEST_DATABASE_URL)")


def _while_an_edit_commits(world, record_id: int, change: dict, act) -> None:  # noqa: ANN001
    """Run ``act`` while a person's edit of the record holds its row, committed 1 s later."""
    editing, release = threading.Event(), threading.Event()

    def edit() -> None:
        with world.db.write() as s:
            update_record(s, record_id, changes=change, expected_version=1,
                          actor=Actor(user_id=None, name="a person"))
            editing.set()
            release.wait(30)

    person = threading.Thread(target=edit)
    person.start()
    try:
        assert editing.wait(30)
        threading.Timer(1.0, release.set).start()
        act()
    finally:
        release.set()
        person.join(30)


def test_completing_a_task_with_data_while_the_record_is_edited_keeps_both(world):
    world.user("li", "sales")
    world.flow(linear("fill", [{"id": "work", "type": "user_task",
                                "assignee": {"strategy": "users", "users": ["li"]},
                                "fields": {"editable": ["note"]}}]))
    rec = world.case(region="华东")
    run = world.start("fill", rec)
    task = world.task_of("li", run["id"])
    _while_an_edit_commits(world, rec, {"region": "华北"},
                           lambda: world.act("li", task["id"], data={"note": "材料齐全"}))
    data = world.record(rec)
    assert data["region"] == "华北" and data["note"] == "材料齐全"
    assert world.current("fill", run["id"]) == []  # the flow went on to its end


def test_a_set_fields_step_while_the_record_is_edited_keeps_both(world):
    world.user("li", "sales")
    world.flow(stamp_flow())
    rec = world.case(region="华东")
    run = world.start("stamp", rec)
    task = world.task_of("li", run["id"])
    _while_an_edit_commits(world, rec, {"region": "华北"},
                           lambda: world.act("li", task["id"]))
    data = world.record(rec)
    assert data["region"] == "华北" and data["note"] == "已受理"
