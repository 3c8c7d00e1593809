"""Benchmark: evaluate 15-node formulas over 100,000 records with the expression language,
against hand-written Python functions computing the same values (checked equal).

Both sides start from the stored JSON dicts (money as decimal strings, dates as ISO text)
and produce the same Python values; the best of 7 alternating passes is kept for each.

Prints one line per metric, ``RESULT metric=<name> ours=<s> baseline=<s> ratio=<r>
target=<t>``, plus a human-readable line. Run: ``python bench/expressions.py [--quick]``.
No database is involved: ``--db`` is accepted like every bench script's and changes
nothing; ``--quick`` keeps the size and takes the best of 3 passes instead of 7.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from platform_core.expressions import ExprSchema, Formula, register_builtins  # noqa: E402
from platform_core.store import kinds  # noqa: E402

N = 100_000
TARGET = 8.0
# two formulas of 15 nodes each; money_by_hand / dates_by_hand compute the same values
MONEY = 'IF(AND(loan_amount >= 1000000, status = "approved"), ROUND(loan_amount * rate / 12, 2))'
DATES = ('IF(DAYS_BETWEEN(sign_date, due_date) > 365, "长期-" & status, '
         'IF(NOT ISBLANK(fee), status, "无费用"))')
CENT = Decimal("0.01")
TWELVE = Decimal(12)
MILLION = Decimal(1000000)


def records(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(42)
    out = []
    for _ in range(n):
        start = date(2024, 1, 1).toordinal() + rnd.randrange(366)
        out.append({
            "loan_amount": f"{rnd.randrange(10_000, 5_000_000)}.{rnd.randrange(100):02d}",
            "status": rnd.choice(["approved", "pending", "rejected"]),
            "rate": rnd.choice([0.0435, 0.049, 0.052, 0.06]),
            "fee": rnd.choice([None, f"{rnd.randrange(1, 5000)}.00"]),
            "sign_date": date.fromordinal(start).isoformat(),
            "due_date": date.fromordinal(start + rnd.randrange(30, 720)).isoformat(),
        })
    return out


def money_by_hand(d: dict[str, Any]) -> Decimal | None:
    """MONEY, written by hand as a developer would (exact decimals)."""
    amount = Decimal(d["loan_amount"])
    if amount >= MILLION and d["status"] == "approved":
        monthly = amount * Decimal(repr(d["rate"])) / TWELVE
        return monthly.quantize(CENT, rounding=ROUND_HALF_UP)
    return None


def dates_by_hand(d: dict[str, Any]) -> str:
    """DATES, written by hand."""
    days = (date.fromisoformat(d["due_date"]) - date.fromisoformat(d["sign_date"])).days
    if days > 365:
        return "长期-" + d["status"]
    return d["status"] if d.get("fee") else "无费用"


Row = dict[str, Any]


def timed(fn: Callable[[Row], Any], data: list[Row]) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    result = [fn(d) for d in data]
    return time.perf_counter() - start, result


def best_of(runs: int, ours: Callable[[dict[str, Any]], Any],
            base: Callable[[dict[str, Any]], Any], data: list[dict[str, Any]]
            ) -> tuple[float, float, list[Any], list[Any]]:
    """The best wall time of each side over ``runs`` alternating passes (and results)."""
    best_ours = best_base = float("inf")
    got: list[Any] = []
    want: list[Any] = []
    for _ in range(runs):
        t, got = timed(ours, data)
        best_ours = min(best_ours, t)
        t, want = timed(base, data)
        best_base = min(best_base, t)
    return best_ours, best_base, got, want


def measure(metric: str, text: str, by_hand: Callable[[dict[str, Any]], Any],
            data: list[dict[str, Any]], passes: int = 7) -> None:
    schema = ExprSchema.of({"loan_amount": "money", "status": "text", "rate": "number",
                            "fee": "money", "sign_date": "date", "due_date": "date"})
    formula = Formula.build(text, schema)
    ours, base, got, want = best_of(passes, formula.evaluate, by_hand, data)
    if got != want:
        raise SystemExit(f"{metric}: the formula and the hand-written function disagree")
    ratio = ours / base
    print(f"{metric}: {text}  ({formula.typed.size} nodes, {len(data):,} records) "
          f"ours {ours:.3f} s, hand-written {base:.3f} s, {ratio:.2f}x (target <= {TARGET:g}x)")
    print(f"RESULT metric={metric} ours={ours:.4f} baseline={base:.4f} ratio={ratio:.2f} "
          f"target={TARGET:g}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both",
                        help="accepted for symmetry; the expressions touch no database")
    parser.add_argument("--quick", action="store_true", help="best of 3 passes, not 7")
    args = parser.parse_args(argv)
    kinds.register_builtins()
    register_builtins()
    data = records(N)
    passes = 3 if args.quick else 7
    measure("expr_eval_money_15_nodes_100k", MONEY, money_by_hand, data, passes)
    measure("expr_eval_dates_text_15_nodes_100k", DATES, dates_by_hand, data, passes)


if __name__ == "__main__":
    main()
