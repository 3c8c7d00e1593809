"""Field widgets: for each field type, the Jinja macro that edits its value and the
parser that turns what the browser posts back into the value the API takes.

A widget never re-implements a rule: ``parse`` only reshapes posted text (a checkbox's
"true", an address's four inputs, a subtable's rows, ``150万`` typed into a money box);
the field type's own ``coerce`` then checks it on the server, exactly as for the API.
Every registered field type must have a widget (``tests/frontend/test_widgets.py`` runs
over the field-type registry), so a new type cannot ship without one.

Posted names: ``f:<key>`` for a field's value (several for multi-valued ones),
``f:<key>.<part>`` for the parts of an address, and ``t:<key>:<row>:<column>`` for a
subtable cell, with a ``t:<key>:<row>`` marker per row (its position is the row order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from engine_forms.fieldtypes.identity import ADDRESS_PARTS
from engine_forms.spec import FieldSpec
from platform_core.registry import Registry


class Posted:
    """A submitted form as a multi-dict (Starlette's ``FormData`` or a test's dict)."""

    def __init__(self, items: list[tuple[str, str]]):
        self.items = items

    def get(self, name: str) -> str | None:
        return next((v for k, v in self.items if k == name), None)

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self.items if k == name]

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self.items)


Parse = Callable[[Posted, str, FieldSpec], Any]


@dataclass(frozen=True)
class Widget:
    """How one field type is edited in a page: ``macro`` (in ``widgets/inputs.html``)
    and ``parse`` (posted form → API value; None for blank)."""

    macro: str
    parse: Parse
    readonly: bool = False  # computed by the engine: shown, never posted


WIDGETS: Registry[Widget] = Registry("field widget")


def _text(posted: Posted, name: str, _field: FieldSpec) -> Any:
    value = posted.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def _raw_text(posted: Posted, name: str, _field: FieldSpec) -> Any:
    # A browser posts a textarea's line breaks as CRLF; stored text breaks lines with LF,
    # as the API and imports write it (and as max_length counts it).
    value = posted.get(name)
    return None if value is None or value.strip() == "" else value.replace("\r\n", "\n")


def _boolean(posted: Posted, name: str, _field: FieldSpec) -> Any:
    value = (posted.get(name) or "").strip()
    return {"true": True, "false": False}.get(value, value or None)


def money_text(text: str) -> str:
    """What a person types into a money box, as the API's decimal text: ``¥1,500`` →
    ``1500``, ``150万`` → ``1500000``; anything else is passed on for the field to
    refuse with its own message."""
    text = text.strip().lstrip("¥￥").replace(",", "").replace("，", "").strip()
    for suffix, factor in (("万元", 10_000), ("万", 10_000), ("元", 1)):
        if text.endswith(suffix):
            try:
                return str(Decimal(text.removesuffix(suffix).strip()) * factor)
            except InvalidOperation:
                return text
    return text


def _money(posted: Posted, name: str, field: FieldSpec) -> Any:
    value = _text(posted, name, field)
    return None if value is None else money_text(value)


def _many(posted: Posted, name: str, _field: FieldSpec) -> Any:
    values = [v for v in posted.getlist(name) if v.strip()]
    return values or None


def _relation(posted: Posted, name: str, field: FieldSpec) -> Any:
    return _many(posted, name, field) if field.config.get("multiple") else _text(
        posted, name, field)


def _address(posted: Posted, name: str, _field: FieldSpec) -> Any:
    parts = {p: (posted.get(f"{name}.{p}") or "").strip() for p in ADDRESS_PARTS}
    parts = {p: v for p, v in parts.items() if v}
    return parts or None


def subtable_rows(posted: Posted, name: str, field: FieldSpec) -> list[dict[str, Any]]:
    """The rows of a subtable in their order on the page, each cell parsed by its
    column's widget (``t:<key>:<row>`` marks a row; a row left all blank is dropped)."""
    prefix = "t:" + name.removeprefix("f:") + ":"
    markers = [k.removeprefix(prefix) for k, _ in posted.items
               if k.startswith(prefix) and ":" not in k.removeprefix(prefix)]
    columns = [FieldSpec.model_validate(c) for c in field.config["fields"]]
    rows = []
    for row in markers:
        cells = {}
        for column in columns:
            value = WIDGETS.get(column.type).parse(posted, f"{prefix}{row}:{column.key}",
                                                   column)
            if value is not None:
                cells[column.key] = value
        if cells:
            rows.append(cells)
    return rows


def _subtable(posted: Posted, name: str, field: FieldSpec) -> Any:
    return subtable_rows(posted, name, field) or None


def _nothing(_posted: Posted, _name: str, _field: FieldSpec) -> Any:
    return None


def register_builtins() -> None:
    """One widget per built-in field type (idempotent)."""
    builtins = {
        "text": Widget("text", _text), "textarea": Widget("textarea", _raw_text),
        "number": Widget("number", _text), "money": Widget("money", _money),
        "percent": Widget("percent", _text), "date": Widget("date", _text),
        "datetime": Widget("datetime", _text), "boolean": Widget("boolean", _boolean),
        "select": Widget("select", _text), "multiselect": Widget("multiselect", _many),
        "phone": Widget("phone", _text), "email": Widget("email", _text),
        "id_card": Widget("id_card", _text), "address": Widget("address", _address),
        "user": Widget("user", _text), "department": Widget("department", _text),
        "relation": Widget("relation", _relation), "subtable": Widget("subtable", _subtable),
        "attachment": Widget("attachment", _many),
        "auto_number": Widget("computed", _nothing, readonly=True),
        "formula": Widget("computed", _nothing, readonly=True),
        "lookup": Widget("computed", _nothing, readonly=True),
        "rollup": Widget("computed", _nothing, readonly=True),
    }
    for key, widget in builtins.items():
        if key not in WIDGETS:
            WIDGETS.register(key, widget)


def widget_of(field: FieldSpec) -> Widget:
    if field.type not in WIDGETS:
        register_builtins()
    return WIDGETS.get(field.type)


def payload_of(posted: Posted, fields: list[FieldSpec], *,
               keep_blank_masked: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The API payload of a posted record form: every editable field shown on the page
    (a blank one clears the value), except masked ones left blank (their input starts
    empty: blank means "keep", not "clear")."""
    payload: dict[str, Any] = {}
    for field in fields:
        widget = widget_of(field)
        if widget.readonly:
            continue
        name = f"f:{field.key}"
        shown = posted.has(name) or posted.has(name + ".present") or any(
            k.startswith((name + ".", f"t:{field.key}:")) for k, _ in posted.items)
        if not shown:
            continue
        value = widget.parse(posted, name, field)
        if value is None and field.key in keep_blank_masked:
            continue
        payload[field.key] = value
    return payload
