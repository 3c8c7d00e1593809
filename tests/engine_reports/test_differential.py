"""Random report specs over random records: the compiled SQL's result equals a plain-Python
aggregation of the same records (tests/engine_reports/reports_setup.py), on the form's
typed projection and on its JSON documents, on SQLite and on PostgreSQL — date buckets
across month and year ends and China midnight, exact money, bins, calculated measures,
filters, sorts and top-N limits. Hand-written cases pin the boundaries by name."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine_forms.forms import published
from engine_reports.spec import AGGS, BUCKETS, parse_report
from tests.engine_flows.flows_setup import APP, ok
from tests.engine_reports.reports_setup import (
    KINDS,
    LEDGER,
    LEDGER_FORM,
    differences,
    drop_all_projections,
    expected,
    run_engine,
)

# -- values near the edges -----------------------------------------------------------------

EDGE_DAYS = ["2024-02-28", "2024-02-29", "2024-03-01", "2025-02-28", "2025-03-01",
             "2025-12-31", "2026-01-01", "2026-03-01", "2026-03-02", "2026-03-31",
             "2026-04-01", "2026-06-30", "2026-07-01", "2026-09-30", "2026-10-01",
             "2026-12-27", "2026-12-28", "2026-12-31", "2027-01-01", "2027-01-03",
             "2027-01-04"]
# 15:59:59Z is 23:59:59 in China, 16:00:00Z the next day's midnight
EDGE_MOMENTS = [f"{d}T{t}Z" for d in EDGE_DAYS[::2] for t in ("15:59:59", "16:00:00")]
TEXTS = ["", "华东", "华北", "a", "B", "b", "9", "10", "é", "e\u0301", "😀", " ", "Z"]
NUMBERS = [0, 1, -1, 2, 3, 0.5, -0.25, 2.5, 1.125, 100, -1000, 1048576.5, 123456789, -7.75]
AMOUNTS = ["0.00", "0.01", "-0.01", "0.05", "0.10", "0.99", "1.00", "-1.00", "1.10",
           "100.00", "1234.50", "-1234.55", "9999999999.99", "-9999999999.99"]
EDGES = [-1000, -0.5, 0, 0.1, 0.5, 1, 1.1, 10, 100, 1000, 1e6, 9999999999.99]

# mostly values of small pools (groups get several members), some anywhere in range
days = st.one_of(st.sampled_from(EDGE_DAYS), st.sampled_from(EDGE_DAYS),
                 st.dates(date(2020, 1, 1), date(2030, 12, 31)).map(date.isoformat))
moments = st.one_of(
    st.sampled_from(EDGE_MOMENTS), st.sampled_from(EDGE_MOMENTS),
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31)).map(
        lambda t: t.replace(microsecond=0, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
texts = st.one_of(st.sampled_from(TEXTS), st.sampled_from(TEXTS), st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=4))
# numbers that are exact in binary (eighths): float sums are then exact on every database
numbers = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(NUMBERS),
                    st.integers(-10**6, 10**6),
                    st.integers(-2**23, 2**23).map(lambda k: k / 8))
amounts = st.one_of(st.sampled_from(AMOUNTS), st.sampled_from(AMOUNTS),
                    st.integers(-10**12, 10**12).map(lambda fen: str(Decimal(fen).scaleb(-2))))
VALUES = {"t": texts, "u": st.sampled_from(["华东", "华北", "", "a"]), "n": numbers,
          "m": amounts, "d": days, "dt": moments, "b": st.booleans()}
# a record: each field missing, null or a value
record = st.fixed_dictionaries({}, optional={
    key: st.one_of(st.none(), values, values) for key, values in VALUES.items()})
# a few records, or enough that groups have several members (averages, ties, top-N)
records = st.one_of(st.lists(record, max_size=8), st.lists(record, min_size=20, max_size=60))


# -- specs ---------------------------------------------------------------------------------

OPS = {"text": ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains",
                "starts_with", "between", "is_empty", "is_not_empty"],
       "boolean": ["eq", "ne", "in", "not_in", "is_empty", "is_not_empty"]}
ORDERED_OPS = [op for op in OPS["text"] if op not in ("contains", "starts_with")]


@st.composite
def leaves(draw: Any) -> dict[str, Any]:
    field = draw(st.sampled_from(sorted(KINDS)))
    kind = KINDS[field]
    op = draw(st.sampled_from(OPS.get(kind, ORDERED_OPS)))
    values = VALUES[field] if kind != "text" else st.one_of(
        VALUES[field], st.sampled_from(["华", "a", "1", ""]))
    if op in ("is_empty", "is_not_empty"):
        return {"field": field, "op": op}
    if op in ("in", "not_in"):
        return {"field": field, "op": op, "value": draw(st.lists(values, max_size=3))}
    if op == "between":
        return {"field": field, "op": op, "value": [draw(values), draw(values)]}
    return {"field": field, "op": op, "value": draw(values)}


filters = st.recursive(leaves(), lambda inner: st.one_of(
    st.builds(lambda xs: {"and": xs}, st.lists(inner, max_size=3)),
    st.builds(lambda xs: {"or": xs}, st.lists(inner, max_size=3)),
    st.builds(lambda x: {"not": x}, inner)), max_leaves=4)

dimensions = st.one_of(
    st.sampled_from(sorted(KINDS)).map(lambda f: {"field": f}),
    st.builds(lambda f, b: {"field": f, "bucket": b}, st.sampled_from(["d", "dt"]),
              st.sampled_from(BUCKETS)),
    st.builds(lambda f, e: {"field": f, "bins": sorted(e)}, st.sampled_from(["n", "m"]),
              st.lists(st.sampled_from(EDGES), min_size=1, max_size=4, unique=True)))
FIELDS_OF = {"count": [None, *sorted(KINDS)], "count_distinct": sorted(KINDS),
             "sum": ["n", "m"], "avg": ["n", "m"], "min": ["n", "m", "d", "dt"],
             "max": ["n", "m", "d", "dt"]}


@st.composite
def aggregates(draw: Any) -> dict[str, Any]:
    agg = draw(st.sampled_from(AGGS))
    m: dict[str, Any] = {"agg": agg}
    field = draw(st.sampled_from(FIELDS_OF[agg]))
    if field:
        m["field"] = field
    if draw(st.integers(0, 2)) == 0:
        m["where"] = draw(filters)
    return m


def _operand(m: dict[str, Any]) -> bool:
    """Measures a formula may name exactly: counts, number/money sums, extremes and
    money averages (a number average differs in its last digits between databases)."""
    return m["agg"] in ("count", "count_distinct") or (
        m.get("field") in ("n", "m") and (m["agg"] != "avg" or m["field"] == "m"))


# few groups of many records each: averages, ties and top-N cuts
coarse_dimensions = st.one_of(
    st.sampled_from([{"field": "u"}, {"field": "b"}]),
    st.builds(lambda f, b: {"field": f, "bucket": b}, st.sampled_from(["d", "dt"]),
              st.sampled_from(["month", "quarter", "year"])),
    st.builds(lambda f, e: {"field": f, "bins": sorted(e)}, st.sampled_from(["n", "m"]),
              st.lists(st.sampled_from(EDGES), min_size=1, max_size=2, unique=True)))


@st.composite
def specs(draw: Any, dims: Any = None, leaderboard: bool = False) -> dict[str, Any]:
    """A report; a leaderboard is sorted by one or two of its measures."""
    measures = [dict(m, key=f"k{i}") for i, m in enumerate(
        draw(st.lists(aggregates(), min_size=1, max_size=3)))]
    usable = [m["key"] for m in measures if _operand(m)]
    if usable and draw(st.booleans()):
        a, b = draw(st.sampled_from(usable)), draw(st.sampled_from(usable))
        op = draw(st.sampled_from(["+", "-", "*", "/"]))
        measures.insert(draw(st.integers(0, len(measures))),
                        {"expr": f"{a} {op} {b}", "key": "calc"})
    dims = draw(st.lists(dimensions, max_size=2) if dims is None else dims)
    sort_keys = [{"measure": i} for i in range(len(measures))] + [
        {"dimension": i} for i in range(len(dims) * (not leaderboard))]
    sort = draw(st.lists(st.sampled_from(sort_keys), min_size=leaderboard, max_size=2))
    spec = {"key": "diff", "name": "差分", "source": {"form": LEDGER}, "dimensions": dims,
            "measures": measures, "sort": [dict(s, desc=draw(st.booleans())) for s in sort]}
    if draw(st.integers(0, 2)) == 0:
        spec["filters"] = draw(filters)
    if draw(st.booleans()):
        spec["limit"] = draw(st.integers(1, 5))
    return spec


# -- running -------------------------------------------------------------------------------


@pytest.fixture
def ledger(world):
    """The ``ledger`` form (text, number, money, date, date-time, yes/no), published."""
    ok(world.admin.post(f"{APP}/forms", json=LEDGER_FORM), 201)
    ok(world.admin.post(f"{APP}/forms/{LEDGER}/publish"))
    with world.db.read() as s:
        pub = published(s, "bank", LEDGER)
    yield world.db, pub
    drop_all_projections(world.db)


def check(ledger: Any, raw: dict[str, Any], rows: list[dict[str, Any]], *,
          project_first: bool = True) -> dict[str, list[list[Any]]]:
    """Run ``raw`` over ``rows`` on both frames; each equals Python's result. Per frame:
    the rows (keys + values)."""
    db, pub = ledger
    spec = parse_report(raw)
    stored = [pub.fields.coerce(r) for r in rows]
    want = expected(spec, stored)
    got = run_engine(db, pub, spec, stored, project_first=project_first)
    for frame, (keys, values, truncated) in got.items():
        problems = differences(spec, want, keys, values)
        assert not truncated
        assert not problems, f"{frame}: {problems[:5]}\nspec={raw}\nrecords={rows}"
    return {frame: [k + v for k, v in zip(keys, values, strict=True)]
            for frame, (keys, values, _t) in got.items()}


# QIAO_DIFF_EXAMPLES=2000 for a long hunt; 60 keep the suite fast
SETTINGS = settings(max_examples=int(os.environ.get("QIAO_DIFF_EXAMPLES", "60")),
                    deadline=None, suppress_health_check=[
                        HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(raw=specs(), rows=records, project_first=st.booleans())
def test_random_reports_equal_python(ledger, raw, rows, project_first):
    note(f"spec={raw}\nrecords={rows}")
    check(ledger, raw, rows, project_first=project_first)


@SETTINGS
@given(raw=specs(dims=st.lists(coarse_dimensions, min_size=1, max_size=1), leaderboard=True),
       rows=st.lists(record, min_size=10, max_size=60), project_first=st.booleans())
def test_random_leaderboards_equal_python(ledger, raw, rows, project_first):
    """Sorted, often cut to a top N, over a few large groups."""
    note(f"spec={raw}\nrecords={rows}")
    check(ledger, raw, rows, project_first=project_first)


# -- hand-written cases --------------------------------------------------------------------


def report(dimensions: list[dict[str, Any]], measures: list[dict[str, Any]],
           **extra: Any) -> dict[str, Any]:
    return {"key": "named", "name": "用例", "source": {"form": LEDGER},
            "dimensions": dimensions, "measures": measures, **extra}


def rows_of(ledger: Any, raw: dict[str, Any], rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The engine's rows (keys + values): equal to Python's, the same on both frames."""
    got = check(ledger, raw, rows)
    assert got["json"] == got["projection"], got
    return got["json"]


