"""Numeric types: number, money (exact decimal), percent."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from engine_forms.fieldtypes.base import FieldType, refuse

CENT = Decimal("0.01")
RANGE: dict[str, Any] = {"min": {"type": "number"}, "max": {"type": "number"}}


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

    def from_text(self, text: str, field: Any) -> str:
        return self.coerce(text.strip().lstrip("¥￥").strip(), field)

    def format(self, value: Any, field: Any) -> str:  # noqa: ARG002
        return "" if value is None else f"¥{Decimal(value):,.2f}"


class PercentType(NumberType):
    """A percentage, stored as the number shown: ``4.35`` means 4.35%."""

    key, label = "percent", "百分比"

    def from_text(self, text: str, field: Any) -> int | float:
        return self.coerce(text.strip().removesuffix("%").removesuffix("％"), field)

    def format(self, value: Any, field: Any) -> str:
        return "" if value is None else f"{super().format(value, field)}%"
