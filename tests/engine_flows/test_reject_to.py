"""A step's ``reject_to``: the only earlier steps a rejection may send the work back to —
checked on publish (earlier steps people act on, with reject allowed) and when someone
rejects (another earlier step is refused with the step's own words)."""

from __future__ import annotations

from tests.engine_flows.flows_setup import APP, linear, ok

ALICE, BOB, CAROL = ({"strategy": "users", "users": [u]} for u in ("alice", "bob", "carol"))


def _chain(reject_to, key="chain"):
    """apply (alice) → check (bob) → sign (carol, back only to ``reject_to``) → end."""
    return linear(key, [
        {"id": "apply", "type": "user_task", "assignee": ALICE},
        {"id": "check", "type": "user_task", "assignee": BOB},
        {"id": "sign", "type": "approval", "assignee": CAROL, "reject_to": reject_to}],
        edges=None) | {"edges": [
            {"from": "start", "to": "apply"}, {"from": "apply", "to": "check"},
            {"from": "check", "to": "sign"}, {"from": "sign", "to": "end", "on": "approve"},
            {"from": "sign", "to": "apply", "on": "reject"}]}


def _at_sign(world):
    for name in ("alice", "bob", "carol"):
        world.user(name, "sales")
    world.flow(_chain(["check"]))
    run = world.start("chain", world.case())
    world.act("alice", world.task_of("alice", run["id"])["id"])
    world.act("bob", world.task_of("bob", run["id"])["id"])
    return run


def test_a_reject_goes_back_only_to_the_listed_steps(world):
    run = _at_sign(world)
    sign = world.task_of("carol", run["id"])["id"]
    refused = world.act("carol", sign, "reject", status=422, to="apply")
    assert "check" in refused["detail"] and world.current("chain", run["id"]) == ["sign"]
    world.act("carol", sign, "reject", to="check", comment="核对流水")
    assert world.current("chain", run["id"]) == ["check"]


def test_reject_to_is_checked_on_publish(world):
    world.user("alice", "sales")
    bad = _chain(["sign", "end", "ghost"], key="bad")
    ok(world.admin.post(f"{APP}/flows", json=bad), 201)
    problems = ok(world.admin.post(f"{APP}/flows/bad/validate"), 422)["problems"]
    assert "sign: reject_to: 'sign' is not an earlier step" in problems, problems
    assert "sign: reject_to: 'end' is not a step people act on" in problems
    assert "sign: reject_to: 'ghost' is not a step people act on" in problems
    no_reject = _chain(["check"], key="closed")
    no_reject["nodes"][3]["allowed_actions"] = ["approve"]
    ok(world.admin.post(f"{APP}/flows", json=no_reject), 201)
    problems = ok(world.admin.post(f"{APP}/flows/closed/validate"), 422)["problems"]
    assert any("reject is not an allowed action" in p for p in problems), problems
