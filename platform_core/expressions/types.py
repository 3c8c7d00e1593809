"""The static types of the expression language and how they combine.

``number`` and ``money`` are both exact decimals at run time; ``money`` is kept apart so
that a sum of amounts stays an amount. ``blank`` is the type of ``BLANK()`` and fits
anywhere. A subtable column inside an aggregate is a ``list`` of its column's type.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Type:
    """A value type; ``is_list`` for the values of a subtable column."""

    name: str
    is_list: bool = False

    @property
    def item(self) -> Type:
        return Type(self.name) if self.is_list else self

    def label(self, lang: str) -> str:
        zh, en = LABELS[self.name]
        if self.is_list:
            return f"{zh}列表" if lang == "zh" else f"a list of {en}"
        return zh if lang == "zh" else en

    def __str__(self) -> str:
        return f"list<{self.name}>" if self.is_list else self.name


NUMBER, MONEY, TEXT = Type("number"), Type("money"), Type("text")
DATE, DATETIME, BOOLEAN, BLANK = Type("date"), Type("datetime"), Type("boolean"), Type("blank")

LABELS: dict[str, tuple[str, str]] = {
    "number": ("数字", "a number"),
    "money": ("金额", "an amount of money"),
    "text": ("文本", "text"),
    "date": ("日期", "a date"),
    "datetime": ("日期时间", "a date-time"),
    "boolean": ("真/假值", "TRUE/FALSE"),
    "blank": ("空值", "blank"),
}

# value kind of the store → expression type
KIND_TYPES: dict[str, Type] = {
    "text": TEXT, "number": NUMBER, "money": MONEY, "date": DATE,
    "datetime": DATETIME, "boolean": BOOLEAN,
}

NUMERIC = frozenset({"number", "money"})
ORDERED = frozenset({"number", "money", "text", "date", "datetime"})
SCALARS = frozenset({"number", "money", "text", "date", "datetime", "boolean"})


def accepts_label(names: frozenset[str], lang: str) -> str:
    """``数字或金额`` / ``a number or an amount of money`` for an error message."""
    order = ["number", "money", "text", "date", "datetime", "boolean"]
    parts = [Type(n).label(lang) for n in order if n in names]
    if names >= SCALARS:
        return "任意值" if lang == "zh" else "any value"
    return ("或" if lang == "zh" else " or ").join(parts)


def unify(types: Iterable[Type]) -> Type | None:
    """The common type of several values (blank fits anything); None if they clash."""
    found: Type | None = None
    for t in types:
        if t.name == "blank":
            continue
        if found is None or found == t:
            found = t
        elif {found.name, t.name} == NUMERIC and found.is_list == t.is_list:
            found = Type("money", t.is_list)
        else:
            return None
    return found or BLANK


def numeric_result(*types: Type) -> Type:
    """Money when any operand is money, else number."""
    return MONEY if any(t.name == "money" for t in types) else NUMBER
