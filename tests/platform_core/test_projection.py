"""Typed projections: every write of a form's records shows in its projection in the same
transaction, and a filter over the projection selects what it selects over ``records``."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, inspect, select, text, update

from platform_core.errors import QueryError
from platform_core.models import OutboxEvent, Record, StoreProjection
from platform_core.store import (
    SYSTEM,
    Actor,
    FieldSet,
    compile_filter,
    create_records,
    delete_record,
    migrate_record,
    restore_record,
    update_record,
)
from platform_core.store.projection import (
    ProjectedFields,
    drop_projection,
    ensure_projection,
    from_fen,
    projection_name,
    projection_of,
    rebuild_projection,
)

ALICE = Actor(user_id=7, department_id=3, name="alice")
FIELDS = FieldSet("crm", "loan", {"name": "text", "city": "text", "amount": "money",
                                  "n": "number", "day": "date", "at": "datetime",
                                  "ok": "boolean", "secret": "sealed"})
SEALED = {"$enc": "k1:abc", "bi": "bi-1"}


@pytest.fixture(autouse=True)
def _no_projection_left(db):
    """Projections are not platform tables: drop them before the per-test reset."""
    yield
    with db.write() as s:
        for app, form in s.execute(select(StoreProjection.app, StoreProjection.form)).all():
            drop_projection(s, app, form)


def rows(s, fields: FieldSet = FIELDS) -> dict[int, dict[str, Any]]:
    table = ProjectedFields(fields.app, fields.form, dict(fields.kinds)).table(
        s.get_bind().dialect.name)
    return {r["id"]: dict(r) for r in s.execute(select(table)).mappings()}


def create(s, *docs: dict[str, Any], form: str = "loan", app: str = "crm") -> list[int]:
    return create_records(s, app=app, form=form, items=list(docs), actor=ALICE)


def test_every_store_write_shows_in_the_same_transaction(db):
    with db.write() as s:
        ensure_projection(s, FIELDS)
        a, b = create(s, {"name": "张三", "amount": "1234.50", "n": 12, "day": "2024-02-29",
                          "at": "2024-02-29T08:00:00Z", "ok": True, "secret": SEALED},
                      {"name": "", "amount": "-0.50", "ok": False, "n": None})
        got = rows(s)
        assert {k: got[a][k] for k in ("name", "amount", "n", "day", "at", "ok", "owner_id")} \
            == {"name": "张三", "amount": 123450, "n": 12, "day": "2024-02-29",
                "at": "2024-02-29T08:00:00Z", "ok": True, "owner_id": 7}
        assert "secret" not in got[a]
        assert (got[b]["name"], got[b]["amount"], got[b]["n"], got[b]["ok"]) == ("", -50, None,
                                                                                False)
        update_record(s, a, changes={"city": "北京", "n": None}, expected_version=1, actor=SYSTEM)
        assert (rows(s)[a]["city"], rows(s)[a]["n"], rows(s)[a]["row_version"]) == ("北京", None, 2)
        delete_record(s, b, actor=SYSTEM)
        assert rows(s)[b]["deleted_at"] is not None and rows(s)[b]["row_version"] == 2
        restore_record(s, b, actor=SYSTEM)
        assert rows(s)[b]["deleted_at"] is None and rows(s)[b]["row_version"] == 3
        migrate_record(s, a, data={"name": "张三", "amount": "0.01"}, schema_version=2,
                       actor=SYSTEM)
        assert {k: rows(s)[a][k] for k in ("name", "amount", "city", "day", "ok")} == \
            {"name": "张三", "amount": 1, "city": None, "day": None, "ok": None}
    with db.read() as s:  # and committed
        assert rows(s)[a]["amount"] == 1 and rows(s)[b]["deleted_at"] is None


def test_a_rolled_back_write_leaves_the_projection_as_it_was(db):
    with db.write() as s:
        ensure_projection(s, FIELDS)
        (a,) = create(s, {"name": "before", "amount": "1.00"})
    with db.read() as s:
        before = rows(s)
    with pytest.raises(RuntimeError), db.write() as s:
        update_record(s, a, changes={"name": "after"}, expected_version=1, actor=SYSTEM)
        create(s, {"name": "new"})
        delete_record(s, a, actor=SYSTEM)
        raise RuntimeError("the user's action fails after the writes")
    with db.read() as s:
        assert rows(s) == before


def test_a_rolled_back_ensure_leaves_no_projection_and_writes_work(db):
    with pytest.raises(RuntimeError), db.write() as s:
        ensure_projection(s, FIELDS)
        raise RuntimeError("boom")
    with db.write() as s:
        assert projection_of(s, FIELDS) is None
        create(s, {"name": "x"})
        assert projection_name("crm", "loan") not in inspect(s.connection()).get_table_names()


def test_backfill_takes_existing_records_deleted_ones_too(db):
    with db.write() as s:
        a, b, c = create(s, {"name": "a", "amount": "10.00"}, {"name": "b"}, {"amount": "0.10"})
        delete_record(s, b, actor=SYSTEM)
        create(s, {"name": "elsewhere"}, form="other")
    with db.write() as s:
        assert projection_of(s, FIELDS) is None
        projection = ensure_projection(s, FIELDS)
        assert projection_of(s, FIELDS) == projection
        got = rows(s)
    assert sorted(got) == [a, b, c]
    assert got[b]["deleted_at"] is not None and got[a]["deleted_at"] is None
    assert (got[a]["amount"], got[c]["amount"], got[b]["amount"]) == (1000, 10, None)


def test_changed_kinds_read_json_until_the_projection_is_rebuilt(db):
    v2 = FieldSet("crm", "loan", {**FIELDS.kinds, "n": "text", "extra": "date"})
    with db.write() as s:
        ensure_projection(s, FIELDS)
        create(s, {"n": 5})
    with db.write() as s:
        assert projection_of(s, v2) is None  # the form changed: the caller reads JSON
        (b,) = create(s, {"n": "five", "extra": "2024-01-01"})  # the old triggers cope
        assert ensure_projection(s, v2) == projection_of(s, v2)
        assert projection_of(s, FIELDS) is None
        got = rows(s, v2)
    assert got[b]["n"] == "five" and got[b]["extra"] == "2024-01-01"
    with db.write() as s:
        (c,) = create(s, {"n": "six"})
        assert rows(s, v2)[c]["n"] == "six"
        rebuild_projection(s, v2)
        assert sorted(rows(s, v2)) == sorted(got) + [c]


def test_values_of_another_kind_never_make_a_write_fail(db):
    """A projection may be older than the form's field types: its triggers must still
    accept whatever the document holds."""
    odd = {"name": 12, "amount": "lots", "n": "abc", "day": 5, "at": [1], "ok": "yes",
           "secret": "plain"}
    with db.write() as s:
        ensure_projection(s, FIELDS)
        (a,) = create(s, odd)
        update_record(s, a, changes={"amount": "1e999", "n": {"x": 1}}, expected_version=1,
                      actor=SYSTEM)
        got = rows(s)[a]
    assert got["row_version"] == 2
    if db.dialect == "postgresql":  # what the JSON accessor's cast would fail on: NULL
        assert (got["amount"], got["n"], got["ok"]) == (None, None, None)


def test_money_sums_are_exact_to_the_fen(db):
    rng = random.Random(20240229)
    amounts = [Decimal(rng.randint(-10**11, 10**11)).scaleb(-2) for _ in range(10_000)]
    with db.write() as s:
        projection = ensure_projection(s, FIELDS)
        create_records(s, app="crm", form="loan", items=[{"amount": str(a)} for a in amounts],
                       actor=SYSTEM)
        column = projection.table.c.amount
        total = s.execute(select(func.sum(column))).scalar_one()
        dialect = s.get_bind().dialect.name
        where = compile_filter({"field": "amount", "op": "gte", "value": "1000000.00"},
                               projection.fields, dialect)
        big = s.execute(select(func.count()).where(where)).scalar_one()
    assert projection.money_in_fen and projection.is_money("amount")
    assert from_fen(total) == sum(amounts)
    assert big == sum(1 for a in amounts if a >= Decimal("1000000.00"))


def test_other_forms_and_apps_never_land_in_the_projection(db):
    with db.write() as s:
        ensure_projection(s, FIELDS)
        mine, = create(s, {"name": "mine"})
        other_form, = create(s, {"name": "x"}, form="lead")
        other_app, = create(s, {"name": "y"}, app="bank")
        assert sorted(rows(s)) == [mine]
        # Raw SQL, past the store's functions: moving records between forms, deleting.
        s.execute(update(Record).where(Record.id == other_form).values(form="loan"))
        s.execute(update(Record).where(Record.id == mine).values(app="bank"))
        assert sorted(rows(s)) == [other_form]
        s.execute(update(Record).where(Record.id == other_form)
                  .values(data={"name": "raw"}, row_version=9))
        assert (rows(s)[other_form]["name"], rows(s)[other_form]["row_version"]) == ("raw", 9)
        s.execute(delete(OutboxEvent))
        s.execute(delete(Record).where(Record.id == other_form))
        assert rows(s) == {}
        assert other_app not in rows(s)


def test_truncating_records_empties_the_projection(db):
    if db.dialect != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    with db.write() as s:
        ensure_projection(s, FIELDS)
        create(s, {"name": "a"})
        s.execute(text("TRUNCATE records CASCADE"))
        assert rows(s) == {}


def test_drop_removes_table_and_triggers(db):
    with db.write() as s:
        ensure_projection(s, FIELDS)
        drop_projection(s, "crm", "loan")
        drop_projection(s, "crm", "loan")  # nothing left: a no-op
        assert projection_of(s, FIELDS) is None
        create(s, {"name": "still writable"})
        assert projection_name("crm", "loan") not in inspect(s.connection()).get_table_names()


def test_sealed_fields_have_no_column_nor_a_field_named_like_the_deletion_time(db):
    with db.write() as s:
        projection = ensure_projection(s, FIELDS)
        with pytest.raises(KeyError):
            projection.fields.accessor("secret", db.dialect)
        with pytest.raises(QueryError, match="unknown field 'secret'"):
            compile_filter({"field": "secret", "op": "eq", "value": "bi-1"},
                           projection.fields, db.dialect)
        odd = FieldSet("crm", "odd", {"deleted_at": "date", "day": "date"})
        (rid,) = create(s, {"deleted_at": "2024-01-01", "day": "2024-01-02"}, form="odd")
        table = ensure_projection(s, odd).table
        assert s.execute(select(table.c.deleted_at, table.c.day)).one() == (None, "2024-01-02")
        delete_record(s, rid, actor=SYSTEM)
        assert s.execute(select(table.c.deleted_at)).scalar_one() is not None


# --- the property: one filter, two tables, the same records ------------------------------

PROP = FieldSet("prop", "item", {"name": "text", "city": "text", "amount": "money",
                                 "n": "number", "day": "date", "at": "datetime",
                                 "ok": "boolean", "secret": "sealed"})
TEXTS = st.one_of(st.sampled_from(["", "a", "ab", "B", "b", "Ab", "张三", "张三丰", "z%_",
                                   "é", "🙂", " a"]),
                  st.text(st.characters(blacklist_categories=("Cs",),
                                        blacklist_characters="\x00"), max_size=3))
# Mostly a few close amounts (filters and records meet), sometimes any amount at all.
AMOUNTS = st.one_of(st.sampled_from(["0.00", "0.01", "0.10", "-0.50", "1.00", "9.99", "10.00",
                                     "99.99", "100.00", "-100.00"]),
                    st.decimals(min_value=-10**9, max_value=10**9, places=2).map(
                        lambda d: str(d.quantize(Decimal("0.01")))))
NUMBERS = st.one_of(st.integers(-3, 3), st.integers(-10**12, 10**12),
                    st.sampled_from([0.5, -1.5, 2.25, 1e6, 0.001]))
DAYS = st.dates(date(2023, 12, 30), date(2024, 3, 2)).map(date.isoformat)
MOMENTS = st.datetimes(datetime(2024, 2, 28), datetime(2024, 3, 1),
                       timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))]))
VALUES = {"name": TEXTS, "city": st.sampled_from(["北京", "上海", "beijing", ""]),
          "amount": AMOUNTS, "n": NUMBERS, "day": DAYS,
          "at": MOMENTS.map(lambda t: t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
          "ok": st.booleans()}
FILTER_VALUES = {**VALUES, "at": MOMENTS.map(datetime.isoformat),
                 "id": st.integers(0, 30), "row_version": st.integers(1, 3),
                 "owner_id": st.sampled_from([7, 8]),
                 "created_at": st.sampled_from(["2000-01-01T00:00:00Z",
                                                "2999-01-01T00:00:00+08:00"])}
STORED = {**{k: st.one_of(st.none(), v) for k, v in VALUES.items()},
          "secret": st.just(SEALED)}
RECORD = st.fixed_dictionaries({}, optional=STORED)
COMPARE = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "between", "is_empty",
           "is_not_empty"]
OPS = dict.fromkeys(FILTER_VALUES, COMPARE)
OPS |= {"name": [*COMPARE, "contains", "starts_with"],
        "city": [*COMPARE, "contains", "starts_with"],
        "ok": ["eq", "ne", "in", "not_in", "is_empty", "is_not_empty"]}


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(st.sampled_from(sorted(FILTER_VALUES)))
    op = draw(st.sampled_from(OPS[field]))
    leaf: dict[str, Any] = {"field": field, "op": op}
    if op in ("in", "not_in"):
        leaf["value"] = draw(st.lists(FILTER_VALUES[field], max_size=3))
    elif op == "between":
        leaf["value"] = draw(st.lists(FILTER_VALUES[field], min_size=2, max_size=2))
    elif op not in ("is_empty", "is_not_empty"):
        leaf["value"] = draw(FILTER_VALUES[field])
    return leaf


FILTERS = st.recursive(leaves(), lambda inner: st.one_of(
    st.builds(lambda xs: {"and": xs}, st.lists(inner, max_size=3)),
    st.builds(lambda xs: {"or": xs}, st.lists(inner, max_size=3)),
    st.builds(lambda x: {"not": x}, inner)), max_leaves=6)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(records=st.lists(RECORD, max_size=15), deleted=st.lists(st.booleans(), max_size=15),
       filters=st.lists(FILTERS, min_size=1, max_size=4))
def test_a_filter_selects_the_same_records_over_the_projection(db, records, deleted,
                                                                filters):
    dialect = db.dialect
    try:
        with db.write() as s:
            projected = ensure_projection(s, PROP).fields
            half = len(records) // 2
            ids = create_records(s, app="prop", form="item", items=records[:half],
                                 actor=SYSTEM)
            ids += create_records(s, app="prop", form="item", items=records[half:],
                                  actor=ALICE)
            for rid, gone in zip(ids, deleted, strict=False):
                if gone:
                    delete_record(s, rid, actor=SYSTEM)
        with db.read() as s:
            table = projected.table(dialect)
            for node in filters:
                want = s.execute(select(Record.id).where(
                    Record.app == "prop", Record.form == "item",
                    compile_filter(node, PROP, dialect))).scalars()
                got = s.execute(select(table.c.id).where(
                    compile_filter(node, projected, dialect))).scalars()
                assert sorted(got) == sorted(want), node
    finally:
        with db.write() as s:
            s.execute(delete(OutboxEvent))
            s.execute(delete(Record))
