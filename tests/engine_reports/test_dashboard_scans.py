"""A dashboard read through the API shares its scans (engine_reports/fusion.py and, on
PostgreSQL, grouping_sets.py: one GROUPING SETS statement, split by block ranges over
connections that share one snapshot). Every widget must show what its report shows
alone, for an administrator and for a salesperson who reads only their own records."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from sqlalchemy import event

from engine_reports import fusion, grouping_sets
from platform_core.store import Actor, create_records
from tests.engine_flows.flows_setup import APP, ok
from tests.engine_reports import test_differential

ledger = test_differential.ledger  # the fixture: the ledger form, published

MEASURES = [{"agg": "sum", "field": "m"}, {"agg": "count"}, {"agg": "avg", "field": "n"},
            {"agg": "avg", "field": "m"}, {"agg": "max", "field": "m"},
            {"agg": "min", "field": "d"}]
MONTH = {"field": "d", "bucket": "month"}
WIDGETS = {
    "by_u_month": {"dimensions": [{"field": "u"}, MONTH], "measures": MEASURES},
    "top_u": {"dimensions": [{"field": "u"}], "measures": MEASURES,
              "sort": [{"measure": 0, "desc": True}], "limit": 2},
    "by_quarter": {"dimensions": [{"field": "d", "bucket": "quarter"}],
                   "measures": MEASURES},
    "total": {"dimensions": [], "measures": MEASURES, "chart": {"type": "kpi"}},
    "by_t_u": {"dimensions": [{"field": "t"}, {"field": "u"}],
               "measures": [{"agg": "count"}, {"agg": "avg", "field": "n"}]},
    "by_t": {"dimensions": [{"field": "t"}], "measures": [{"agg": "count"}]},
}


@pytest.fixture(autouse=True)
def _fresh_counts():
    fusion.GROUPS_SEEN.clear()
    fusion.MS_SEEN.clear()
    yield


@pytest.fixture
def board(world, ledger):
    """Two salespeople (own records only), 360 ledger records (a third each theirs, a
    third the system's) and a dashboard of the widgets above."""
    db, pub = ledger
    world.role("seller", ("read",), scope="own")
    owners = [world.user("li", "seller"), world.user("wang", "seller"), None]
    for key, spec in WIDGETS.items():
        ok(world.admin.post(f"{APP}/reports", json={
            "key": key, "name": key, "source": {"form": "ledger"},
            "chart": {"type": "table"}, **spec}), 201)
    ok(world.admin.post(f"{APP}/dashboards", json={
        "key": "board", "name": "看板", "widgets": [
            {"report": key, "x": 0, "y": i, "w": 6, "h": 2} for i, key in enumerate(WIDGETS)]}),
       201)
    rng = random.Random(7)
    with db.write() as s:
        for owner in owners:
            items = [pub.fields.coerce({
                "u": rng.choice(["华东", "华北", "华南"]), "t": rng.choice(["a", "b", None]),
                "n": rng.choice([None, 1, 2.5, 7]),
                "m": rng.choice([None, "0.01", "10.00", "-5.50", "1234.56"]),
                "d": f"202{rng.randrange(5, 7)}-{rng.randrange(1, 13):02d}-15"})
                for _ in range(120)]
            create_records(s, app="bank", form="ledger", items=items,
                           actor=Actor(user_id=owner, name="seed"))
    return world


def same_rows(got: list[list[Any]], want: list[list[Any]]) -> bool:
    """Equal, averages to a relative 1e-9 (a shared scan divides the sum by the count)."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if len(g) != len(w):
            return False
        for x, y in zip(g, w, strict=True):
            if isinstance(x, float) or isinstance(y, float):
                if x is None or y is None or not math.isclose(x, y, rel_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


def statements_of(db: Any) -> list[str]:
    seen: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def note(_conn, _cursor, statement, *_args):
        seen.append(statement)

    return seen


@pytest.mark.parametrize("who", ["admin", "li"])
def test_every_widget_equals_its_report_alone(board, monkeypatch, who):
    monkeypatch.setattr(grouping_sets, "SPLIT_MIN_BYTES", 0)  # split even this table
    client = board.admin if who == "admin" else board.as_(who)
    seen = statements_of(board.db)
    widgets = ok(client.get(f"{APP}/dashboards/board/data"))["widgets"]
    if board.db.dialect == "postgresql":
        assert sum("GROUPING SETS" in s for s in seen) >= 2  # one statement, in parts
        assert any(s.startswith("SET TRANSACTION SNAPSHOT") for s in seen)
    assert [w["report"] for w in widgets] == list(WIDGETS)
    for w in widgets:
        alone = ok(client.get(f"{APP}/reports/{w['report']}/data"))
        assert same_rows(w["data"]["rows"], alone["rows"]), (w["report"], w["data"]["rows"],
                                                              alone["rows"])
    total = next(w for w in widgets if w["report"] == "total")["data"]["rows"][0]
    assert total[1] == (360 if who == "admin" else 120)  # li counts only her records


def test_the_second_read_takes_the_same_numbers(board, monkeypatch):
    """Statements are planned from what the first read saw (group counts, times): the
    second read of the dashboard shows the same numbers."""
    monkeypatch.setattr(grouping_sets, "SPLIT_MIN_BYTES", 0)
    first = ok(board.admin.get(f"{APP}/dashboards/board/data"))["widgets"]
    second = ok(board.admin.get(f"{APP}/dashboards/board/data",
                                params={"params": json.dumps({})}))["widgets"]
    for a, b in zip(first, second, strict=True):
        assert same_rows(a["data"]["rows"], b["data"]["rows"]), a["report"]
