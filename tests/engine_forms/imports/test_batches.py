"""Import modes on real batches: insert, upsert by mobile, skip duplicates (in the file
and in the store), all-or-nothing against valid rows only, dry run, cancel, resume."""

from __future__ import annotations

from sqlalchemy import func, select

from engine_forms.imports import runner
from engine_forms.models import ImportBatch, ImportRow
from platform_core.security.models import AuditEntry
from tests.engine_forms.forms_setup import ok
from tests.engine_forms.imports.conftest import (
    BASE,
    IMPORTS,
    count,
    csv,
    customers,
    start,
    status,
    work,
    xlsx,
)

HEADER = ["姓名", "手机", "城市"]


def _seed(admin) -> None:
    for name, mobile, city in (("张三", "13800000001", "北京"), ("李四", "13800000002", "上海")):
        ok(admin.post(BASE + "/records", json={"name": name, "mobile": mobile,
                                                 "city": city}), 201)


def test_upsert_by_mobile_updates_existing_customers_and_creates_new_ones(db, crm):
    _app, admin = crm
    _seed(admin)
    before = customers(db)
    file = xlsx([HEADER, ["张三", "138 0000 0001", "杭州"],   # same mobile, typed with spaces
                 ["王五", "+86 13800000003", "深圳"]])
    batch = start(admin, file, "客户.xlsx", mode="upsert", key="mobile", atomic=False)
    assert batch["status"] == "queued" and batch["rows_total"] == 2
    work(db)
    done = status(admin, batch["id"])
    assert (done["status"], done["created"], done["updated"], done["failed"]) == \
        ("done", 1, 1, 0)
    assert done["rows_done"] == 2 and done["rate"] > 0 and done["can_revert"]
    after = customers(db)
    assert after["张三"]["city"] == "杭州" and after["张三"]["id"] == before["张三"]["id"]
    assert after["王五"]["mobile"] == "13800000003" and after["李四"] == before["李四"]
    with db.read() as s:
        updated = s.execute(select(ImportRow).where(ImportRow.action == "updated")
                            ).scalar_one()
    assert updated.before == {"name": "张三", "mobile": "13800000001", "city": "北京"}
    assert updated.version_after == after["张三"]["row_version"] == 2


def test_skip_mode_skips_duplicates_in_the_file_and_in_the_store(db, crm):
    _app, admin = crm
    _seed(admin)
    file = csv([HEADER, ["新客", "13800000001", "x"], ["赵六", "13800000009", "广州"],
                ["赵六again", "13800000009", "广州"]])
    batch = start(admin, file, mode="skip", key="mobile", atomic=False)
    work(db)
    done = status(admin, batch["id"])
    assert (done["created"], done["skipped"], done["failed"]) == (1, 2, 0)
    assert set(customers(db)) == {"张三", "李四", "赵六"}


def test_insert_reports_used_and_repeated_unique_values_with_their_rows(db, crm):
    _app, admin = crm
    _seed(admin)
    file = csv([HEADER, ["甲", "13800000001", ""], ["乙", "13800000005", ""],
                ["丙", "13800000005", ""]])
    batch = start(admin, file, atomic=False)
    work(db)
    problems = ok(admin.get(f"{IMPORTS}/{batch['id']}/problems"))["items"]
    assert [(p["row"], p["column"], p["field"]) for p in problems] == \
        [(2, "B", "mobile"), (4, "B", "mobile")]
    assert "第 3 行" in problems[1]["reason"] and "row 3" in problems[1]["reason_en"]
    assert set(customers(db)) == {"张三", "李四", "乙"}


def test_all_or_nothing_writes_nothing_when_a_row_is_wrong(db, crm):
    _app, admin = crm
    file = csv([HEADER, ["甲", "13800000001", ""], ["", "13800000002", ""],
                ["丙", "12", ""]])
    batch = start(admin, file)  # atomic by default
    work(db)
    done = status(admin, batch["id"])
    assert done["status"] == "failed" and done["failed"] == 2 and done["created"] == 0
    assert "nothing was imported" in done["error"] and count(db) == 0
    rows = {p["row"] for p in ok(admin.get(f"{IMPORTS}/{batch['id']}/problems"))["items"]}
    assert rows == {3, 4} and not done["can_revert"]
    valid = start(admin, file, atomic=False)
    work(db)
    assert status(admin, valid["id"])["created"] == 1 and set(customers(db)) == {"甲"}


def test_dry_run_checks_everything_previews_and_writes_nothing(db, crm):
    _app, admin = crm
    file = csv([HEADER, ["甲", "138-0000-0001", "北京"], ["乙", "bad", ""]])
    batch = start(admin, file, dry_run=True)
    work(db)
    done = status(admin, batch["id"])
    assert done["status"] == "done" and done["dry_run"] and count(db) == 0
    assert done["preview"][0]["row"] == 2
    assert done["preview"][0]["data"]["mobile"] == "13800000001"
    assert done["problems"] == 1 and not done["can_revert"]
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(ImportRow)).scalar_one() == 0