def test_ten_thousand_amounts_sum_exactly_to_the_fen(ledger):
    cycle = ["9999999999.99", "0.01", "1234.56", "-0.07", "0.10"]
    amounts = [cycle[i % len(cycle)] for i in range(10_000)]
    exact = sum(Decimal(a) for a in amounts)
    as_float = 0.0
    for a in amounts:
        as_float += float(a)
    assert f"{as_float:.2f}" != str(exact)  # a float total is wrong here, by yuan
    rows = [{"m": a, "u": "华东" if i % 2 else "华北"} for i, a in enumerate(amounts)]
    got = rows_of(ledger, report([], [{"agg": "sum", "field": "m"},
                                      {"agg": "avg", "field": "m"}]), rows)
    average = (exact / 10_000).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert got == [[str(exact), str(average)]]
    assert str(exact) == "20000002469180.00"
    by_region = rows_of(ledger, report([{"field": "u"}], [{"agg": "sum", "field": "m"}]), rows)
    assert by_region == [[region, str(sum(Decimal(a) for i, a in enumerate(amounts)
                                          if (i % 2 == 1) == (region == "华东")))]
                         for region in ("华东", "华北")]


WEEK_DAYS = {"2026-12-27": "2026-12-21", "2026-12-28": "2026-12-28",  # Sunday, Monday
             "2026-12-31": "2026-12-28", "2027-01-01": "2026-12-28",
             "2027-01-03": "2026-12-28", "2027-01-04": "2027-01-04"}
