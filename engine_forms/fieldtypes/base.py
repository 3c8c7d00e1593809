"""The field-type contract. Each type is one small class registered at start-up.

A type owns: the JSON Schema of its own config keys (``config_schema``), the JSON Schema
of its values (``value_schema``), coercion from API values (``coerce``) and from
spreadsheet text (``from_text``), its store value kind (``kind``: the SQL accessor used
by filters, sorts, aggregates and indexes), display text (``format``) and default
masking (``mask``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from engine_forms.spec import FieldSpec, FormSpec


class FieldError(ValueError):
    """A value a field refuses; ``code`` is stable, messages are in Chinese and English."""

    def __init__(self, code: str, zh: str, en: str):
        super().__init__(en)
        self.code, self.zh, self.en = code, zh, en


class _Defer:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFER"


DEFER: Any = _Defer()  # a compiled coercer's answer for a value it leaves to ``coerce``


def _defer(value: Any) -> Any:  # noqa: ARG001
    return DEFER


def text_coercer(coerce: Any, field: Any) -> Any:
    """A compiled coercer that hands plain text (non-empty, no NUL) to ``coerce`` with
    ``field`` bound and defers everything else (the types whose values are texts)."""
    def coerced(value: Any) -> Any:
        if value.__class__ is str and value and "\x00" not in value:
            return coerce(value, field)
        return DEFER

    return coerced


def refuse(code: str, zh: str, en: str) -> FieldError:
    return FieldError(code, zh, en)


def plain(text: str) -> str:
    """Spreadsheet text with full-width letters, digits and signs folded (NFKC: "１２３" →
    "123", "，" → ",", "￥" → "¥") and the ends stripped, for the types whose values are
    digits and signs; never for free text, which keeps what was typed."""
    return unicodedata.normalize("NFKC", text).strip()


class FieldType:
    """Base of every field type; subclasses override what differs."""

    key: ClassVar[str] = ""
    label: ClassVar[str] = ""  # Chinese name shown in the designer
    kind: ClassVar[str | None] = None  # store value kind; None = not filterable in SQL
    computed: ClassVar[bool] = False  # the engine computes it; payloads may not set it
    config_schema: ClassVar[dict[str, Any]] = {}
    config_required: ClassVar[tuple[str, ...]] = ()

    def check_config(self, field: FieldSpec, form: FormSpec) -> list[str]:  # noqa: ARG002
        """Cross-key checks JSON Schema can't express; each problem as one English line."""
        return []

    def value_kind(self, field: FieldSpec) -> str | None:  # noqa: ARG002
        """The store value kind of this field's values (its SQL accessor), if any."""
        return self.kind

    def value_schema(self, field: FieldSpec) -> dict[str, Any]:  # noqa: ARG002
        return {}

    def coerce(self, value: Any, field: FieldSpec) -> Any:
        """An API value → the stored JSON value (``None`` never reaches here)."""
        raise NotImplementedError

    def coercer(self, field: FieldSpec) -> Callable[[Any], Any]:  # noqa: ARG002
        """``coerce`` for the common values of ``field``, its config read once: built once
        per published form version, called for every value a record sends.

        It returns what ``coerce`` returns or raises the ``FieldError`` it raises, or
        answers ``DEFER`` for anything it does not handle — ``None``, ``""``, any text
        holding NUL (the validator refuses that first) and every less common shape — and
        the validator then takes the full path (NUL check, ``coerce``). The default
        defers everything. The contract test compares it with ``coerce`` on every type.
        """
        return _defer

    def from_text(self, text: str, field: FieldSpec) -> Any:
        """A spreadsheet cell's text → the stored value (blank cells never reach here)."""
        return self.coerce(text.strip(), field)

    def format(self, value: Any, field: FieldSpec) -> str:  # noqa: ARG002
        return "" if value is None else str(value)

    def mask(self, value: Any, field: FieldSpec) -> str:
        text = self.format(value, field)
        if len(text) == 1:  # its first character would be all of it
            return "*" * len(text)
        return text[:1] + "*" * (len(text) - 1)
