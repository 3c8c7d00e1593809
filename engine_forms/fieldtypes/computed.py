"""Values the engine computes: auto_number (on create) and formula (on every write)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar

from engine_forms.fieldtypes.base import FieldType, refuse

TOKEN = re.compile(r"\{(YYYY|YY|MM|DD|YYYYMMDD|YYYYMM|0+)\}")


def period_of(pattern: str, today: date) -> str:
    """The counter's period: numbering restarts when the date part of the pattern changes."""
    parts = {"YYYY": f"{today:%Y}", "YY": f"{today:%y}", "MM": f"{today:%m}",
             "DD": f"{today:%d}", "YYYYMMDD": f"{today:%Y%m%d}", "YYYYMM": f"{today:%Y%m}"}
    used = [m.group(1) for m in TOKEN.finditer(pattern) if not m.group(1).startswith("0")]
    return "".join(parts[u] for u in used) or "all"


def render_number(pattern: str, today: date, n: int) -> str:
    def sub(m: re.Match[str]) -> str:
        token = m.group(1)
        if token.startswith("0"):
            return str(n).zfill(len(token))
        return period_of("{" + token + "}", today)
    return TOKEN.sub(sub, pattern)


class AutoNumberType(FieldType):
    """``LN-{YYYYMMDD}-{0000}``: gap-free and unique, numbered in the creating transaction."""

    key, label, kind, computed = "auto_number", "自动编号", "text", True
    config_schema: ClassVar[dict[str, Any]] = {
        "pattern": {"type": "string", "minLength": 1, "maxLength": 60}}
    config_required = ("pattern",)

    def check_config(self, field: Any, form: Any) -> list[str]:  # noqa: ARG002
        pattern = field.config["pattern"]
        counters = [m for m in TOKEN.finditer(pattern) if m.group(1).startswith("0")]
        if len(counters) != 1:
            return [f"auto_number {field.key!r}: the pattern needs exactly one counter such "
                    "as {0000}"]
        stray = TOKEN.sub("", pattern)
        if "{" in stray or "}" in stray:
            return [f"auto_number {field.key!r}: unknown token in {pattern!r} (use YYYY, YY, "
                    "MM, DD, YYYYMM, YYYYMMDD and one {000…})"]
        return []

    def coerce(self, value: Any, field: Any) -> Any:  # noqa: ARG002
        raise refuse("computed", "自动编号由系统生成, 不能填写",
                     "is numbered automatically; it cannot be set")


class FormulaType(FieldType):
    """A value computed by an expression on every write, stored so it can be filtered."""

    key, label, computed = "formula", "公式", True
    config_schema: ClassVar[dict[str, Any]] = {
        "expression": {"type": "string", "minLength": 1, "maxLength": 4000}}
    config_required = ("expression",)

    def value_kind(self, field: Any) -> str | None:
        return field.config.get("result_kind")  # filled in by the spec's expression check

    def coerce(self, value: Any, field: Any) -> Any:  # noqa: ARG002
        raise refuse("computed", "公式字段由系统计算, 不能填写", "is computed; it cannot be set")
