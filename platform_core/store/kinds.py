"""Value kinds: how a stored JSON value is typed in SQL, bound as a parameter, compared.

Every typed access to ``records.data`` — filters, sorts, expression indexes, (later)
expressions compiled to SQL and report measures — goes through ``ValueKind.accessor`` so
that the SQL text of a query and of its index are identical and the index is used.
Field types of the form engine each map onto one kind.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Boolean, Float, Numeric, String, cast, collate, func, literal_column
from sqlalchemy.sql.elements import ColumnElement

from platform_core.registry import Registry

KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_key(key: str) -> str:
    """Field keys are ASCII snake_case; only such keys ever reach SQL text (JSON paths)."""
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise ValueError(f"{key!r} is not a valid key (ASCII snake_case, ≤ 63 chars)")
    return key


def json_text(data: ColumnElement[Any], key: str, dialect: str) -> ColumnElement[Any]:
    """The field's value as SQL text (NULL when missing) with the path as a literal."""
    check_key(key)
    if dialect == "postgresql":
        return data.op("->>", return_type=String())(literal_column(f"'{key}'"))
    return func.json_extract(data, literal_column(f"'$.{key}'"), type_=String())


class ValueKind:
    """One kind of stored value. Subclasses override the few methods that differ."""

    key = ""
    text_ops = False  # contains / starts_with allowed

    def accessor(self, data: ColumnElement[Any], key: str, dialect: str) -> ColumnElement[Any]:
        return json_text(data, key, dialect)

    def to_storage(self, value: Any) -> Any:
        """Validate and normalise a value for the JSON document (raise ValueError)."""
        raise NotImplementedError

    def bind(self, value: Any, dialect: str) -> Any:  # noqa: ARG002 - dialect used by some
        """A filter value as the SQL parameter compared with ``accessor``."""
        return self.to_storage(value)

    def is_blank(self, value: Any) -> bool:
        return value is None


class TextKind(ValueKind):
    key, text_ops = "text", True

    def accessor(self, data: ColumnElement[Any], key: str, dialect: str) -> ColumnElement[Any]:
        expr = json_text(data, key, dialect)
        # Code-point order on every database, like SQLite and Python (not the locale's).
        return collate(expr, "C") if dialect == "postgresql" else expr

    def to_storage(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__}")
        if "\x00" in value:
            raise ValueError("text must not contain the NUL character")
        return value

    def is_blank(self, value: Any) -> bool:
        return value is None or value == ""


class NumberKind(ValueKind):
    key = "number"

    def accessor(self, data: ColumnElement[Any], key: str, dialect: str) -> ColumnElement[Any]:
        if dialect == "postgresql":
            return cast(json_text(data, key, dialect), Numeric())
        return func.json_extract(data, literal_column(f"'$.{check_key(key)}'"), type_=Float())

    def to_storage(self, value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ValueError(f"expected a number, got {type(value).__name__}")
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, float) and value != value:
            raise ValueError("NaN is not a number")
        return value

    def bind(self, value: Any, dialect: str) -> Any:
        stored = self.to_storage(value)
        return Decimal(str(stored)) if dialect == "postgresql" else stored


FEN = Decimal("0.01")


def to_fen(amount: Decimal) -> Decimal:
    """An amount rounded half away from zero to the fen, whose zero has no sign: a
    ``-0.00`` (an average of -0.003, a blank times -1) would read as a loss."""
    return amount.quantize(FEN, rounding=ROUND_HALF_UP) + 0


class MoneyKind(ValueKind):
    """Exact to the fen: stored as a canonical decimal string, ``"1234.50"``."""

    key = "money"
    quantum = FEN

    def accessor(self, data: ColumnElement[Any], key: str, dialect: str) -> ColumnElement[Any]:
        target = Numeric() if dialect == "postgresql" else Float()
        return cast(json_text(data, key, dialect), target)

    def to_decimal(self, value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | str | Decimal | float):
            raise ValueError(f"expected an amount, got {type(value).__name__}")
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"{value!r} is not an amount") from None
        if not amount.is_finite():
            raise ValueError(f"{value!r} is not an amount")
        if amount != amount.quantize(self.quantum, rounding=ROUND_HALF_UP):
            raise ValueError(f"{value!r} has more than 2 decimal places")
        return to_fen(amount)

    def to_storage(self, value: Any) -> str:
        return str(self.to_decimal(value))

    def bind(self, value: Any, dialect: str) -> Any:
        amount = self.to_decimal(value)
        return amount if dialect == "postgresql" else float(amount)


class DateKind(ValueKind):
    """ISO ``YYYY-MM-DD`` text: its text order is date order, on every database."""

    key = "date"

    def to_storage(self, value: Any) -> str:
        if isinstance(value, datetime):
            raise ValueError("expected a date, got a date-time")
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, str):
            try:
                return date.fromisoformat(value).isoformat()
            except ValueError:
                raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
        raise ValueError(f"expected a date, got {type(value).__name__}")


def aware_datetime(value: Any) -> datetime:
    """A date-time or its ISO text as an aware datetime (naive: UTC); ``ValueError``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date-time") from None
    if not isinstance(value, datetime):
        raise ValueError(f"expected a date-time, got {type(value).__name__}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class DateTimeKind(ValueKind):
    """UTC ``YYYY-MM-DDTHH:MM:SSZ`` text; naive values are taken as UTC."""

    key = "datetime"

    def to_storage(self, value: Any) -> str:
        return aware_datetime(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BooleanKind(ValueKind):
    key = "boolean"

    def accessor(self, data: ColumnElement[Any], key: str, dialect: str) -> ColumnElement[Any]:
        if dialect == "postgresql":
            # ->> turns a stored JSON null into SQL NULL (casting the jsonb itself fails)
            return cast(json_text(data, key, dialect), Boolean())
        return func.json_extract(data, literal_column(f"'$.{check_key(key)}'"), type_=Boolean())

    def to_storage(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {type(value).__name__}")
        return value


class SealedKind(ValueKind):
    """An encrypted value: ``{"$enc": "<key id>:<ciphertext>", "bi": "<blind index>"}``.

    The store only ever sees the ciphertext; its SQL view is the keyed blind index, so
    exact matches (eq, in, blank) and unique indexes work without the plaintext. A filter
    value must already be the blind index (the form engine computes it).
    """

    key = "sealed"

    def accessor(self, data: ColumnElement[Any], key: str, dialect: str) -> ColumnElement[Any]:
        check_key(key)
        if dialect == "postgresql":
            return data.op("#>>", return_type=String())(literal_column(f"'{{{key},bi}}'"))
        return func.json_extract(data, literal_column(f"'$.{key}.bi'"), type_=String())

    def to_storage(self, value: Any) -> Any:
        if not (isinstance(value, dict) and "$enc" in value):
            raise ValueError("expected an encrypted value")
        return value

    def bind(self, value: Any, dialect: str) -> Any:  # noqa: ARG002
        if not isinstance(value, str):
            raise ValueError("expected a blind index")
        return value


KINDS: Registry[ValueKind] = Registry("value kind")


def register_builtins() -> None:
    """Register the built-in value kinds (idempotent: the app factory may call it twice)."""
    for kind in (TextKind(), NumberKind(), MoneyKind(), DateKind(), DateTimeKind(),
                 BooleanKind(), SealedKind()):
        if kind.key not in KINDS:
            KINDS.register(kind.key, kind)
