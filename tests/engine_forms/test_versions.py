"""Publishing a new version that renames one field and changes another's type."""

from __future__ import annotations

import pytest

from engine_forms import forms, publishing, records
from engine_forms.versions import run_migration
from platform_core.app import create_app
from platform_core.settings import load_settings
from platform_core.store import Actor, get_record, history
from tests.engine_forms.form_setup import form_with_records, statements_sent
from tests.engine_forms.forms_setup import ok
from tests.security_setup import client_as

ADMIN = Actor(user_id=1, name="admin")
V1 = {"key": "lead", "name": "线索", "fields": [
    {"key": "name", "label": "姓名", "type": "text"},
    {"key": "phone_no", "label": "电话", "type": "text"},
    {"key": "score", "label": "评分", "type": "text"},
    {"key": "stage", "label": "阶段", "type": "select", "options": [
        {"value": "new", "label": "新线索"}, {"value": "lost", "label": "已流失"}]}]}
V2 = {"key": "lead", "name": "线索", "fields": [
    {"key": "name", "label": "姓名", "type": "text"},
    {"key": "mobile", "label": "手机", "type": "text", "renamed_from": "phone_no"},
    {"key": "score", "label": "评分", "type": "number"},
    {"key": "stage", "label": "阶段", "type": "select", "options": [
        {"value": "new", "label": "新线索"}]},
    {"key": "note", "label": "备注", "type": "textarea"}]}


@pytest.fixture
def leads(db):
    ids = form_with_records(db, "crm", V1, [
        {"name": "甲", "phone_no": "13800000001", "score": "85", "stage": "new"},
        {"name": "乙", "phone_no": "13800000002", "score": "优秀"},
        {"name": "丙", "score": "90.5", "stage": "lost"},
        {"name": "丁"}])
    with db.write() as s:
        forms.put_draft(s, app="crm", key="lead", raw=V2)
    return ids


def test_dry_run_lists_the_records_that_would_fail_and_writes_nothing(db, leads):
    with db.write() as s:
        plan = publishing.publish(s, app="crm", key="lead", actor=ADMIN, dry=True)
    assert plan["changes"]["renamed"] == [{"from": "phone_no", "to": "mobile"}]
    assert plan["changes"]["type_changed"] == [{"field": "score", "from": "text",
                                                "to": "number"}]
    assert plan["changes"]["options_changed"] == [{"field": "stage", "removed": ["lost"],
                                                   "added": []}]
    assert plan["changes"]["added"] == ["note"]
    report = plan["migration"]
    assert (report["records"], report["would_convert"], report["would_fail"]) == (4, 2, 2)
    failing = {f["record_id"]: [e["field"] for e in f["errors"]] for f in report["failures"]}
    assert failing == {leads[1]: ["score"], leads[2]: ["stage"]}
    with db.read() as s:
        assert forms.get_form(s, "crm", "lead").published_version == 1
        assert get_record(s, leads[0]).data["phone_no"] == "13800000001"


def test_apply_migrates_the_rest_and_history_keeps_old_values(db, leads):
    with db.write() as s:
        result = publishing.publish(s, app="crm", key="lead", actor=ADMIN)
    assert result["version"] == 2 and result["migration"]["total"] == 4
    job = run_migration(db, result["migration"]["id"], load=publishing.migration_chain)
    assert (job.status, job.done, job.failed) == ("done", 2, 2)
    with db.read() as s:
        first, second = get_record(s, leads[0]), get_record(s, leads[1])
        assert first.schema_version == 2
        assert first.data == {"name": "甲", "mobile": "13800000001", "score": 85,
                              "stage": "new"}
        assert (second.schema_version, second.data["score"]) == (1, "优秀")
        assert second.data["phone_no"] == "13800000002"  # untouched until fixed
        (step,) = history(s, leads[0])
        assert step.action == "migrate"
        assert step.diff["phone_no"] == ["13800000001", None]
        assert step.diff["score"] == ["85", 85]
        assert get_record(s, leads[3]).schema_version == 2


def test_a_record_behind_two_versions_is_converted_through_both(db, leads):
    with db.write() as s:
        publishing.publish(s, app="crm", key="lead", actor=ADMIN)  # v2, job not run yet
        v3 = {**V2, "fields": [*V2["fields"][:1], {"key": "phone", "label": "手机",
                                                   "type": "text", "renamed_from": "mobile"},
                               *V2["fields"][2:]]}
        forms.put_draft(s, app="crm", key="lead", raw=v3)
        result = publishing.publish(s, app="crm", key="lead", actor=ADMIN)
    run_migration(db, result["migration"]["id"], load=publishing.migration_chain)
    with db.read() as s:
        rec = get_record(s, leads[0])
    assert rec.schema_version == 3 and rec.data["phone"] == "13800000001"


