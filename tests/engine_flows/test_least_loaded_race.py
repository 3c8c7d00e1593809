"""Two flow starts at the same moment with ``least_loaded``: the second cannot pick the
person the first has just chosen (the count is taken under the pool's lock, so the
second waits for the first to commit its task) — on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from sqlalchemy import select

from engine_flows.instances import start_run
from engine_flows.models import Task
from platform_core.models import utcnow
from platform_core.store import Actor
from tests.engine_flows.flows_setup import linear

ADMIN = Actor(user_id=None, name="admin")


def _chosen(s, run_id):
    return s.execute(select(Task.assignee_id).where(Task.run_id == run_id)).scalar_one()


def test_the_second_of_two_simultaneous_starts_waits_and_picks_the_other_person(world):
    for name in ("r1", "r2"):
        world.user(name, "risk")
    world.flow(linear("ll", [{"id": "work", "type": "user_task",
                              "assignee": {"strategy": "least_loaded", "role": "risk"}}]))
    records = [world.case(), world.case()]
    first_chose, let_first_commit = threading.Event(), threading.Event()
    picked: dict[str, int] = {}

    def first() -> None:
        with world.db.write() as s:
            run = start_run(s, app="bank", flow="ll", record_id=records[0], actor=ADMIN,
                            now=utcnow())
            picked["first"] = _chosen(s, run.id)
            first_chose.set()
            let_first_commit.wait(timeout=30)  # still open: its task is not committed

    def second() -> None:
        with world.db.write() as s:
            run = start_run(s, app="bank", flow="ll", record_id=records[1], actor=ADMIN,
                            now=utcnow())
            picked["second"] = _chosen(s, run.id)

    one = threading.Thread(target=first)
    one.start()
    assert first_chose.wait(timeout=30)
    two = threading.Thread(target=second)
    two.start()
    two.join(timeout=1.0)
    waited = two.is_alive()  # blocked behind the first's lock, not counting without it
    let_first_commit.set()
    one.join(timeout=30)
    two.join(timeout=30)
    assert waited
    assert sorted(picked.values()) == sorted(world.users[n] for n in ("r1", "r2"))
