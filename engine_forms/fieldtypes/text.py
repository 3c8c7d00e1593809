"""Text-like types: text, textarea, email, phone."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from engine_forms.fieldtypes.base import DEFER, FieldType, plain, refuse, text_coercer


class TextType(FieldType):
    key, label, kind = "text", "单行文本", "text"
    default_max: ClassVar[int] = 200
    config_schema: ClassVar[dict[str, Any]] = {
        "max_length": {"type": "integer", "minimum": 1, "maximum": 100000},
        "placeholder": {"type": "string"},
    }

    def _max(self, field: Any) -> int:
        return int(field.config.get("max_length", self.default_max))

    def value_schema(self, field: Any) -> dict[str, Any]:
        return {"type": "string", "maxLength": self._max(field)}

    def coerce(self, value: Any, field: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise refuse("type", "应为文本", "must be text")
        text = str(value)
        if len(text) > self._max(field):
            raise refuse("too_long", f"不能超过 {self._max(field)} 个字符",
                         f"must be at most {self._max(field)} characters")
        return text

    def coercer(self, field: Any) -> Callable[[Any], Any]:
        limit = self._max(field)

        def text(value: Any) -> Any:  # a str subclass would be stored as str(): deferred
            if value.__class__ is str and value and len(value) <= limit \
                    and "\x00" not in value:
                return value
            return DEFER

        return text

    def from_text(self, text: str, field: Any) -> str:
        return self.coerce(text.strip(), field)


class TextareaType(TextType):
    key, label = "textarea", "多行文本"
    default_max = 10000

    def from_text(self, text: str, field: Any) -> str:
        return self.coerce(text, field)


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class EmailType(TextType):
    key, label = "email", "邮箱"
    config_schema: ClassVar[dict[str, Any]] = {}

    def value_schema(self, field: Any) -> dict[str, Any]:  # noqa: ARG002
        return {"type": "string", "format": "email", "maxLength": 254}

    def coerce(self, value: Any, field: Any) -> str:  # noqa: ARG002
        if not isinstance(value, str) or len(value) > 254 or not EMAIL.match(value.strip()):
            raise refuse("format", "不是有效的邮箱地址", "is not a valid e-mail address")
        return value.strip().lower()

    def coercer(self, field: Any) -> Callable[[Any], Any]:
        return text_coercer(self.coerce, field)

    def mask(self, value: Any, field: Any) -> str:  # noqa: ARG002
        if value is None:
            return ""
        name, _, domain = str(value).partition("@")
        return f"{name[:1]}***@{domain}"


MOBILE = re.compile(r"^1[3-9]\d{9}$")
PLAIN_MOBILE = re.compile(r"1[3-9][0-9]{9}")  # as coerce stores it (ASCII, nothing to strip)
LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}(-\d{1,6})?$")


class PhoneType(TextType):
    """Mainland mobile (``13800001234``) or landline (``010-12345678``)."""

    key, label = "phone", "电话"
    config_schema: ClassVar[dict[str, Any]] = {
        "accept": {"enum": ["mobile", "landline", "any"]},
    }

    def value_schema(self, field: Any) -> dict[str, Any]:  # noqa: ARG002
        return {"type": "string", "pattern": r"^[0-9-]{7,20}$"}

    def coerce(self, value: Any, field: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise refuse("type", "应为电话号码", "must be a phone number")
        text = re.sub(r"[\s()]", "", value).removeprefix("+86").removeprefix("0086")
        if MOBILE.match(text.replace("-", "")):  # 138-0000-1234 is written like that too
            text = text.replace("-", "")
        accept = field.config.get("accept", "any")
        mobile, landline = MOBILE.match(text), LANDLINE.match(text)
        if (accept == "mobile" and not mobile) or (accept == "landline" and not landline) \
                or not (mobile or landline):
            zh = {"mobile": "手机号", "landline": "固定电话"}.get(accept, "手机号或固定电话")
            en = {"mobile": "mobile", "landline": "landline"}.get(accept, "mobile or landline")
            raise refuse("format", f"不是有效的{zh}", f"is not a valid {en} number")
        return text

    def coercer(self, field: Any) -> Callable[[Any], Any]:
        coerce, mobile = self.coerce, field.config.get("accept", "any") != "landline"
        fullmatch = PLAIN_MOBILE.fullmatch

        def phone(value: Any) -> Any:
            if value.__class__ is str and value and "\x00" not in value:
                return value if mobile and fullmatch(value) else coerce(value, field)
            return DEFER

        return phone

    def from_text(self, text: str, field: Any) -> str:
        """Also full-width digits, dots and spaces between groups, ``+86``/``0086``/``86``
        before a mobile (``+86 138-0000-1234``, ``８６１３８００００１２３４``)."""
        text = re.sub(r"[\s.()]", "", plain(text))
        if len(text) == 13 and text.startswith("86") and MOBILE.match(text[2:]):
            text = text[2:]
        return self.coerce(text, field)

    def mask(self, value: Any, field: Any) -> str:  # noqa: ARG002
        if value is None:
            return ""
        text = str(value)
        return text[:3] + "****" + text[-4:] if len(text) >= 11 else text[:3] + "****"
