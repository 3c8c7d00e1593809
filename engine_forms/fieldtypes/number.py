"""Numeric types: number, money (exact decimal), percent."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, ClassVar

from engine_forms.fieldtypes.base import DEFER, FieldType, plain, refuse

CENT = Decimal("0.01")
RANGE: dict[str, Any] = {"min": {"type": "number"}, "max": {"type": "number"}}
# how a spreadsheet writes an amount's unit: 1.5万 = 15,000; 2亿 = 200,000,000
UNITS = (("亿元", 100_000_000), ("亿", 100_000_000), ("万元", 10_000), ("万", 10_000),
         ("千元", 1_000), ("元", 1))
CURRENCY = re.compile(r"^(?:¥|\$|rmb|cny|人民币)\s*", re.IGNORECASE)
SEPARATORS = re.compile(r"[,\s_']")  # 1,234,567 / 1 234 567 / 1'234'567
# an amount as coerce stores it: ASCII digits, no sign, no leading zero, exactly 2 decimals
PLAIN_AMOUNT = re.compile(r"(?:0|[1-9][0-9]{0,17})\.[0-9]{2}")


def number_text(text: str) -> tuple[str, int]:
    """(the digits of a spreadsheet number, its unit's factor): full-width folded, the
    currency sign, thousands separators and a unit (万, 万元, 亿, 元 …) taken off."""
    text = CURRENCY.sub("", plain(text))
    for suffix, factor in UNITS:
        if text.endswith(suffix):
            return SEPARATORS.sub("", text.removesuffix(suffix)), factor
    return SEPARATORS.sub("", text), 1


def scaled(text: str) -> str:
    """``number_text`` with its unit applied, as decimal text (unchanged text when it is
    not a number, for the type to refuse with its own message)."""
    digits, factor = number_text(text)
    if factor == 1:
        return digits
    try:
        number = Decimal(digits) * factor
    except InvalidOperation:
        return text
    return format(number, "f") if number.is_finite() else text


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise refuse("type", "应为数字", "must be a number")
    try:
        number = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise refuse("type", "应为数字", "must be a number") from None
    if not number.is_finite():
        raise refuse("type", "应为数字", "must be a number")
    return number


def _check_range(number: Decimal, field: Any) -> None:
    low, high = field.config.get("min"), field.config.get("max")
    if low is not None and number < Decimal(str(low)):
        raise refuse("min", f"不能小于 {low}", f"must be at least {low}")
    if high is not None and number > Decimal(str(high)):
        raise refuse("max", f"不能大于 {high}", f"must be at most {high}")


def _in_range(field: Any) -> Callable[[Any], bool]:
    """``field``'s min/max as one test, their decimals made once; out of range (or not
    comparable) is False, for ``coerce`` to refuse with its message."""
    low, high = field.config.get("min"), field.config.get("max")
    low = None if low is None else Decimal(str(low))
    high = None if high is None else Decimal(str(high))
    if low is None and high is None:
        return lambda _number: True
    if high is None:
        return lambda number: number >= low
    if low is None:
        return lambda number: number <= high
    return lambda number: low <= number <= high


class NumberType(FieldType):
    key, label, kind = "number", "数字", "number"
    config_schema: ClassVar[dict[str, Any]] = {
        **RANGE, "decimals": {"type": "integer", "minimum": 0, "maximum": 10}}

    def value_schema(self, field: Any) -> dict[str, Any]:  # noqa: ARG002
        return {"type": "number"}

    def coerce(self, value: Any, field: Any) -> int | float:
        number = _number(value)
        _check_range(number, field)
        decimals = field.config.get("decimals")
        # normalize(): "2.50" has one decimal that matters, not two
        if decimals is not None and -number.normalize().as_tuple().exponent > decimals:
            raise refuse("decimals", f"最多 {decimals} 位小数", f"at most {decimals} decimals")
        return int(number) if number == number.to_integral_value() else float(number)

    def coercer(self, field: Any) -> Callable[[Any], Any]:
        in_range, decimals = _in_range(field), field.config.get("decimals")
        low, high = field.config.get("min"), field.config.get("max")
        # A float's shortest repr (what coerce reads) orders as the floats do, so a float
        # bound compares the same; an int bound only when a float holds it exactly.
        floats = all(b is None or float(b) == b for b in (low, high))
        low = -math.inf if low is None else float(low)
        high = math.inf if high is None else float(high)

        def number(value: Any) -> Any:
            if value.__class__ is int:  # exact against a Decimal; no decimals to count
                return value if in_range(value) else DEFER
            if value.__class__ is not float or not floats or not low <= value <= high:
                return DEFER
            text = repr(value)  # = str(value), as coerce reads it
            if "e" in text or "n" in text:  # 1e+16, 1e-05, inf, nan: left to coerce
                return DEFER
            digits = text[text.index(".") + 1:]  # no trailing zero but in "12.0"
            if digits == "0":
                return int(value)
            if decimals is not None and len(digits) > decimals:
                return DEFER
            return value

        return number

    def from_text(self, text: str, field: Any) -> int | float:
        """Also ``1,234``, ``１２３`` and ``3万`` (× 10,000)."""
        return self.coerce(scaled(text), field)

    def format(self, value: Any, field: Any) -> str:
        if value is None:
            return ""
        decimals = field.config.get("decimals")
        return f"{value:,.{decimals}f}" if decimals is not None else f"{value:,}"


class MoneyType(FieldType):
    """Exact to the fen, stored as decimal text ``"1234.50"``; never a float."""

    key, label, kind = "money", "金额", "money"
    config_schema: ClassVar[dict[str, Any]] = {**RANGE, "currency": {"enum": ["CNY"]}}

    def value_schema(self, field: Any) -> dict[str, Any]:  # noqa: ARG002
        return {"type": "string", "pattern": r"^-?\d+(\.\d{1,2})?$",
                "examples": ["1000000.00"]}

    def coerce(self, value: Any, field: Any) -> str:
        # A JSON number arrives as a float; its shortest repr is what the sender wrote.
        number = _number(value)
        try:
            cents = number.quantize(CENT)
        except InvalidOperation:  # more digits than a decimal context holds (> 28)
            raise refuse("too_large", "金额过大", "the amount is too large") from None
        if number != cents:
            raise refuse("decimals", "金额最多 2 位小数", "an amount has at most 2 decimals")
        _check_range(number, field)
        return str(cents + 0)  # + 0 turns "-0.00" into "0.00"

    def coercer(self, field: Any) -> Callable[[Any], Any]:
        in_range, plain_amount = _in_range(field), PLAIN_AMOUNT.fullmatch

        def money(value: Any) -> Any:
            if value.__class__ is str and plain_amount(value) and in_range(Decimal(value)):
                return value
            return DEFER

        return money

    def from_text(self, text: str, field: Any) -> str:
        """``¥1,234.50``, ``1234.5元``, ``１２３``, ``1.5万``/``1.5万元`` (× 10,000) and
        ``2亿``; an amount given in 万 or 亿 is rounded to the fen (its sub-fen digits are
        noise of the unit), one given in 元 must already be exact."""
        digits, factor = number_text(text)
        if factor == 1:
            return self.coerce(digits, field)
        try:
            number = (Decimal(digits) * factor).quantize(CENT, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            return self.coerce(text.strip(), field)  # refused with the usual message
        return self.coerce(format(number, "f"), field)

    def format(self, value: Any, field: Any) -> str:  # noqa: ARG002
        return "" if value is None else f"¥{Decimal(value):,.2f}"


class PercentType(NumberType):
    """A percentage, stored as the number shown: ``4.35`` means 4.35%."""

    key, label = "percent", "百分比"

    def from_text(self, text: str, field: Any) -> int | float:
        """``12.5%`` and ``12.5`` both store 12.5 (the number shown); ``0.125`` stays
        0.125 — a cell Excel shows as 12.5% arrives from the file as 0.125, see
        ``engine_forms.imports.coerce``."""
        return self.coerce(plain(text).removesuffix("%").strip(), field)

    def format(self, value: Any, field: Any) -> str:
        return "" if value is None else f"{super().format(value, field)}%"
