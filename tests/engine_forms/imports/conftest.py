"""Shared set-up of the batch tests: the small CRM app of the API tests (customers with a
unique, masked mobile; loan cases), an admin client, files made on the fly and a worker
run in the test's own thread."""

from __future__ import annotations

import io
from typing import Any

import pytest
import xlsxwriter
from sqlalchemy import func, select

from engine_forms.imports import runner
from platform_core.app import create_app
from platform_core.models import Record
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import make_crm, ok
from tests.security_setup import client_as

BASE = "/api/v1/apps/crm/forms/customer"
IMPORTS = BASE + "/imports"


@pytest.fixture
def crm(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    admin = client_as(app, db, "admin")
    make_crm(admin)
    return app, admin


def xlsx(rows: list[list[Any]]) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("客户")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is not None:
                sheet.write(r, c, value)
    book.close()
    return out.getvalue()


def csv(rows: list[list[Any]]) -> bytes:
    return "\n".join(",".join("" if v is None else str(v) for v in row)
                     for row in rows).encode()


def start(client: Any, content: bytes, filename: str = "客户.csv", status: int = 202,
          **fields: Any) -> dict[str, Any]:
    data = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}
    return ok(client.post(IMPORTS, files={"file": (filename, content)}, data=data), status)


def work(db) -> int:
    """Run every queued import here (tests keep the background loop off)."""
    n = 0
    while runner.run_next(db, runner.worker_id("test")):
        n += 1
    return n


def status(client: Any, batch_id: int) -> dict[str, Any]:
    return ok(client.get(f"{IMPORTS}/{batch_id}"))


def customers(db) -> dict[str, dict[str, Any]]:
    """Live customers by name."""
    with db.read() as s:
        rows = s.execute(select(Record).where(Record.form == "customer",
                                              Record.deleted_at.is_(None))).scalars()
        return {r.data["name"]: {"id": r.id, "row_version": r.row_version, **r.data}
                for r in rows}


def count(db) -> int:
    with db.read() as s:
        return s.execute(select(func.count()).select_from(Record).where(
            Record.form == "customer", Record.deleted_at.is_(None))).scalar_one()
