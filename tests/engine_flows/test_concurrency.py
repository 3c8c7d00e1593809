"""Two people acting on one task at the same moment: exactly one succeeds, the other is
told it is already done (409), and the flow moves on once — on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from engine_flows import handover, tasks
from engine_flows.tasks import Who
from platform_core.errors import Conflict
from platform_core.models import utcnow
from platform_core.security.models import User
from platform_core.security.principal import load_principal
from tests.engine_flows.flows_setup import API, linear

ROUNDS = 3


def _together(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` in threads released at once; their results (or exceptions)."""
    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - the losing side's error is the result
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _pool_flow(world):
    for name in ("r1", "r2"):
        world.user(name, "risk")
    world.flow(linear("race", [
        {"id": "check", "type": "user_task", "assignee": {"strategy": "role", "role": "risk"},
         "fields": {"editable": ["note"]}},
        {"id": "after", "type": "user_task", "assignee": {"strategy": "initiator"}}]))


def _after_steps(world, run_id):
    inst = world.instance("race", run_id)
    done = [t for t in inst["tasks"] if t["node"] == "check" and t["status"] == "done"]
    entered = [h for h in inst["history"] if h["action"] == "step_entered"
               and h["node"] == "after"]
    return len(done), len(entered), [s["node"] for s in inst["current"]]


def _post(world, who, path, body=None):
    return lambda: world.as_(who).post(f"{API}/{path}", json=body or {})


def test_two_candidates_completing_one_task_over_http(world):
    _pool_flow(world)
    for i in range(ROUNDS):
        run = world.start("race", world.case())
        task = world.task_of("r1", run["id"])
        responses = _together(
            _post(world, "r1", f"tasks/{task['id']}/complete", {"data": {"note": f"r1-{i}"}}),
            _post(world, "r2", f"tasks/{task['id']}/complete", {"data": {"note": f"r2-{i}"}}))
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 409], [r.text for r in responses]
        loser = next(r for r in responses if r.status_code == 409).json()
        assert loser["code"] == "task_closed"
        winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
        assert world.record(run["record_id"])["note"] == f"{('r1', 'r2')[winner]}-{i}"
        assert _after_steps(world, run["id"]) == (1, 1, ["after"])


def test_one_person_on_two_clients_completes_once(world):
    world.user("alice", "sales")
    world.flow(linear("race", [
        {"id": "check", "type": "user_task", "assignee": {"strategy": "users",
                                                          "users": ["alice"]}},
        {"id": "after", "type": "user_task", "assignee": {"strategy": "initiator"}}]))
    from fastapi.testclient import TestClient

    second = TestClient(world.app, raise_server_exceptions=False)
    second.headers["Authorization"] = world.as_("alice").headers["Authorization"]
    for _ in range(ROUNDS):
        run = world.start("race", world.case())
        task = world.task_of("alice", run["id"])
        url = f"{API}/tasks/{task['id']}/complete"
        responses = _together(lambda u=url: world.as_("alice").post(u, json={}),
                               lambda u=url: second.post(u, json={}))
        assert sorted(r.status_code for r in responses) == [200, 409]
        assert _after_steps(world, run["id"]) == (1, 1, ["after"])


def test_two_candidates_claiming_at_once(world):
    _pool_flow(world)
    run = world.start("race", world.case())
    task = world.task_of("r1", run["id"])
    responses = _together(_post(world, "r1", f"tasks/{task['id']}/claim"),
                          _post(world, "r2", f"tasks/{task['id']}/claim"))
    assert sorted(r.status_code for r in responses) in ([200, 404], [200, 409])
    owners = {r.json()["task"]["assignee_id"] for r in responses if r.status_code == 200}
    assert len(owners) == 1
    assert world.instance("race", run["id"])["tasks"][0]["assignee_id"] in owners


def _who(world, name) -> Who:
    with world.db.read() as s:
        principal = load_principal(s, s.get(User, world.users[name]), via="test")
    return Who(principal, None, utcnow())


def test_two_transactions_calling_the_service_at_once(world):
    _pool_flow(world)
    people = [_who(world, "r1"), _who(world, "r2")]
    for _ in range(ROUNDS):
        run = world.start("race", world.case())
        task_id = world.task_of("r1", run["id"])["id"]

        def complete(who: Who, task_id: int = task_id) -> int:
            with world.db.write() as s:
                return tasks.complete(s, task_id, who).id

        results = _together(*(lambda w=w: complete(w) for w in people))
        assert sorted(type(r).__name__ for r in results) == ["TaskClosed", "int"], results
        assert all(isinstance(r, (int, Conflict)) for r in results)
        assert _after_steps(world, run["id"]) == (1, 1, ["after"])


def test_a_transfer_racing_a_completion(world):
    _pool_flow(world)
    world.user("alice", "sales")
    run = world.start("race", world.case())
    task = world.task_of("r1", run["id"])
    r1 = _who(world, "r1")

    def transfer() -> int:
        with world.db.write() as s:
            return handover.transfer(s, task["id"], r1, to=world.users["alice"]).id

    def complete() -> int:
        with world.db.write() as s:
            return tasks.complete(s, task["id"], r1).id

    results = _together(transfer, complete)
    # whichever goes second finds the task done (409) or no longer r1's (404)
    assert sum(isinstance(r, int) for r in results) == 1, results
    inst = world.instance("race", run["id"])
    check = [t for t in inst["tasks"] if t["node"] == "check"][0]
    if check["status"] == "done":
        assert check["completed_by"] == world.users["r1"]
        assert [s["node"] for s in inst["current"]] == ["after"]
    else:
        assert check["assignee_id"] == world.users["alice"]


def test_two_starts_at_once_share_out_round_robin_work(world):
    for name in ("r1", "r2"):
        world.user(name, "risk")
    world.flow(linear("rr", [{"id": "work", "type": "user_task",
                              "assignee": {"strategy": "round_robin", "role": "risk"}}]))
    for _ in range(ROUNDS):
        records = [world.case(), world.case()]
        responses = _together(*(lambda r=r: world.admin.post(
            f"{API}/apps/bank/flows/rr/instances", json={"record_id": r}) for r in records))
        assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
        given = sorted(r.json()["current"][0]["assignees"][0]["id"] for r in responses)
        assert given == sorted(world.users[n] for n in ("r1", "r2"))


def test_two_starts_on_one_record_at_once_make_one_instance(world):
    world.user("alice", "sales")
    world.flow(linear("once", [{"id": "work", "type": "user_task",
                                "assignee": {"strategy": "users", "users": ["alice"]}}]))
    for _ in range(ROUNDS):
        record = world.case()
        start = _post(world, "alice", "apps/bank/flows/once/instances", {"record_id": record})
        responses = _together(start, start)
        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in
                                                                        responses]
        running = [r for r in world.open_tasks("alice") if r["record_id"] == record]
        assert len(running) == 1
