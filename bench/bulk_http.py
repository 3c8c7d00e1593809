"""Benchmark of HTTP bulk create (``POST /api/v1/apps/{app}/forms/{form}/records/bulk``)
against the store's bare ``create_records`` of the same rows, on SQLite and PostgreSQL.

``bulk_http_<N>_<db>``: N rows of a 10-column form (8 text, a number, a date) sent in
requests of ``--batch`` rows through the whole HTTP stack in-process: FastAPI's
``TestClient`` (httpx over the ASGI app, no socket), a real API token through the real
guard, JSON encoding both ways. ``return=minimal`` (ids only) unless ``--full``.
Baseline: ``platform_core.store.create_records`` of the documents the engine stores, in
the same batches, one transaction each. The API token's limit is raised for the run (the
bench measures the path, not the rate limit).

Usage::

    python bench/bulk_http.py [--db sqlite|postgresql|both] [--quick] [--rows N]
                              [--batch N] [--full] [--pg-url URL]

Prints ``RESULT metric=bulk_http_<N>_<db> ours=… baseline=… ratio=… target=-`` (seconds;
no target on the ratio) and ``RESULT metric=bulk_http_rows_per_s_<N>_<db> ours=<rows/s>
target=20000 judge=min`` (``target=-`` on PostgreSQL), and rows/s for each side. No
assertions on time. Target: >= 20,000 rows/s on SQLite through HTTP.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from targets import DEFAULT_PG_URL, Target, choose_targets, chunks

from engine_forms import fieldtypes
from platform_core import expressions
from platform_core.app import create_app
from platform_core.security.auth import issue_token
from platform_core.security.directory import ensure_builtin_roles
from platform_core.security.models import Role, User, UserRole
from platform_core.settings import load_settings
from platform_core.store import Actor, create_records, kinds

SCRATCH_DB = "qiao_bench_bulk_http"
APP, FORM = "bench", "contact"
SYSTEM = Actor(user_id=None, name="bench")
TEXTS = ["name", "company", "city", "street", "title", "source", "note", "tag"]
SPEC: dict[str, Any] = {
    "key": FORM, "name": "联系人", "title_field": "name",
    "fields": [{"key": k, "label": k, "type": "text"} for k in TEXTS]
    + [{"key": "score", "label": "score", "type": "number"},
       {"key": "met_on", "label": "met_on", "type": "date"}]}


def rows(n: int) -> list[dict[str, Any]]:
    day = date(2026, 1, 1)
    return [{**{k: f"{k}-{i}" for k in TEXTS}, "score": i % 100,
             "met_on": (day + timedelta(days=i % 300)).isoformat()} for i in range(n)]


def signed_in(app: Any, db: Any) -> TestClient:
    with db.write() as s:
        ensure_builtin_roles(s)
        user = User(username="bench", display_name="bench", password_hash="x")
        s.add(user)
        s.flush()
        s.add(UserRole(user_id=user.id, role_id=s.query(Role).filter(Role.key == "admin")
                       .one().id))
        secret = issue_token(s, user_id=user.id, name="bench", actor=SYSTEM)[1]
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {secret}"
    return client


def ok(resp: Any, status: int = 200) -> Any:
    if resp.status_code != status:
        raise SystemExit(f"{resp.request.method} {resp.request.url}: {resp.status_code} "
                         f"{resp.text[:300]}")
    return resp.json()


def run_target(target: Target, args: argparse.Namespace) -> str:
    data = rows(args.rows)
    db = target.fresh()
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(load_settings(data_dir=tmp, api_rate_per_minute=10**9), db=db)
        client = signed_in(app, db)
        ok(client.post("/api/v1/apps", json={"key": APP, "name": "bench"}), 201)
        ok(client.post(f"/api/v1/apps/{APP}/forms", json=SPEC), 201)
        ok(client.post(f"/api/v1/apps/{APP}/forms/{FORM}/publish"))
        url = f"/api/v1/apps/{APP}/forms/{FORM}/records/bulk"
        params = {} if args.full else {"return": "minimal"}
        ok(client.post(url, params=params, json={"records": data[:10]}), 201)  # warm up
        start = time.perf_counter()
        for batch in chunks(data, args.batch):
            ok(client.post(url, params=params, json={"records": list(batch)}), 201)
        ours = time.perf_counter() - start
        client.close()
    db.engine.dispose()
    db = target.fresh()
    docs = data  # the stored documents equal the payloads for these types
    start = time.perf_counter()
    for batch in chunks(docs, args.batch):
        with db.write() as s:
            create_records(s, app=APP, form=FORM, items=batch, actor=SYSTEM)
    base = time.perf_counter() - start
    db.engine.dispose()
    n = args.rows
    mode = "full" if args.full else "minimal"
    print(f"{target.name}: http ({mode}) {n / ours:,.0f} rows/s, "  # noqa: T201
          f"store {n / base:,.0f} rows/s")
    goal = "20000 judge=min" if target.name == "sqlite" else "-"
    return (f"RESULT metric=bulk_http_{n}_{target.name} ours={ours:.4f} baseline={base:.4f} "
            f"ratio={ours / base:.3f} target=-\n"
            f"RESULT metric=bulk_http_rows_per_s_{n}_{target.name} ours={n / ours:.0f} "
            f"target={goal}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="5,000 rows instead of 20,000")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--full", action="store_true", help="answer the created records")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args(argv)
    args.rows = args.rows or (5000 if args.quick else 20000)
    kinds.register_builtins()
    expressions.register_builtins()
    fieldtypes.register_builtins()
    targets = choose_targets(args.db, args.pg_url, SCRATCH_DB)
    lines = []
    try:
        for target in targets:
            lines.append(run_target(target, args))
    finally:
        for target in targets:
            target.close()
    for line in lines:
        print(line)  # noqa: T201


if __name__ == "__main__":
    main()
