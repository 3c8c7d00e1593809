"""docs/expressions.md lists every function with its example, and its examples run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from platform_core.expressions import FUNCTIONS, ExprSchema, check, parse, register_builtins

DOC = Path(__file__).resolve().parents[2] / "docs" / "expressions.md"


@pytest.fixture(autouse=True, scope="module")
def _functions() -> None:
    register_builtins()


def test_every_function_is_documented_with_its_example() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name, fn in FUNCTIONS.items():
        example = f"`{fn.example.replace('|', chr(92) + '|')}`"
        rows = [r for r in re.findall(rf"^\| `{name}\(.*$", text, re.MULTILINE)
                if example in r and fn.zh in r and fn.en in r]
        assert rows, f"{name} (or its text, or example) is missing from docs/expressions.md"


def test_opening_examples_check() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("```\n", 2)[1]
    manager = ExprSchema.of({"name": "text"})
    schema = ExprSchema.of(
        {"loan_amount": "money", "maturity_date": "date", "discount": "number"},
        relations={"customer": ExprSchema.of({"city": "text"},
                                             relations={"manager": manager})},
        subtables={"items": ExprSchema.of({"qty": "number", "price": "money"})})
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 4
    for line in lines:
        check(parse(line), schema, need_sql=True)
