"""Run every benchmark in this folder and print one table of their RESULT lines.

    python bench/run_all.py [--db sqlite|postgresql|both] [--full] [--only store,expressions]
                            [--skip load] [--markdown]

Discovers the scripts (every ``bench/*.py`` but this one and the shared ``targets.py``),
runs each in turn with sizes that fit the whole run in about 20 minutes on the 2-core
development machine (each script's ``--quick``, or small size flags for the scripts that have
none), and passes ``--db`` through to the scripts that take it. ``--full`` drops the size flags,
so each script runs at its documented sizes. Every ``RESULT metric=… ours=… baseline=…
ratio=… target=…`` line is collected; the table at the end says per metric whether the ratio
meets the target (``ok``/``MISS``), or ``?`` when a line has no numeric ratio or target;
a line with ``judge=ours`` (an absolute budget, e.g. the first start in seconds) compares
``ours`` with the target instead, and ``judge=min`` (a rate, e.g. rows per second) wants
``ours`` at or above it.
``--markdown`` prints the table as Markdown for ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"run_all", "targets"}

# Small sizes for the scripts without a --quick flag (the others get --quick).
QUICK_ARGS: dict[str, list[str]] = {
    "store": ["--create", "20000", "--query-records", "100000", "--repeat", "2", "--rounds", "3"],
}

RESULT = re.compile(r"RESULT\s+(.*)$")
FIELD = re.compile(r"(\w+)=(\S+)")


def discover() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem not in NOT_BENCHMARKS)


def command(name: str, db: str, full: bool) -> list[str]:
    source = (HERE / f"{name}.py").read_text(encoding="utf-8")
    cmd = [sys.executable, str(HERE / f"{name}.py")]
    if '"--db"' in source:
        cmd += ["--db", db]
    if not full:
        if name in QUICK_ARGS:
            cmd += QUICK_ARGS[name]
        elif '"--quick"' in source:
            cmd.append("--quick")
    return cmd


def parse_results(output: str) -> list[dict[str, str]]:
    rows = []
    for line in output.splitlines():
        match = RESULT.search(line)
        if match:
            rows.append(dict(FIELD.findall(match.group(1))))
    return rows


def verdict(row: dict[str, str]) -> str:
    try:
        if row.get("judge") == "min":
            return "ok" if float(row["ours"]) >= float(row["target"]) else "MISS"
        judged = row["ours"] if row.get("judge") == "ours" else row["ratio"]
        return "ok" if float(judged) <= float(row["target"]) else "MISS"
    except (KeyError, ValueError):
        return "?"


COLUMNS = ("metric", "baseline", "ours", "ratio", "target")


def print_table(rows: list[dict[str, str]], markdown: bool) -> None:
    table = [[row.get(c, "") for c in COLUMNS] + [verdict(row)] for row in rows]
    header = [*COLUMNS, "pass"]
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for cells in table:
            print("| " + " | ".join(cells) + " |")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table, strict=False)]
    for cells in [header, *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--full", action="store_true",
                        help="documented sizes (hours) instead of the 20-minute sizes")
    parser.add_argument("--only", default="",
                        help="comma-separated scripts to run (e.g. store,rules)")
    parser.add_argument("--skip", default="", help="comma-separated scripts to leave out")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)

    names = discover()
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - set(names)
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))} (have: {', '.join(names)})")
    names = [n for n in names if (not only or n in only) and n not in skip]

    rows: list[dict[str, str]] = []
    failed: list[str] = []
    for name in names:
        cmd = command(name, args.db, args.full)
        print(f"== {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
        took = time.perf_counter() - started
        found = parse_results(proc.stdout)
        print(f"   {len(found)} results in {took:.0f} s, exit {proc.returncode}",
              file=sys.stderr, flush=True)
        if proc.returncode:
            failed.append(name)
            print(proc.stderr[-2000:], file=sys.stderr)
        rows += found

    print_table(rows, args.markdown)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
