"""Domain helpers: ID_VALID ID_BIRTHDATE ID_GENDER (Chinese 18-digit resident ID) and MASK.

An ID is valid when it has 17 digits and a check character (0-9 or X) that matches ISO
7064 MOD 11-2, and its digits 7-14 are a real date. For an invalid ID, ID_BIRTHDATE and
ID_GENDER are blank (and ID_VALID is FALSE) — they never guess.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from platform_core.expressions.functions.base import Function, p
from platform_core.expressions.types import BOOLEAN, DATE, TEXT

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"


def id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits."""
    return CHECK[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def _birthdate(number: str | None) -> date | None:
    """The birth date of a valid ID, else None."""
    if number is None or len(number) != 18:
        return None
    body, check = number[:17], number[17].upper()
    if not (body.isascii() and body.isdigit()) or id_check_char(body) != check:
        return None
    try:
        return date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        return None


def id_gender(number: str | None) -> str | None:
    if number is None or _birthdate(number) is None:
        return None
    return "男" if int(number[16]) % 2 else "女"


def mask(text: str | None, keep_start: Decimal | None = None,
         keep_end: Decimal | None = None, char: str | None = None) -> str | None:
    """Keep the first/last characters, mask the rest; too short → everything masked."""
    if text is None:
        return None
    head = 3 if keep_start is None else max(int(keep_start), 0)
    tail = 4 if keep_end is None else max(int(keep_end), 0)
    symbol = (char or "*")[0]
    if len(text) <= head + tail:
        return symbol * len(text)
    return text[:head] + symbol * (len(text) - head - tail) + text[len(text) - tail:]


ID = p("id_number", "text")
DEFS = [
    Function("ID_VALID", "domain", (ID,), BOOLEAN, py=lambda s: _birthdate(s) is not None,
             zh="是否为有效的 18 位身份证号 (校验码和出生日期)",
             en="TRUE for a valid 18-digit resident ID (check digit and birth date)",
             example="ID_VALID(id_number)"),
    Function("ID_BIRTHDATE", "domain", (ID,), DATE, py=_birthdate,
             zh="身份证号中的出生日期; 无效号码为空",
             en="the birth date in a resident ID; blank if the ID is invalid",
             example="ID_BIRTHDATE(id_number)"),
    Function("ID_GENDER", "domain", (ID,), TEXT, py=id_gender,
             zh='身份证号对应的性别 "男" 或 "女"; 无效号码为空',
             en='"男" (male) or "女" (female) from a resident ID; blank if invalid',
             example='ID_GENDER(id_number) = "女"'),
    Function("MASK", "domain", (p("text", "text"), p("keep_start", "number", optional=True),
                                p("keep_end", "number", optional=True),
                                p("char", "text", optional=True)), TEXT, py=mask,
             zh="脱敏: 保留前 keep_start (默认 3) 和后 keep_end (默认 4) 个字符; 太短则全部遮盖",
             en="mask all but the first keep_start (3) and last keep_end (4) characters; "
                "masks everything when too short",
             example="MASK(id_number, 4, 4)"),
]
