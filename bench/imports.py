"""Benchmark of spreadsheet import (issue 21): a 20-column xlsx into the CRM template's
customer form, end to end, against python-calamine merely reading the same file.

``imports_xlsx_<N>_<db>``: N rows (default 100,000; ``--quick``: 100,000 too, one
round) of ``tests/data/make_messy.big_xlsx`` (names, unique mobiles and ID numbers,
selects by label, yes/no, money, dates as Excel dates, …).

* ours: ``engine_forms.imports.service.start`` (open the file, suggested mapping, rights,
  queue) then ``runner.run`` — read the sheet (calamine, streaming), map and coerce each
  cell (``RowReader``), find duplicates of the unique fields (mobile, ID number) in the
  store, validate, ``create_many`` per 1,000-row chunk with its history/outbox rows and
  indexes, ``ImportRow``s and the batch's counters in the same transaction — as the
  command line does (``--skip-invalid``: one transaction per chunk), acting as the system.
  Run in a forked child so its peak memory (ru_maxrss) is its own.
* baseline: ``CalamineWorkbook.from_path(…).get_sheet_by_index(0).iter_rows()`` consumed.

Prints ``RESULT metric=imports_xlsx_<N>_<db> ours=<s> baseline=<s> ratio=<r> target=4``,
then ``RESULT metric=imports_rows_per_s_<N>_<db> ours=<rows/s> target=20000 judge=min`` and
``RESULT metric=imports_peak_mb_<N>_<db> ours=<MB> target=400 judge=ours``. The file is
``make_messy.big_xlsx``.

Usage::

    python bench/imports.py [--db sqlite|postgresql|both] [--rows N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from targets import DEFAULT_PG_URL, choose_targets  # noqa: E402


def write_file(path: Path, n: int) -> Path:
    """``make_messy.big_xlsx``: names, unique mobiles and ID numbers, plausible rest."""
    from tests.data.make_messy import big_xlsx

    return big_xlsx(path, n)


def baseline(path: Path) -> float:
    from python_calamine import CalamineWorkbook

    started = time.perf_counter()
    n = sum(1 for _ in CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
            .iter_rows())
    took = time.perf_counter() - started
    assert n > 1
    return took


def prepare(url: str) -> None:
    from platform_core.db import Database
    from platform_core.migrate import upgrade
    from platform_core.store import kinds
    from templates_catalog.bundle import template
    from templates_catalog.install import install
    from tests.security_setup import SYSTEM

    kinds.register_builtins()
    db = Database.from_url(url)
    upgrade(db.engine)
    from engine_forms import fieldtypes
    from platform_core import expressions

    expressions.register_builtins()
    fieldtypes.register_builtins()
    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    db.dispose()


def ours(url: str, path: Path, data_dir: Path) -> dict:
    """In this (child) process: start and run the batch; its counters and time."""
    from engine_forms import fieldtypes
    from engine_forms.forms import published
    from engine_forms.imports import mapping, runner, service
    from engine_forms.imports.chunks import system_principal
    from engine_forms.imports.reading import open_table
    from engine_forms.models import ImportBatch
    from engine_forms.service import Caller
    from platform_core import expressions
    from platform_core.db import Database
    from platform_core.store import kinds

    kinds.register_builtins()
    expressions.register_builtins()
    fieldtypes.register_builtins()
    from platform_core.security.crypto import Keyring
    from platform_core.settings import load_settings

    keyring = Keyring.load(load_settings(data_dir=data_dir, encryption_keys=""))
    db = Database.from_url(url)
    started = time.perf_counter()
    with path.open("rb") as stream:
        saved = service.upload(data_dir, path.name, stream, limit=2**40)
    with db.write() as s:
        pub = published(s, "crm", "customer")
        principal = system_principal()
        caller = Caller(principal, principal.access("crm", "customer"), keyring)
        table = open_table(saved, filename=path.name)
        chosen = mapping.suggest(pub, table.header)
        batch = service.start(s, caller, pub, path=saved, filename=path.name,
                              mapping=chosen, options=service.ImportOptions(atomic=False),
                              dry_run=False)
        batch_id = batch.id
        mapped = sum(1 for c in chosen.columns if c.field)
    me = runner.worker_id("bench")
    runner.claim(db, me, batch_id=batch_id)
    runner.run(db, batch_id, me, keyring=keyring)
    took = time.perf_counter() - started
    with db.read() as s:
        b = s.get(ImportBatch, batch_id)
        out = {"seconds": took, "status": b.status, "created": b.created,
               "failed": b.failed, "rows": b.rows_done, "mapped": mapped,
               "error": b.error}
    db.dispose()
    return out


def in_child(url: str, path: Path, data_dir: Path) -> tuple[dict, float]:
    """``ours`` in a forked child: (its result, its peak RSS in MB)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            result = ours(url, path, data_dir)
        except BaseException as exc:  # noqa: BLE001 - reported by the parent
            result = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    _pid, _status, usage = os.wait4(pid, 0)
    return json.loads(b"".join(chunks)), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="one round (under 3 minutes)")
    parser.add_argument("--pg-url", default=os.environ.get("QIAO_BENCH_PG_URL",
                                                           DEFAULT_PG_URL))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qiao_bench_imports_"))
    path = work / "customers.xlsx"
    started = time.perf_counter()
    write_file(path, args.rows)
    print(f"set-up: {args.rows:,} rows × 20 columns xlsx written in "  # noqa: T201
          f"{time.perf_counter() - started:.1f} s ({path.stat().st_size / 1e6:.1f} MB)")
    rounds = 1 if args.quick else 3
    for target in choose_targets(args.db, args.pg_url, "qiao_bench_imports"):
        times, base, peak, last = [], [], 0.0, {}
        for _ in range(rounds):
            url = target.fresh_url()
            prepare(url)
            last, rss = in_child(url, path, work / target.name)
            if "seconds" not in last or last["status"] != "done" or last["failed"]:
                raise SystemExit(f"{target.name}: {last}")
            times.append(last["seconds"])
            peak = max(peak, rss)
            base.append(baseline(path))
        target.close()
        t, b = sorted(times)[len(times) // 2], sorted(base)[len(base) // 2]
        n = args.rows
        print(f"{target.name}: {last['status']}, {last['created']:,} created, "  # noqa: T201
              f"{last['failed']} with problems, {last['mapped']} columns mapped; ours "
              f"{t:.2f} s, calamine read {b:.2f} s")
        print(f"RESULT metric=imports_xlsx_{n}_{target.name} ours={t:.3f} "  # noqa: T201
              f"baseline={b:.3f} ratio={t / b:.2f} target=4")
        print(f"RESULT metric=imports_rows_per_s_{n}_{target.name} "  # noqa: T201
              f"ours={n / t:.0f} target=20000 judge=min")
        print(f"RESULT metric=imports_peak_mb_{n}_{target.name} ours={peak:.0f} "  # noqa: T201
              f"target=400 judge=ours")


if __name__ == "__main__":
    main()
