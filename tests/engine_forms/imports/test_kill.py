"""SIGKILL a real ``qiao import`` mid-file: no half chunk remains (every committed record
has its ImportRow, ``rows_done`` matches them), and ``qiao import resume`` completes the
batch with no duplicates. On SQLite and PostgreSQL (whichever the suite runs on)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy import func, select

from engine_forms.models import ImportBatch, ImportRow
from tests.engine_forms.imports.conftest import count

ROWS = 50_000


def env_for(tmp_path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIAO_")}
    return env | {"QIAO_DATA_DIR": str(tmp_path), "QIAO_DATABASE_URL": database_url,
                  "QIAO_BACKGROUND_JOBS": "false"}


def _state(db) -> tuple[int, int, int, str]:
    with db.read() as s:
        batch = s.execute(select(ImportBatch)).scalar_one()
        rows = s.execute(select(func.count()).select_from(ImportRow)).scalar_one()
        return batch.id, batch.rows_done, rows, batch.status


def test_a_killed_import_leaves_whole_chunks_and_resumes_without_duplicates(
        db, crm, tmp_path, database_url):
    file = tmp_path / "big.csv"
    file.write_text("姓名,手机,城市\n" + "".join(
        f"客户{i},139{i:08d},北京\n" for i in range(ROWS)), encoding="utf-8")
    env = env_for(tmp_path, database_url)
    proc = subprocess.Popen([sys.executable, "-m", "platform_core", "import", str(file),
                             "--app", "crm", "--form", "customer", "--skip-invalid"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            with db.read() as s:
                done = s.execute(select(ImportBatch.rows_done)).scalar()
            if done and done >= 3000:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    batch_id, done, rows, status = _state(db)
    assert status == "running" and 0 < done < ROWS
    assert done % 1000 == 0 and rows == done == count(db)  # whole chunks only

    resumed = subprocess.run([sys.executable, "-m", "platform_core", "import", "resume",
                              str(batch_id)], env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"import {batch_id}: done" in resumed.stdout
    batch_id, done, rows, status = _state(db)
    assert (status, done, rows) == ("done", ROWS, ROWS)
    assert count(db) == ROWS
    with db.read() as s:
        created = s.execute(select(ImportBatch.created)).scalar_one()
    assert created == ROWS
