"""Choice types: boolean, select, multiselect."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from engine_forms.fieldtypes.base import DEFER, FieldType, plain, refuse

OPTIONS: dict[str, Any] = {
    "options": {"type": "array", "minItems": 1, "maxItems": 500, "items": {
        "type": "object", "required": ["value", "label"], "additionalProperties": False,
        "properties": {"value": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_]{0,62}$"},
                       "label": {"type": "string", "minLength": 1},
                       "labels": {"type": "object", "propertyNames": {"enum": ["en"]},
                                  "additionalProperties": {"type": "string", "minLength": 1}},
                       "color": {"type": "string"}}}}}

TRUE_WORDS = {"true", "yes", "y", "t", "1", "是", "有", "√", "✓", "✔", "对", "是的"}
FALSE_WORDS = {"false", "no", "n", "f", "0", "否", "无", "没有", "×", "✗", "✘", "不", "不是",
               "错"}
SEPARATORS = re.compile(r"[,，、;；|\n]")  # between the options of a multiselect cell


class BooleanType(FieldType):
    key, label, kind = "boolean", "是/否", "boolean"

    def value_schema(self, field: Any) -> dict[str, Any]:  # noqa: ARG002
        return {"type": "boolean"}

    def coerce(self, value: Any, field: Any) -> bool:  # noqa: ARG002
        if not isinstance(value, bool):
            raise refuse("type", "应为 是/否 (true/false)", "must be true or false")
        return value

    def coercer(self, field: Any) -> Callable[[Any], Any]:  # noqa: ARG002
        return _boolean

    def from_text(self, text: str, field: Any) -> bool:  # noqa: ARG002
        word = plain(text).lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise refuse("type", "应为 是/否", "must be yes or no")

    def format(self, value: Any, field: Any) -> str:  # noqa: ARG002
        return "" if value is None else ("是" if value else "否")


def _boolean(value: Any) -> Any:
    return value if value.__class__ is bool else DEFER


def _options(field: Any) -> dict[str, str]:
    return {o["value"]: o["label"] for o in field.config.get("options", [])}


def _one(raw: Any, field: Any) -> str:
    options = _options(field)
    if isinstance(raw, str) and raw in options:  # lists/dicts are unhashable
        return raw
    by_label = {label: value for value, label in options.items()}
    if isinstance(raw, str) and raw.strip() in by_label:
        return by_label[raw.strip()]
    raise refuse("option", f"不是可选项 {raw!r} (可选: {'、'.join(options.values())})",
                 f"{raw!r} is not one of the options ({', '.join(options)})")


def _squeeze(text: str) -> str:
    return "".join(plain(text).casefold().split())


def one_by_text(text: str, field: Any) -> str:
    """The option a spreadsheet text names: its value or label (also the label in
    another language), case, width and spaces ignored."""
    wanted = _squeeze(text)
    for option in field.config.get("options", []):
        names = (option["value"], option["label"], *(option.get("labels") or {}).values())
        if any(_squeeze(n) == wanted for n in names):
            return option["value"]
    return _one(text.strip(), field)  # refused with the list of options


class SelectType(FieldType):
    """One option; the stored value is the option's stable ``value``, not its label."""

    key, label, kind = "select", "单选", "text"
    config_schema: ClassVar[dict[str, Any]] = OPTIONS
    config_required = ("options",)

    def check_config(self, field: Any, form: Any) -> list[str]:  # noqa: ARG002
        values = [o["value"] for o in field.config.get("options", [])]
        return [f"{field.key!r}: option value {v!r} appears twice" for v in sorted(set(values))
                if values.count(v) > 1]

    def value_schema(self, field: Any) -> dict[str, Any]:
        return {"type": "string", "enum": list(_options(field))}

    def coerce(self, value: Any, field: Any) -> str:
        return _one(value, field)

    def coercer(self, field: Any) -> Callable[[Any], Any]:
        values = frozenset(_options(field))  # option values: never blank, never NUL

        def select(value: Any) -> Any:
            return value if value.__class__ is str and value in values else DEFER

        return select

    def from_text(self, text: str, field: Any) -> str:
        return one_by_text(text, field)

    def format(self, value: Any, field: Any) -> str:
        return "" if value is None else _options(field).get(value, str(value))


class MultiselectType(SelectType):
    key, label, kind = "multiselect", "多选", None

    def value_schema(self, field: Any) -> dict[str, Any]:
        return {"type": "array", "uniqueItems": True,
                "items": {"type": "string", "enum": list(_options(field))}}

    def coerce(self, value: Any, field: Any) -> list[str]:
        if not isinstance(value, list):
            raise refuse("type", "应为选项列表", "must be a list of options")
        chosen = [_one(v, field) for v in value]
        return [v for v in _options(field) if v in chosen]  # option order, no duplicates

    def coercer(self, field: Any) -> Callable[[Any], Any]:
        order = tuple(_options(field))
        values = frozenset(order)

        def multiselect(value: Any) -> Any:
            if value.__class__ is not list:
                return DEFER
            try:
                known = values.issuperset(value)
            except TypeError:  # an unhashable item: coerce refuses it
                return DEFER
            return [v for v in order if v in value] if known else DEFER

        return multiselect

    def from_text(self, text: str, field: Any) -> list[str]:
        """Options separated by , ， 、 ; ； | or a line break, each by value or label."""
        chosen = [one_by_text(p, field) for p in SEPARATORS.split(text) if p.strip()]
        return self.coerce(chosen, field)

    def format(self, value: Any, field: Any) -> str:
        options = _options(field)
        return "、".join(options.get(v, v) for v in value or [])