WEEK_MOMENTS = {"2026-12-27T15:59:59Z": "2026-12-21", "2026-12-27T16:00:00Z": "2026-12-28",
                "2027-01-03T15:59:59Z": "2026-12-28", "2027-01-03T16:00:00Z": "2027-01-04"}


@pytest.mark.parametrize(("field", "weeks"), [("d", WEEK_DAYS), ("dt", WEEK_MOMENTS)])
def test_a_week_across_the_year_end_is_one_week_from_its_monday(ledger, field, weeks):
    rows = [{field: value} for value in weeks]
    got = rows_of(ledger, report([{"field": field, "bucket": "week"}], [{"agg": "count"}]),
                  rows)
    counts: dict[str, int] = {}
    for monday in weeks.values():
        counts[monday] = counts.get(monday, 0) + 1
    assert got == [[monday, n] for monday, n in sorted(counts.items())]


@pytest.mark.parametrize(("moment", "buckets"), [
    ("2026-12-31T16:30:00Z", ["2027-01-01", "2026-12-28", "2027-01", "2027-Q1", "2027"]),
    ("2026-12-31T15:59:59Z", ["2026-12-31", "2026-12-28", "2026-12", "2026-Q4", "2026"]),
    ("2024-02-29T16:00:00Z", ["2024-03-01", "2024-02-26", "2024-03", "2024-Q1", "2024"]),
])
def test_a_date_time_buckets_by_its_china_date(ledger, moment, buckets):
    for bucket, key in zip(("day", "week", "month", "quarter", "year"), buckets, strict=True):
        got = rows_of(ledger, report([{"field": "dt", "bucket": bucket}],
                                     [{"agg": "count"}]), [{"dt": moment}, {}])
        assert got == [[key, 1], [None, 1]], bucket


