"""The field-type registry. ``register_builtins()`` is called by the app factory."""

from __future__ import annotations

from engine_forms.fieldtypes.base import DEFER, FieldError, FieldType
from platform_core.registry import Registry

FIELD_TYPES: Registry[FieldType] = Registry("field type")


def register_builtins() -> None:
    """Register every built-in field type once (idempotent)."""
    from engine_forms.fieldtypes import (
        choice,
        computed,
        identity,
        linked,
        number,
        people,
        temporal,
        text,
    )

    types: list[type[FieldType]] = [
        text.TextType, text.TextareaType, number.NumberType, number.MoneyType,
        number.PercentType, temporal.DateType, temporal.DateTimeType, choice.BooleanType,
        choice.SelectType, choice.MultiselectType, text.PhoneType, text.EmailType,
        identity.IdCardType, identity.AddressType, people.UserType, people.DepartmentType,
        linked.RelationType, linked.SubtableType, linked.AttachmentType,
        computed.AutoNumberType, computed.FormulaType, linked.LookupType, linked.RollupType]
    for cls in types:
        if cls.key not in FIELD_TYPES:
            FIELD_TYPES.register(cls.key, cls())


__all__ = ["DEFER", "FIELD_TYPES", "FieldError", "FieldType", "register_builtins"]
