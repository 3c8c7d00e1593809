"""``qiao import`` as a user runs it: a dry run, an upsert by mobile, status and revert;
and the round trip: a list exported through the API imports into an empty copy of the
form with equal records."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.engine_forms.forms_setup import ok
from tests.engine_forms.imports.conftest import BASE, count, customers
from tests.engine_forms.imports.test_kill import env_for


def qiao(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "platform_core", "import", *args], env=env,
                          capture_output=True, text=True, timeout=180)


def test_cli_dry_run_upsert_status_and_revert(db, crm, tmp_path, database_url):
    _app, admin = crm
    ok(admin.post(BASE + "/records", json={"name": "张三", "mobile": "13800000001",
                                             "city": "北京"}), 201)
    file = tmp_path / "客户.csv"
    file.write_text("姓名,手机,城市\n张三,13800000001,杭州\n李四,13800000002,上海\n",
                    encoding="utf-8")
    env = env_for(tmp_path, database_url)
    dry = qiao(env, str(file), "--app", "crm", "--form", "customer", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "done (dry run)" in dry.stdout and count(db) == 1
    run = qiao(env, str(file), "--app", "crm", "--form", "customer", "--mode", "upsert",
               "--key", "mobile")
    assert run.returncode == 0, run.stderr
    assert "1 created, 1 updated" in run.stdout and "rows/s" in run.stderr
    batch_id = run.stdout.split()[1].rstrip(":")
    assert customers(db)["张三"]["city"] == "杭州"
    shown = qiao(env, "status", batch_id)
    assert json.loads(shown.stdout)["updated"] == 1
    undone = qiao(env, "revert", batch_id)
    assert "1 removed, 1 restored" in undone.stdout, undone.stderr
    assert customers(db)["张三"]["city"] == "北京" and count(db) == 1
    refused = qiao(env, str(file), "--app", "crm", "--form", "customer", "--mode", "upsert")
    assert refused.returncode != 0 and "key" in (refused.stdout + refused.stderr)


def test_an_exported_list_imports_into_an_empty_copy_with_equal_records(db, crm):
    _app, admin = crm
    for i in range(5):
        ok(admin.post(BASE + "/records", json={"name": f"客户{i}", "mobile": f"1380000000{i}",
                                                 "city": ["北京", "上海"][i % 2]}), 201)
    exported = admin.get(BASE + "/export", params={"format": "xlsx"})
    assert exported.status_code == 200
    spec = ok(admin.get(BASE))["draft"]
    ok(admin.post("/api/v1/apps/crm/forms", json={**spec, "key": "customer_copy",
                                                   "fields": [f for f in spec["fields"]
                                                              if f["type"] != "rollup"]}),
       201)
    ok(admin.post("/api/v1/apps/crm/forms/customer_copy/publish"))
    done = ok(admin.post("/api/v1/apps/crm/forms/customer_copy/imports", files={
        "file": ("export.xlsx", exported.content)}, data={"wait": "true"}))
    assert done["status"] == "done" and done["created"] == 5, done
    copy = ok(admin.get("/api/v1/apps/crm/forms/customer_copy/records",
                        params={"sort": "id", "limit": 50}))["items"]
    original = ok(admin.get(BASE + "/records", params={"sort": "id", "limit": 50}))["items"]
    strip = ("loans", "total")

    def data(items):  # the export lists newest first: compare by name
        return sorted(({k: v for k, v in r["data"].items() if k not in strip}
                       for r in items), key=lambda d: d["name"])
    assert data(copy) == data(original)
