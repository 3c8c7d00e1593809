"""References to the platform's users and departments, stored as their integer id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from engine_forms.fieldtypes.base import DEFER, FieldType, refuse


def _id(value: Any) -> Any:
    return value if value.__class__ is int and value >= 1 else DEFER


class UserType(FieldType):
    key, label, kind = "user", "成员", "number"
    config_schema: ClassVar[dict[str, Any]] = {"default_current": {"type": "boolean"}}

    def value_schema(self, field: Any) -> dict[str, Any]:  # noqa: ARG002
        return {"type": "integer", "minimum": 1}

    def coerce(self, value: Any, field: Any) -> int:  # noqa: ARG002
        if isinstance(value, str) and value.strip().isdecimal():  # not isdigit: int("²") fails
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise refuse("type", "应为成员编号", "must be a user id")
        return value

    def coercer(self, field: Any) -> Callable[[Any], Any]:  # noqa: ARG002
        return _id  # also a department's: the same ids pass


class DepartmentType(UserType):
    key, label = "department", "部门"
    config_schema: ClassVar[dict[str, Any]] = {}

    def coerce(self, value: Any, field: Any) -> int:
        try:
            return super().coerce(value, field)
        except ValueError:
            raise refuse("type", "应为部门编号", "must be a department id") from None
