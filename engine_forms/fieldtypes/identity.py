"""Chinese identity data: id_card (18 digits, checksummed) and address."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import lru_cache
from typing import Any, ClassVar

from engine_forms.fieldtypes.base import DEFER, FieldType, plain, refuse

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"


def id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits."""
    return CHECK[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


@lru_cache(maxsize=65_536)  # an import checks each number when read and when validated
def valid_id_card(text: str) -> bool:
    # isascii(): str.isdigit() also accepts "１" and "²", which int() reads or rejects
    if len(text) != 18 or not text.isascii() or not text[:17].isdigit() \
            or not (text[17].isdigit() or text[17] == "X"):
        return False
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return False
    return born.year >= 1900 and id_check_char(text[:17]) == text[17]


def from_15(text: str) -> str | None:
    """A first-generation 15-digit number as its 18-digit form (GB 11643-1999: "19"
    before the two-digit birth year, the check character appended), or None. Those
    cards were issued to people born in the 1900s only."""
    if len(text) != 15 or not text.isascii() or not text.isdigit():
        return None
    longer = text[:6] + "19" + text[6:]
    longer += id_check_char(longer)
    return longer if valid_id_card(longer) else None


def _id_card(value: Any) -> Any:
    # a valid number is 18 ASCII digits (or X): nothing to strip or upper-case, no NUL
    return value if value.__class__ is str and valid_id_card(value) else DEFER


class IdCardType(FieldType):
    """A mainland resident ID number; masked ``1101**********1234`` by default."""

    key, label, kind = "id_card", "身份证号", "text"

    def value_schema(self, field: Any) -> dict[str, Any]:  # noqa: ARG002
        return {"type": "string", "pattern": "^[0-9]{17}[0-9X]$"}

    def coerce(self, value: Any, field: Any) -> str:  # noqa: ARG002
        if not isinstance(value, str):
            raise refuse("type", "应为身份证号 (文本)", "must be an ID number (text)")
        text = value.strip().upper()
        if not valid_id_card(text):
            raise refuse("format", "不是有效的 18 位身份证号 (校验位或出生日期不对)",
                         "is not a valid 18-digit ID number (check digit or birth date)")
        return text

    def coercer(self, field: Any) -> Callable[[Any], Any]:  # noqa: ARG002
        return _id_card

    def from_text(self, text: str, field: Any) -> str:
        """Also a lower-case ``x``, full-width digits, spaces inside, and an old 15-digit
        number, converted to its 18-digit form (``from_15``)."""
        text = "".join(plain(text).split()).upper()
        if len(text) == 15:
            longer = from_15(text)
            if longer is None:
                raise refuse("format", "不是有效的 15 位旧身份证号 (出生日期不对)",
                             "is not a valid old 15-digit ID number (birth date)")
            text = longer
        return self.coerce(text, field)

    def mask(self, value: Any, field: Any) -> str:  # noqa: ARG002
        if value is None:
            return ""
        text = str(value)
        return text[:4] + "*" * (len(text) - 8) + text[-4:]


ADDRESS_PARTS = ("province", "city", "district", "detail")
PARTS = frozenset(ADDRESS_PARTS)


class AddressType(FieldType):
    """``{"province", "city", "district", "detail"}``; text is split on spaces."""

    key, label, kind = "address", "地址", None
    config_schema: ClassVar[dict[str, Any]] = {
        "level": {"enum": ["province", "city", "district", "detail"]}}

    def value_schema(self, field: Any) -> dict[str, Any]:  # noqa: ARG002
        return {"type": "object", "additionalProperties": False,
                "properties": {p: {"type": "string", "maxLength": 200} for p in ADDRESS_PARTS}}

    def coerce(self, value: Any, field: Any) -> dict[str, str]:  # noqa: ARG002
        if not isinstance(value, dict):
            raise refuse("type", "应为地址对象 (province/city/district/detail)",
                         "must be an address object (province/city/district/detail)")
        unknown = sorted(set(value) - set(ADDRESS_PARTS))
        if unknown:
            raise refuse("unknown_part", f"未知的地址部分 {unknown[0]}",
                         f"unknown address part {unknown[0]}")
        out = {}
        for part in ADDRESS_PARTS:
            text = value.get(part)
            if text is None:
                continue
            if not isinstance(text, str) or len(text) > 200:
                raise refuse("type", f"{part} 应为不超过 200 字的文本",
                             f"{part} must be text of at most 200 characters")
            if text.strip():  # a blank part is left out, not stored as ""
                out[part] = text.strip()
        return out

    def coercer(self, field: Any) -> Callable[[Any], Any]:
        coerce = self.coerce

        def address(value: Any) -> Any:
            if value.__class__ is not dict or not value or not PARTS.issuperset(value):
                return DEFER
            for text in value.values():
                if text.__class__ is not str or "\x00" in text:
                    return DEFER
            return coerce(value, field)

        return address

    def from_text(self, text: str, field: Any) -> dict[str, str]:
        parts = text.split(maxsplit=3)
        return self.coerce(dict(zip(ADDRESS_PARTS, parts, strict=False)), field)

    def format(self, value: Any, field: Any) -> str:  # noqa: ARG002
        return "" if not value else " ".join(value[p] for p in ADDRESS_PARTS if value.get(p))

    def mask(self, value: Any, field: Any) -> str:  # noqa: ARG002
        if not value:
            return ""
        shown = [value[p] for p in ("province", "city", "district") if value.get(p)]
        return " ".join(shown) + (" ****" if value.get("detail") else "")