@pytest.mark.parametrize(("day", "quarter"), [
    ("2026-03-31", "2026-Q1"), ("2026-04-01", "2026-Q2"), ("2026-06-30", "2026-Q2"),
    ("2026-07-01", "2026-Q3"), ("2026-09-30", "2026-Q3"), ("2026-10-01", "2026-Q4"),
    ("2026-12-31", "2026-Q4"), ("2027-01-01", "2027-Q1")])
def test_quarters_end_on_the_last_day_of_their_third_month(ledger, day, quarter):
    got = rows_of(ledger, report([{"field": "d", "bucket": "quarter"}],
                                 [{"agg": "count"}]), [{"d": day}])
    assert got == [[quarter, 1]]


def test_money_bins_take_their_edges_as_written(ledger):
    """0.10 is in [0.1, 1.1), not below 0.1 because 0.1 × 100 is 10.000000000000002."""
    rows = [{"m": "0.09"}, {"m": "0.10"}, {"m": "1.09"}, {"m": "1.10"}, {}]
    got = rows_of(ledger, report([{"field": "m", "bins": [0.1, 1.1]}], [{"agg": "count"}]),
                  rows)
    assert got == [[0, 1], [1, 2], [2, 1], [None, 1]]


def test_sorting_by_a_money_average_sorts_by_the_average(ledger):
    rows = [{"u": "a", "m": "10.00"}, {"u": "a", "m": "10.00"}, {"u": "b", "m": "15.00"}]
    got = rows_of(ledger, report([{"field": "u"}], [{"agg": "avg", "field": "m"}],
                                 sort=[{"measure": 0, "desc": True}], limit=1), rows)
    assert got == [["b", "15.00"]]  # not a (its sum, 20.00, is the larger)


