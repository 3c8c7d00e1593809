"""AST → canonical text (``parse(unparse(e))`` gives ``e`` back, positions aside)."""

from __future__ import annotations

from decimal import Decimal

from platform_core.expressions.nodes import Binary, Call, Each, Expr, Field, In, Literal, Unary


def _literal(value: Decimal | str | bool | None) -> str:
    if value is None:
        return "BLANK()"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text if not text.startswith("-") else f"({text})"
    return '"' + value.replace('"', '""') + '"'


def unparse(node: Expr) -> str:
    """Canonical text: every operation parenthesised, names as written, literals exact."""
    if isinstance(node, Literal):
        return _literal(node.value)
    if isinstance(node, Field):
        return node.name
    if isinstance(node, Unary):
        sep = " " if node.op == "NOT" else ""
        return f"({node.op}{sep}{unparse(node.operand)})"
    if isinstance(node, Binary):
        return f"({unparse(node.left)} {node.op} {unparse(node.right)})"
    if isinstance(node, In):
        items = ", ".join(unparse(i) for i in node.items)
        keyword = "NOT IN" if node.negated else "IN"
        return f"({unparse(node.needle)} {keyword} ({items}))"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(unparse(a) for a in node.args)})"
    if isinstance(node, Each):
        return unparse(node.body)
    raise TypeError(f"not an expression node: {node!r}")
