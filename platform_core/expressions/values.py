"""Run-time values and the environment of an evaluation.

In Python every number is an exact ``Decimal`` (money too); dates are ``date``,
date-times aware UTC ``datetime``, text ``str`` (never empty: "" is blank), booleans
``bool``, and blank is ``None``. Stored JSON values are read through ``FROM_STORAGE``;
a malformed stored value reads as blank rather than failing the evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import Any
from zoneinfo import ZoneInfo

# Exact for + - * up to 100 significant digits (PostgreSQL numeric is exact too); beyond
# 1E+200 a value overflows, and an overflow, an invalid operation or a division by zero
# gives blank, never an error.
CTX = Context(prec=100, rounding=ROUND_HALF_UP, Emax=200, Emin=-200,
              traps=[InvalidOperation, DivisionByZero, Overflow])
DIV_PLACES = 16
DIV_QUANTUM = Decimal(1).scaleb(-DIV_PLACES)
ZERO = Decimal(0)
CENT = Decimal("0.01")
DEFAULT_TZ = "Asia/Shanghai"


@dataclass(frozen=True)
class Env:
    """What an evaluation may depend on besides the record: the time zone of TODAY()/
    NOW(), the clock (tests freeze it) and ``related(record_id)`` for ``customer.city``."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TZ))
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    related: Callable[[int], Mapping[str, Any] | None] | None = None

    def now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def today(self) -> date:
        return self.clock().astimezone(self.tz).date()


DEFAULT_ENV = Env()


def read_text(v: Any) -> str | None:
    return v if v.__class__ is str and v else None


def read_number(v: Any) -> Decimal | None:
    cls = v.__class__
    if cls is str:  # money: "1234.50"
        return _decimal(v)
    if cls is int:
        return Decimal(v)
    if cls is float:
        return Decimal(repr(v)) if v - v == 0 else None  # not NaN / ±inf
    if cls is Decimal:
        return v if v.is_finite() else None
    return None


def _decimal(v: Any) -> Decimal | None:
    try:
        d = Decimal(v)
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def read_date(v: Any) -> date | None:
    if v.__class__ is str:
        try:
            return date.fromisoformat(v)
        except ValueError:
            return None
    return None


def read_datetime(v: Any) -> datetime | None:
    if v.__class__ is str:
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


def read_boolean(v: Any) -> bool | None:
    return v if v.__class__ is bool else None


def divide(a: Decimal, b: Decimal) -> Decimal | None:
    """``a / b`` rounded to 16 decimal places (half away from zero); blank when b is 0."""
    if not b:
        return None
    return CTX.divide(a, b).quantize(DIV_QUANTUM, context=CTX)


def modulo(a: Decimal, b: Decimal) -> Decimal | None:
    """Excel's MOD: the remainder has the sign of the divisor; blank when b is 0."""
    if not b:
        return None
    r = CTX.remainder(a, b)
    return CTX.add(r, b) if r and (r < 0) != (b < 0) else r


def power(a: Decimal, b: Decimal) -> Decimal | None:
    """Exact for integer exponents; otherwise rounded like a division (0^-1: blank)."""
    if b == b.to_integral_value():
        result = CTX.power(a, int(b))
    else:
        result = CTX.power(a, b).quantize(DIV_QUANTUM, context=CTX)
    return result if result.is_finite() else None


FROM_STORAGE: dict[str, Callable[[Any], Any]] = {
    "text": read_text, "number": read_number, "money": read_number, "date": read_date,
    "datetime": read_datetime, "boolean": read_boolean,
}


def plain(d: Decimal) -> str:
    """A number as text: no exponent, no trailing fractional zeros (``12.5``, ``3``)."""
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def money_text(d: Decimal) -> str:
    """An amount as text: two decimals, more only if they are not zeros (``1234.50``,
    ``0.125``)."""
    trimmed = d.normalize(CTX)
    return format(trimmed.quantize(CENT, context=CTX)
                  if trimmed.as_tuple().exponent > -2 else trimmed, "f")


def _boolean(v: Any, _env: Env) -> str:
    return "" if v is None else ("TRUE" if v else "FALSE")


def _number(v: Any, _env: Env) -> str:
    return "" if v is None else plain(v)


def _money(v: Any, _env: Env) -> str:
    return "" if v is None else money_text(v)


def _day(v: Any, _env: Env) -> str:
    return "" if v is None else v.isoformat()


def _moment(v: Any, env: Env) -> str:
    return "" if v is None else v.astimezone(env.tz).strftime("%Y-%m-%d %H:%M:%S")


def _text(v: Any, _env: Env) -> str:
    return v or ""


# How a value of each type is shown in ``&``, CONCAT and TEXT (blank → "").
TO_TEXT: dict[str, Callable[[Any, Env], str]] = {
    "boolean": _boolean, "number": _number, "money": _money, "date": _day,
    "datetime": _moment, "text": _text, "blank": _text,
}