def test_a_money_average_that_rounds_to_zero_is_zero_not_minus_zero(ledger):
    """-0.01 / 3 is -0.0033…: 0.00 to the fen, which must not read as a loss ("-0.00").
    Found by test_random_leaderboards_equal_python (its second case, shrunk)."""
    for amounts in (["-0.01", "0.00", "0.00"], ["0.00", "9999999999.99", "-10000000000.00"]):
        got = rows_of(ledger, report([], [{"agg": "avg", "field": "m"}]),
                      [{"m": a} for a in amounts])
        assert got == [["0.00"]], amounts


CALCULATED = [{"agg": "count", "key": "n"}, {"expr": "n * 1", "key": "same_n"}]


def test_a_calculated_sort_breaks_ties_like_any_sort(ledger):
    """Sorting by ``n * 1`` gives what sorting by ``n`` gives: ties by the dimension
    ascending, blanks last — also when a limit cuts through the tie."""
    rows = [{"u": "华北"}, {"u": "a"}, {}, {"u": ""}]
    by_count = rows_of(ledger, report([{"field": "u"}], CALCULATED,
                                      sort=[{"measure": 0, "desc": True}], limit=3), rows)
    assert by_count == [["", 1, 1], ["a", 1, 1], ["华北", 1, 1]]
    by_formula = rows_of(ledger, report([{"field": "u"}], CALCULATED,
                                        sort=[{"measure": 1, "desc": True}], limit=3), rows)
    assert by_formula == by_count


@pytest.mark.parametrize("texts", [["9", "10"], ["NaN", "1"], ["1e3", "2"], ["inf", "a"]])
def test_a_calculated_sort_orders_text_keys_as_text(ledger, texts):
    """Text that reads as a number still sorts by code point (as the SQL sort does)."""
    rows = [{"t": text} for text in texts]
    got = rows_of(ledger, report([{"field": "t"}], CALCULATED,
                                 sort=[{"measure": 1}, {"dimension": 0}]), rows)
    assert got == [[text, 1, 1] for text in sorted(texts)]


STAMPS = [datetime(2026, 12, 31, 16, 30, tzinfo=UTC),
          datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC), datetime(2027, 1, 3, 16, tzinfo=UTC)]


@pytest.mark.parametrize(("bucket", "keys"), [
    ("day", [["2026-12-31", 1], ["2027-01-01", 1], ["2027-01-04", 1]]),
    ("week", [["2026-12-28", 2], ["2027-01-04", 1]]),
    ("month", [["2026-12", 1], ["2027-01", 2]]),
    ("quarter", [["2026-Q4", 1], ["2027-Q1", 2]]),
    ("year", [["2026", 1], ["2027", 2]])])
def test_the_creation_time_buckets_by_its_china_date(ledger, bucket, keys):
    db, pub = ledger
    spec = parse_report(report([{"field": "created_at", "bucket": bucket}],
                               [{"agg": "count"}]))
    got = run_engine(db, pub, spec, [{}, {}, {}], created_at=STAMPS)
    for frame, (k, v, _t) in got.items():
        assert [a + b for a, b in zip(k, v, strict=True)] == keys, frame


def test_the_latest_creation_time_reads_the_same_on_both_databases(ledger):
    """A timestamp extreme is shown in UTC with its offset (as the record API shows it),
    not as a naive time on SQLite and an aware one on PostgreSQL."""
    db, pub = ledger
    spec = parse_report(report([], [{"agg": "max", "field": "created_at"},
                                    {"agg": "min", "field": "created_at"}]))
    got = run_engine(db, pub, spec, [{}, {}, {}], created_at=STAMPS)
    for frame, (_k, values, _t) in got.items():
        assert values == [["2027-01-03T16:00:00+00:00", "2026-12-31T15:59:59+00:00"]], frame