def test_publish_through_the_api_runs_the_migration_in_the_background(db, leads, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    with client_as(app, db, "admin") as client:
        dry = ok(client.post("/api/v1/apps/crm/forms/lead/publish", params={"dry_run": True}))
        assert dry["dry_run"] is True and dry["migration"]["would_fail"] == 2
        done = ok(client.post("/api/v1/apps/crm/forms/lead/publish"))
        status = ok(client.get(f"/api/v1/apps/crm/forms/lead/migrations/"
                               f"{done['migration']['id']}"))
    assert (status["status"], status["done"], status["failed"]) == ("done", 2, 2)
    assert {f["record_id"] for f in status["failures"]} == {leads[1], leads[2]}


def test_making_a_field_unique_over_duplicates_is_refused(db, leads):
    with db.write() as s:
        pub = forms.published(s, "crm", "lead")
        records.create(s, pub, {"name": "甲"}, actor=ADMIN)
    unique = {**V1, "fields": [{**V1["fields"][0], "unique": True}, *V1["fields"][1:]]}
    from engine_forms.spec import SpecError

    with pytest.raises(SpecError, match="duplicate values"), db.write() as s:
        forms.put_draft(s, app="crm", key="lead", raw=unique)
        publishing.publish(s, app="crm", key="lead", actor=ADMIN)
    with db.read() as s:
        assert forms.get_form(s, "crm", "lead").published_version == 1


def test_dry_run_counts_the_records_each_change_touches(db, leads):
    v3 = {**V2, "fields": [*V2["fields"][:4],
                           {"key": "note", "label": "备注", "type": "textarea",
                            "required_if": 'stage == "new"'}]}
    with db.write() as s:
        forms.put_draft(s, app="crm", key="lead", raw=v3)
        plan = publishing.publish(s, app="crm", key="lead", actor=ADMIN, dry=True)
    impact = {i["change"]: (i["records"], i["examples"]) for i in plan["migration"]["impact"]}
    assert impact["renamed"] == (2, leads[:2])  # 甲 and 乙 have a phone number
    assert impact["type_changed"] == (3, leads[:3])  # 丁 has no score
    assert impact["options_removed"] == (1, [leads[2]])  # 丙 is 已流失
    assert impact["added_required"] == (1, [leads[0]])  # only 甲 is a new lead


def test_check_locates_each_expression_problem_and_writes_nothing(db, leads, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    bad = {**V2, "fields": [*V2["fields"][:4],
                            {"key": "note", "label": "备注", "type": "textarea",
                             "visible_if": 'stag == "new"',
                             "validate": [{"expression": "len(note) >", "message": "x"}]}]}
    with client_as(app, db, "admin") as client:
        found = ok(client.post("/api/v1/apps/crm/forms/lead/check", json=bad))["problems"]
        assert ok(client.post("/api/v1/apps/crm/forms/lead/check", json=V2)) == {"problems": []}
        refused = client.put("/api/v1/apps/crm/forms/lead", json=bad)
    by_attr = {p["attr"]: p for p in found}
    assert by_attr["visible_if"]["field"] == "note" and by_attr["visible_if"]["column"] == 1
    assert "未知字段 stag" in by_attr["visible_if"]["message_zh"]
    assert by_attr["validate.0"]["column"] == 12
    assert refused.status_code == 422  # the save meets the same problem
    assert "unknown field stag" in refused.text
    with db.read() as s:
        assert forms.get_form(s, "crm", "lead").draft["fields"][4]["key"] == "note"
        assert "visible_if" not in forms.get_form(s, "crm", "lead").draft["fields"][4]


def _stamp_reads(db, work) -> int:
    """How many times ``work`` reads the app's forms and their published versions."""
    return statements_sent(
        db, work, lambda sql: "forms.published_version, form_versions.published_at" in sql)


def test_a_write_reads_the_published_versions_once_and_sees_its_own_publication(db):
    """One user action validates against one publication, read once however many forms
    it touches; a form created or published in the same transaction is seen at once, and
    the next transaction reads afresh."""
    form_with_records(db, "crm", V1, [{"name": "甲"}])

    def three_creates() -> None:
        with db.write() as s:
            for name in ("乙", "丙", "丁"):
                records.create(s, forms.published(s, "crm", "lead"), {"name": name},
                               actor=ADMIN)

    assert _stamp_reads(db, three_creates) == 1
    assert _stamp_reads(db, three_creates) == 1  # the next transaction reads again

    def republish_and_use() -> None:
        with db.write() as s:
            assert forms.published(s, "crm", "lead").version == 1
            forms.put_draft(s, app="crm", key="lead", raw=V2)
            publishing.publish(s, app="crm", key="lead", actor=ADMIN)
            assert forms.published(s, "crm", "lead").version == 2
            forms.create_form(s, app="crm", raw={"key": "memo", "name": "备忘", "fields": [
                {"key": "text", "label": "内容", "type": "text"}]})
            publishing.publish(s, app="crm", key="memo", actor=ADMIN)
            memo = forms.published(s, "crm", "memo")
            records.create(s, memo, {"text": "同一事务"}, actor=ADMIN)

    republish_and_use()
    with db.read() as s:
        assert forms.published(s, "crm", "lead").version == 2
