"""A dashboard's widgets share their scans (engine_reports/fusion.py): random sets of
reports over the same rows, run as one batch, each equal the plain-Python reference —
the same check the differential tests make of a report run alone — on the typed
projection and on the JSON documents, on SQLite and PostgreSQL. Named cases pin that
sharing happens (fewer statements than widgets) and the boundaries: a total over no
rows, coarser date buckets, a distinct count, a different row scope."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine_reports import fusion, grouping_sets
from engine_reports.frames import form_frame
from engine_reports.running import execute
from engine_reports.spec import parse_report
from platform_core.store import create_records
from platform_core.store.projection import drop_projection, ensure_projection
from tests.engine_reports import test_differential
from tests.engine_reports.reports_setup import ACTOR, differences, expected, rolled_back
from tests.engine_reports.test_differential import coarse_dimensions, filters, record, specs

ledger = test_differential.ledger  # the fixture: the ledger form, published


@pytest.fixture(autouse=True)
def _fresh_counts():
    """Statements merge by the groups they had before: each test starts with none seen
    (the random dashboards run with whatever their examples taught)."""
    fusion.GROUPS_SEEN.clear()
    fusion.MS_SEEN.clear()
    yield


def run_batch(ledger: Any, raws: list[dict[str, Any]], rows: list[dict[str, Any]],
              *, project: bool = True) -> tuple[list[Any], fusion.Batch]:
    """Each report's (keys, values, truncated) from one batch, and the batch (its
    statements planned and run)."""
    db, pub = ledger
    reports = [parse_report(r) for r in raws]
    with rolled_back(db) as s:
        ensure_projection(s, pub.fields)
        create_records(s, app=pub.app, form=pub.spec.key,
                       items=[pub.fields.coerce(r) for r in rows], actor=ACTOR)
        if not project:
            drop_projection(s, pub.app, pub.spec.key)
        frame = form_frame(s, pub)
        assert bool(frame.money_fen) == project
        batch = fusion.Batch()
        with fusion.batch(batch):
            for spec in reports:
                assert execute(s, spec, frame, spec.filters)[1] == []  # noted, no rows
        batch.run_in(s)
        with fusion.batch(batch):
            got = [execute(s, spec, frame, spec.filters)[1:] for spec in reports]
        return got, batch


def check(ledger: Any, raws: list[dict[str, Any]], rows: list[dict[str, Any]]
          ) -> fusion.Batch:
    """Every report of the batch equals Python's result on both frames; the projection's
    batch (``groupings``: the statements planned, one per grouping left after roll-ups
    and merges; ``statements``: those run — on PostgreSQL, one per set of rows)."""
    stored = [ledger[1].fields.coerce(r) for r in rows]
    first = None
    for project in (True, False):
        got, batch = run_batch(ledger, raws, rows, project=project)
        first = first or batch
        for raw, (keys, values, truncated) in zip(raws, got, strict=True):
            spec = parse_report(raw)
            problems = differences(spec, expected(spec, stored), keys, values)
            assert not truncated
            assert not problems, f"projection={project}: {problems[:5]}\nspec={raw}"
    assert first is not None
    return first


SETTINGS = settings(max_examples=int(os.environ.get("QIAO_DIFF_EXAMPLES", "25")),
                    deadline=None, suppress_health_check=[
                        HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def dashboards(draw: Any) -> list[dict[str, Any]]:
    """2 to 6 reports, most over one shared filter (so they share scans), some with the
    dimensions of another one cut down or bucketed coarser (so they roll up)."""
    shared = draw(st.one_of(st.none(), filters))
    out = []
    for _ in range(draw(st.integers(2, 6))):
        raw = draw(specs(dims=st.lists(st.one_of(coarse_dimensions, coarse_dimensions),
                                       max_size=2)))
        if draw(st.integers(0, 3)):
            raw.pop("filters", None)
            if shared is not None:
                raw["filters"] = shared
        out.append(raw)
    base = out[0]
    for dims in ([], base["dimensions"][:1], [
            dict(d, bucket="year") if d.get("bucket") in ("month", "quarter") else d
            for d in base["dimensions"]]):
        if draw(st.booleans()):
            out.append(dict(base, dimensions=dims, sort=[s for s in base.get("sort", [])
                                                         if "measure" in s]))
    return out


@SETTINGS
@given(raws=dashboards(), rows=st.lists(record, max_size=40))
def test_random_dashboards_share_scans_and_equal_python(ledger, raws, rows):
    note(f"specs={raws}\nrecords={rows}")
    check(ledger, raws, rows)


# -- named cases ---------------------------------------------------------------------------


def report(dimensions: list[dict[str, Any]], measures: list[dict[str, Any]],
           **extra: Any) -> dict[str, Any]:
    return {"key": "named", "name": "用例", "source": {"form": "ledger"},
            "dimensions": dimensions, "measures": measures, **extra}


SUM_COUNT_AVG = [{"agg": "sum", "field": "m"}, {"agg": "count"},
                 {"agg": "avg", "field": "n"}, {"agg": "avg", "field": "m"},
                 {"agg": "min", "field": "d"}, {"agg": "max", "field": "m"}]
ROWS = [{"u": u, "t": t, "d": d, "n": n, "m": m}
        for u, t, d, n, m in [("华东", "a", "2026-01-31", 1, "10.00"),
                              ("华东", "b", "2026-02-01", 2, "0.01"),
                              ("华北", "a", "2026-04-01", 3, "-5.50"),
                              ("华北", None, "2026-12-31", None, None),
                              ("华南", "b", "2025-12-31", 0.5, "100.00")]]


def pg(ledger: Any) -> bool:
    return ledger[0].dialect == "postgresql"


def test_a_management_dashboard_runs_in_fewer_statements(ledger):
    """By region × month, by region, by month, by quarter, by year, the total: one
    grouping; by text × region and by text: a second. On PostgreSQL both read the rows
    in one statement (GROUPING SETS)."""
    month = {"field": "d", "bucket": "month"}
    raws = [report([{"field": "u"}, month], SUM_COUNT_AVG),
            report([{"field": "u"}], SUM_COUNT_AVG, sort=[{"measure": 0, "desc": True}],
                   limit=2),
            report([month], SUM_COUNT_AVG),
            report([{"field": "d", "bucket": "quarter"}], SUM_COUNT_AVG),
            report([{"field": "d", "bucket": "year"}], SUM_COUNT_AVG[:2]),
            report([], SUM_COUNT_AVG),
            report([{"field": "t"}, {"field": "u"}], [{"agg": "count"}]),
            report([{"field": "t"}], [{"agg": "count"}])]
    batch = check(ledger, raws, ROWS)
    assert (batch.groupings, batch.statements) == ((2, 1) if pg(ledger) else (2, 2))


def test_each_widget_s_statement_is_compiled_once_for_both_passes(ledger, monkeypatch):
    """The second pass takes the plan the first compiled and noted: a report shown
    twice, and each report across the two passes, compiles once; the numbers are the
    plain-Python ones (``check``)."""
    from engine_reports import compiler

    compiled = []
    plan = compiler.Compiler.plan
    monkeypatch.setattr(compiler.Compiler, "plan",
                        lambda self, *a, **k: compiled.append(1) or plan(self, *a, **k))
    month = {"field": "d", "bucket": "month"}
    raws = [report([{"field": "u"}, month], SUM_COUNT_AVG), report([month], SUM_COUNT_AVG),
            report([month], SUM_COUNT_AVG),
            report([{"field": "u"}], SUM_COUNT_AVG, sort=[{"measure": 0, "desc": True}],
                   limit=2)]
    check(ledger, raws, ROWS)
    assert len(compiled) == 2 * 3  # two batches (projection, JSON), three distinct reports


def test_the_second_time_small_groupings_merge_into_one_statement(ledger):
    """SQLite: once their group counts are known (a handful each), by region × month, by
    text, by value bins and the total run as one statement, with the same numbers.
    PostgreSQL reads the rows once for all groupings from the first time: nothing to
    merge."""
    month = {"field": "d", "bucket": "month"}
    raws = [report([{"field": "u"}, month], SUM_COUNT_AVG),
            report([{"field": "t"}], [{"agg": "count"}, {"agg": "sum", "field": "m"}]),
            report([{"field": "n", "bins": [0, 1, 2]}], [{"agg": "count"}]),
            report([], SUM_COUNT_AVG)]
    first, second = check(ledger, raws, ROWS), check(ledger, raws, ROWS)
    if pg(ledger):
        assert [(b.groupings, b.statements) for b in (first, second)] == [(3, 1), (3, 1)]
    else:
        assert (first.groupings, second.groupings) == (3, 1)
    # a distinct count is never merged away: its grouping stays its own
    raws.append(report([{"field": "u"}], [{"agg": "count_distinct", "field": "t"}]))
    check(ledger, raws, ROWS)
    batch = check(ledger, raws, ROWS)
    assert (batch.groupings, batch.statements) == ((4, 1) if pg(ledger) else (2, 2))


def test_a_total_over_no_rows_is_one_row_when_rolled_up(ledger):
    raws = [report([{"field": "u"}], SUM_COUNT_AVG), report([], SUM_COUNT_AVG)]
    assert check(ledger, raws, []).groupings == 1


def test_a_total_over_no_rows_is_one_row_beside_another_grouping(ledger):
    """The total is its own grouping set here (its distinct count cannot be rolled up):
    over no rows it still answers one row of zero counts and blank sums."""
    raws = [report([{"field": "u"}], SUM_COUNT_AVG),
            report([], [{"agg": "count_distinct", "field": "t"}, *SUM_COUNT_AVG])]
    batch = check(ledger, raws, [])
    assert (batch.groupings, batch.statements) == ((2, 1) if pg(ledger) else (2, 2))


def test_a_distinct_count_is_never_rolled_up(ledger):
    raws = [report([{"field": "u"}, {"field": "t"}], [{"agg": "count"}]),
            report([{"field": "u"}], [{"agg": "count_distinct", "field": "t"}])]
    assert check(ledger, raws, ROWS).groupings == 2


def test_weeks_come_from_days_and_different_filters_do_not_share(ledger):
    day = {"field": "d", "bucket": "day"}
    raws = [report([day], SUM_COUNT_AVG), report([{"field": "d", "bucket": "week"}],
                                                 SUM_COUNT_AVG),
            report([day], [{"agg": "count"}], filters={"field": "u", "op": "eq",
                                                       "value": "华东"})]
    batch = check(ledger, raws, ROWS)
    assert (batch.groupings, batch.statements) == (2, 2)  # two sets of rows: two scans


def test_a_combined_result_that_may_be_cut_hands_nothing_out(ledger, monkeypatch):
    """When the one statement of several groupings reaches its limit, some grouping may
    be cut: every widget then runs its own statement, with the same numbers."""
    if not pg(ledger):
        pytest.skip("SQLite runs each grouping's statement on its own")
    monkeypatch.setattr(grouping_sets, "MAX_GROUPS", 1)  # limit: 2 rows per grouping
    raws = [report([{"field": "u"}], [{"agg": "count_distinct", "field": "t"}]),
            report([{"field": "t"}], [{"agg": "count_distinct", "field": "u"}])]
    batch = check(ledger, raws, ROWS)
    assert (batch.groupings, batch.statements) == (2, 1)
    assert batch.rows == {}  # nothing shared: each widget ran its own statement
