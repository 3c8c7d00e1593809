"""``ExprSchema``: what an expression may name — the fields of one form and their kinds,
its relation fields (→ the target form's schema) and subtables (→ the row schema).

The form engine will build one from a form spec; until then ``from_fieldset`` builds one
from the store's ``FieldSet``. Schemas are immutable and hashable (compiled expressions
are cached by them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from platform_core.store.fields import FieldSet
from platform_core.store.kinds import check_key

# The one relation name that is not a field key: a rule's ``OLD.field`` (the values before
# an update). Rule conditions run in Python only, so it never reaches SQL text.
OLD = "OLD"


@dataclass(frozen=True)
class ExprSchema:
    """Field key → value-kind key, plus relations and subtables. Build with ``of``."""

    fields: tuple[tuple[str, str], ...] = ()
    relations: tuple[tuple[str, ExprSchema], ...] = ()
    subtables: tuple[tuple[str, ExprSchema], ...] = ()
    app: str = "app"
    form: str = "form"
    _index: dict[str, tuple[str, Any]] = field(default_factory=dict, compare=False,
                                                repr=False, hash=False)

    def __post_init__(self) -> None:
        check_key(self.app)
        check_key(self.form)
        index: dict[str, tuple[str, Any]] = {}
        entries = [("field", k, v) for k, v in self.fields]
        entries += [("relation", k, v) for k, v in self.relations]
        entries += [("subtable", k, v) for k, v in self.subtables]
        for role, key, value in entries:
            if not (role == "relation" and key == OLD):
                check_key(key)
            if key in index:
                raise ValueError(f"{key!r} is declared twice in the expression schema")
            index[key] = (role, value)
        self._index.update(index)

    @classmethod
    def of(cls, fields: Mapping[str, str] | None = None, *,
           relations: Mapping[str, ExprSchema] | None = None,
           subtables: Mapping[str, ExprSchema] | None = None,
           app: str = "app", form: str = "form") -> ExprSchema:
        return cls(tuple(sorted((fields or {}).items())),
                   tuple(sorted((relations or {}).items())),
                   tuple(sorted((subtables or {}).items())), app, form)

    @classmethod
    def from_fieldset(cls, fieldset: FieldSet, *,
                      relations: Mapping[str, ExprSchema] | None = None,
                      subtables: Mapping[str, ExprSchema] | None = None) -> ExprSchema:
        """The schema of a ``FieldSet``; keys named in ``relations`` become relations."""
        rel = dict(relations or {})
        plain = {k: v for k, v in fieldset.kinds.items() if k not in rel}
        return cls.of(plain, relations=rel, subtables=subtables,
                      app=fieldset.app, form=fieldset.form)

    def lookup(self, key: str) -> tuple[str, Any] | None:
        """``("field", kind)``, ``("relation", schema)``, ``("subtable", schema)`` or None."""
        return self._index.get(key)

    def fieldset(self) -> FieldSet:
        """The store's view of this form (data fields only), for SQL compilation."""
        return FieldSet(self.app, self.form, dict(self.fields))
