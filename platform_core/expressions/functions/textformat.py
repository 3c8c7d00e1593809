"""TEXT(value, format): the small, Excel-like subset of number and date formats.

Numbers: an optional prefix and suffix around a core of ``#``, ``0``, ``,`` and ``.`` —
``0.00``, ``#,##0``, ``¥#,##0.00``, ``0.0%`` (``%`` multiplies by 100), ``0.00元``.
Dates and date-times: ``yyyy yy m mm d dd h hh s ss`` (``m``/``mm`` next to hours or
seconds are minutes), any other character is kept: ``yyyy年m月d日``, ``yyyy-mm-dd hh:mm``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from platform_core.expressions.values import CTX, TO_TEXT, Env

NUMBER_CORE = re.compile(r"[#0,]*[#0](?:\.[#0]+)?|\.[#0]+")
DATE_TOKEN = re.compile(r"yyyy|yy|mm|m|dd|d|hh|h|ss|s", re.IGNORECASE)


def format_value(value: Any, type_name: str, pattern: str | None, env: Env) -> str | None:
    if value is None:
        return None
    if pattern is None:
        return TO_TEXT[type_name](value, env) or None
    if type_name in ("number", "money"):
        return format_number(value, pattern)
    if type_name == "datetime":
        return format_date(value.astimezone(env.tz), pattern)
    if type_name == "date":
        return format_date(value, pattern)
    return TO_TEXT[type_name](value, env) or None


def format_number(value: Decimal, pattern: str) -> str:
    match = NUMBER_CORE.search(pattern)
    if match is None:
        return pattern
    prefix, core, suffix = pattern[: match.start()], match.group(), pattern[match.end():]
    if "%" in suffix:
        value = CTX.multiply(value, Decimal(100))
    places = len(core.split(".")[1]) if "." in core else 0
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=CTX)
    body = f"{rounded:,.{places}f}" if "," in core else f"{rounded:.{places}f}"
    return prefix + body + suffix


def format_date(value: date | datetime, pattern: str) -> str:
    tokens = list(DATE_TOKEN.finditer(pattern))
    out, last = [], 0
    for i, tok in enumerate(tokens):
        out.append(pattern[last: tok.start()])
        out.append(_date_part(value, tok.group().lower(), tokens, i))
        last = tok.end()
    out.append(pattern[last:])
    return "".join(out)


def _date_part(value: date | datetime, token: str, tokens: list[re.Match[str]], i: int) -> str:
    if token[0] == "m":
        prev = tokens[i - 1].group().lower()[0] if i > 0 else ""
        nxt = tokens[i + 1].group().lower()[0] if i + 1 < len(tokens) else ""
        minutes = isinstance(value, datetime) and (prev == "h" or nxt == "s")
        number = value.minute if minutes else value.month
        return f"{number:02d}" if len(token) == 2 else str(number)
    if token in ("yyyy", "yy"):
        return f"{value.year:04d}" if token == "yyyy" else f"{value.year % 100:02d}"
    number = {"d": value.day, "h": getattr(value, "hour", 0),
              "s": getattr(value, "second", 0)}[token[0]]
    return f"{number:02d}" if len(token) == 2 else str(number)
