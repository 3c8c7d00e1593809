"""Staff handover (issue 18): a salesperson's customers, open tasks and candidate rows
moved to two colleagues — previewed, then applied in one audited transaction — through
the API, the service's refusals, a team lead's limits and ``qiao user handover``."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from platform_core.errors import Conflict
from platform_core.security.models import AuditEntry, User
from tests.engine_flows.flows_setup import API, APP, World, linear, ok

HANDOVER = API + "/users/{}/handover"
OWNER_STEP = {"id": "call", "type": "user_task", "name": "回访",
              "assignee": {"strategy": "field", "field": "owner"}}
POOL_STEP = {"id": "pool", "type": "user_task", "name": "抢单",
             "assignee": {"strategy": "users", "users": ["li", "zhao"]}}


def _team(world: World) -> None:
    """East (lead: a user manager) with sellers li, wang, zhao; West with sun. Sellers
    see only their own cases."""
    world.role("seller", ("create", "read", "update"), scope="own")
    world.department("East")
    world.department("West")
    world.user("lead", "manager", department="East")
    for name in ("li", "wang", "zhao"):
        world.user(name, "seller", department="East")
    world.user("sun", "seller", department="West")


def _cases(world: World, n: int = 5) -> list[int]:
    """``n`` cases of li, the first one changed twice (its history), one flow task for
    li on the first and a pool task li and zhao may claim on the second."""
    ids = [world.case("li", title=f"客户{i}", region="华东") for i in range(n)]
    first = f"{APP}/forms/case/records/{ids[0]}"
    ok(world.as_("li").patch(first, json={"note": "首次面谈"}, headers={"If-Match": '"1"'}))
    ok(world.as_("li").patch(first, json={"amount": "500000.00"},
                             headers={"If-Match": '"2"'}))
    world.flow(linear("follow", [OWNER_STEP]))
    world.flow(linear("grab", [POOL_STEP]))
    world.start("follow", ids[0], "li")
    world.start("grab", ids[1], "li")
    return ids


def _visible(world: World, who: str) -> list[int]:
    items = ok(world.as_(who).get(f"{APP}/forms/case/records"))["items"]
    return sorted(r["id"] for r in items)


def _audit(world: World, action: str) -> list[AuditEntry]:
    with world.db.read() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.id)).scalars())


def _ask(world: World, who: str, source: str, to: list[str], **body: Any) -> Any:
    client = world.admin if who == "admin" else world.as_(who)
    return client.post(HANDOVER.format(world.users[source]), json={
        "to": [world.users[u] for u in to], **body})


def test_a_salesperson_hands_over_to_two_colleagues(world):
    _team(world)
    ids = _cases(world)
    preview = ok(_ask(world, "admin", "li", ["wang", "zhao"], dry_run=True))
    wang, zhao = str(world.users["wang"]), str(world.users["zhao"])
    assert preview["dry_run"] is True and preview["records"] == 5
    assert preview["forms"] == [{"app": "bank", "form": "case", "count": 5,
                                 "by_user": {wang: 3, zhao: 2}}]
    assert preview["tasks"] == 1 and preview["candidates"] == 1
    assert preview["flow_references"] == [{"app": "bank", "flow": "grab", "node": "pool"}]
    assert _visible(world, "li") == ids and _audit(world, "record.handover") == []

    done = ok(_ask(world, "admin", "li", ["wang", "zhao"]))
    for key in ("forms", "records", "records_by_user", "tasks", "tasks_by_user",
                "candidates", "signers"):
        assert done[key] == preview[key], key
    assert _visible(world, "li") == []  # own scope: the old owner no longer sees them
    mine = {name: _visible(world, name) for name in ("wang", "zhao")}
    assert sorted(mine["wang"] + mine["zhao"]) == ids
    assert (len(mine["wang"]), len(mine["zhao"])) == (3, 2)

    # the new owner sees the whole history, the earlier changes included
    keeper = "wang" if ids[0] in mine["wang"] else "zhao"
    history = ok(world.as_(keeper).get(f"{APP}/forms/case/records/{ids[0]}/history"))
    items = history["items"] if isinstance(history, dict) else history
    diffs = [i["diff"] for i in items]
    assert any("note" in d for d in diffs) and any("amount" in d for d in diffs)
    assert diffs[-1]["owner_id"] == [world.users["li"], world.users[keeper]]

    # the open task followed its record to the new owner; the pool's candidate row too
    assert [t["record_id"] for t in world.open_tasks(keeper)] == [ids[0]]
    assert world.open_tasks("li") == []
    pool_owner = "wang" if ids[1] in mine["wang"] else "zhao"
    pool = ok(world.as_(pool_owner).get(f"{API}/tasks", params={"status": "open"}))
    assert ids[1] in [t["record_id"] for t in pool["items"]]

    # one audit entry per moved record and one for the operation, with its counts
    entries = _audit(world, "record.handover")
    assert sorted(int(e.target.rsplit("/", 1)[1]) for e in entries) == ids
    operation = _audit(world, "user.handover")
    assert len(operation) == 1 and operation[0].detail["records"] == 5
    assert operation[0].target == f"user:{world.users['li']}"
    assert "record.updated" in world.event_types()
    assert "task.reassigned" in world.event_types()


def test_the_rule_split_and_one_form(world):
    """by_field: 华北 cases to zhao, the rest dealt evenly."""
    _team(world)
    north = [world.case("li", title=f"北{i}", region="华北") for i in range(2)]
    east = [world.case("li", title=f"东{i}", region="华东") for i in range(2)]
    body = {"split": "by_field", "forms": [{"app": "bank", "form": "case"}],
            "rule": {"field": "region", "map": {"华北": world.users["zhao"]}}}
    done = ok(_ask(world, "admin", "li", ["wang", "zhao"], **body))
    assert done["records"] == 4
    assert set(north) <= set(_visible(world, "zhao"))
    assert len(set(east) & set(_visible(world, "wang"))) == 1


def test_refusals_are_clear_and_write_nothing(world):
    _team(world)
    _cases(world, 2)
    with world.db.write() as s:
        s.get(User, world.users["sun"]).status = "disabled"
    cases = {
        "no colleague": ([], {}),
        "oneself": (["li"], {}),
        "disabled": (["sun"], {}),
        "split": (["wang"], {"split": "dice"}),
        "rule": (["wang"], {"split": "by_field"}),
        "rule user": (["wang"], {"split": "by_field",
                                 "rule": {"field": "region", "map": {"x": 99999}}}),
    }
    for name, (to, body) in cases.items():
        response = _ask(world, "admin", "li", to, **body)
        assert response.status_code == 422, (name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["detail"], name
    unknown = _ask(world, "admin", "li", ["wang"], forms=[{"app": "bank", "form": "nope"}])
    assert unknown.status_code == 404
    nothing = _ask(world, "admin", "wang", ["zhao"])
    assert nothing.status_code == 422 and "nothing to hand over" in nothing.json()["detail"]
    assert _audit(world, "user.handover") == [] and len(_visible(world, "li")) == 2


def test_all_or_nothing(world, monkeypatch):
    """A failure after the records moved rolls everything back."""
    _team(world)
    ids = _cases(world, 3)

    def broken(*_a: Any, **_k: Any) -> None:
        raise Conflict("a flow changed meanwhile")

    monkeypatch.setattr("engine_flows.staff_handover.move_candidates", broken)
    assert _ask(world, "admin", "li", ["wang"]).status_code == 409
    assert _visible(world, "li") == ids and _visible(world, "wang") == []
    assert _audit(world, "record.handover") == [] and world.open_tasks("li")


def test_a_team_lead_within_their_tree(world):
    _team(world)
    ids = _cases(world, 2)
    world.case("sun", title="西部客户")
    outside = _ask(world, "lead", "li", ["sun"], dry_run=True)
    assert outside.status_code == 422 and "department tree" in outside.json()["detail"]
    assert _ask(world, "lead", "sun", ["li"], dry_run=True).status_code == 404
    assert _ask(world, "li", "wang", ["zhao"], dry_run=True).status_code == 403
    ok(_ask(world, "lead", "li", ["wang"]))
    assert _visible(world, "wang") == ids
    assert _audit(world, "user.handover")[0].actor_name == "lead"


def test_the_command(world, database_url, tmp_path, monkeypatch):
    """``qiao user handover li --to wang --to zhao``: the preview, then the result."""
    from engine_flows.cli import register
    from platform_core.cli import app as cli

    _team(world)
    _cases(world, 3)
    register(cli)
    monkeypatch.setenv("QIAO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QIAO_DATABASE_URL", database_url)
    runner = CliRunner()
    dry = runner.invoke(cli, ["user", "handover", "li", "--to", "wang", "--to", "zhao",
                              "--app", "bank", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "bank.case: 3 record(s) to move → wang 2, zhao 1" in dry.output
    assert "done" not in dry.output and len(_visible(world, "li")) == 3
    done = runner.invoke(cli, ["user", "handover", "li", "--to", "wang", "--to", "zhao"])
    assert done.exit_code == 0, done.output
    assert "bank.case: 3 record(s) moved → wang 2, zhao 1" in done.output
    assert _visible(world, "li") == [] and len(_visible(world, "wang")) == 2
    again = runner.invoke(cli, ["user", "handover", "li", "--to", "li"])
    assert again.exit_code == 2 and "themself" in again.output


@pytest.mark.parametrize("split", ["even"])
def test_counts_differ_by_at_most_one(world, split):
    _team(world)
    for i in range(7):
        world.case("li", title=f"c{i}")
    done = ok(_ask(world, "admin", "li", ["wang", "zhao", "lead"], split=split,
                   dry_run=True))
    counts = sorted(done["forms"][0]["by_user"].values())
    assert sum(counts) == 7 and counts[-1] - counts[0] <= 1