def test_a_large_file_is_written_chunk_by_chunk_with_one_audit_entry(db, crm):
    _app, admin = crm
    rows = [HEADER] + [[f"客户{i}", f"139{i:08d}", "北京"] for i in range(2500)]
    batch = start(admin, csv(rows), atomic=False)
    seen = []
    with db.read() as s:
        assert s.get(ImportBatch, batch["id"]).status == "queued"
    me = runner.worker_id("test")
    assert runner.claim(db, me) == batch["id"]
    assert runner.claim(db, "another") is None  # the lease holds
    runner.run(db, batch["id"], me, chunk=1000, progress=lambda b: seen.append(b.rows_done))
    assert seen == [1000, 2000, 2500] and count(db) == 2500
    with db.read() as s:
        entries = s.execute(select(AuditEntry).where(AuditEntry.action == "record.import")
                            ).scalars().all()
    assert len(entries) == 1 and entries[0].detail["created"] == 2500


def test_cancel_stops_a_queued_batch_and_the_api_refuses_bad_options(db, crm):
    _app, admin = crm
    batch = start(admin, csv([HEADER, ["甲", "", ""]]))
    stopped = ok(admin.post(f"{IMPORTS}/{batch['id']}/cancel"))
    assert stopped["status"] == "cancelled" and work(db) == 0 and count(db) == 0
    again = admin.post(f"{IMPORTS}/{batch['id']}/cancel")
    assert again.status_code == 409
    file = ("c.csv", csv([HEADER, ["甲", "", ""]]))
    for data, says in (({"mode": "upsert"}, "needs the unique field"),
                       ({"mode": "upsert", "key": "city"}, "not a unique field"),
                       ({"mode": "skip", "key": "nope"}, "unknown field"),
                       ({"mapping": "{not json"}, "not valid JSON"),
                       ({"mapping": '{"columns": [{"column": 0, "header": "姓名", '
                                    '"field": "age"}]}'}, "cannot fill")):
        refused = admin.post(IMPORTS, files={"file": file}, data=data)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert says in refused.json()["detail"]


def test_the_duplicate_check_seeks_the_unique_index_instead_of_walking_the_form(db, crm):
    """Each chunk looks its unique values up in the store. Walking every record of the
    form for that (the list's newest-first order tempted SQLite's planner to) made a
    100,000-row import slow down chunk by chunk; the lookup must seek the field's index."""
    from sqlalchemy import event

    if db.dialect != "sqlite":
        return  # the plan asserted is SQLite's; PostgreSQL's planner costs differently
    _app, admin = crm
    _seed(admin)
    seen: list[tuple[str, tuple]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        if statement.lstrip().startswith("SELECT records.id") and "IN (" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        batch = start(admin, csv([HEADER, ["新客", "13800000001", "x"],
                                  ["赵六", "13800000009", "广州"]]), atomic=False)
        work(db)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert status(admin, batch["id"])["created"] == 1
    lookups = [(sql, p) for sql, p in seen if "'$.mobile')" in sql]
    assert lookups, "the import looked up no mobile numbers"
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        for sql, params in lookups:
            plan = " ".join(str(r[-1]) for r in raw.execute("EXPLAIN QUERY PLAN " + sql,
                                                            params))
            assert "ux_rec_customer_mobile" in plan, plan


def test_a_large_import_keeps_postgresql_s_statistics_in_step(db, crm):
    """On PostgreSQL the import refreshes the planner's statistics of ``records`` as it
    grows (``platform_core.db.FreshStatistics``: at 2,000 rows written, then each time
    that doubled). Autovacuum does so a minute or more later, and meanwhile a fresh
    install's first import of 100,000 customers planned its look-ups of existing mobile
    numbers on the statistics of an empty table — another unique index, every customer
    filtered — and took 68 s instead of 17 (``bench/imports.py``)."""
    from sqlalchemy import text

    if db.dialect != "postgresql":
        return  # SQLite's planner takes the index without statistics (the test above)

    def analyses() -> int:
        with db.engine.connect() as conn:
            return conn.execute(text("SELECT analyze_count FROM pg_stat_user_tables "
                                     "WHERE relname = 'records'")).scalar_one()

    _app, admin = crm
    before = analyses()
    rows = [HEADER] + [[f"客户{i}", f"139{i:08d}", "北京"] for i in range(5000)]
    batch = start(admin, csv(rows), atomic=False)
    me = runner.worker_id("test")
    assert runner.claim(db, me) == batch["id"]
    runner.run(db, batch["id"], me, chunk=1000)
    assert count(db) == 5000
    assert analyses() - before == 2  # at 2,000 rows written and at 4,000
