"""Types that reach other records: relation, lookup, rollup, subtable, attachment.

Their values are checked against the database by the record handler (does the target
exist, is it of the right form, was the file uploaded for this field); here they are
only shaped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from engine_forms.fieldtypes.base import DEFER, FieldType, refuse

KEY = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"}


def _ids(value: Any, many: bool) -> Any:
    items = value if isinstance(value, list) else [value]
    if not many and isinstance(value, list):
        raise refuse("type", "只能关联一条记录", "links to one record only")
    out = []
    for item in items:
        if isinstance(item, dict) and "id" in item:
            item = item["id"]
        if isinstance(item, str) and item.strip().isdecimal():  # not isdigit: int("²") fails
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item < 2**63:
            raise refuse("type", "应为记录编号", "must be a record id")
        out.append(item)
    return list(dict.fromkeys(out)) if many else out[0]


def _one_id(value: Any) -> Any:
    return value if value.__class__ is int and 0 < value < 2**63 else DEFER


def _many_ids(value: Any) -> Any:
    if value.__class__ is list and all(i.__class__ is int and 0 < i < 2**63 for i in value):
        return list(dict.fromkeys(value))
    return DEFER


class RelationType(FieldType):
    """A link to a record of ``target`` (one, or many with ``multiple``).

    ``on_delete``: ``restrict`` refuses to delete a target that is still linked;
    ``set_blank`` clears the link when the target is deleted.
    """

    key, label, kind = "relation", "关联记录", "number"
    config_schema: ClassVar[dict[str, Any]] = {
        "target": KEY, "multiple": {"type": "boolean"},
        "on_delete": {"enum": ["restrict", "set_blank"]}}
    config_required = ("target",)

    def value_kind(self, field: Any) -> str | None:
        return None if field.config.get("multiple") else "number"

    def value_schema(self, field: Any) -> dict[str, Any]:
        one = {"type": "integer", "minimum": 1}
        return {"type": "array", "items": one} if field.config.get("multiple") else one

    def coerce(self, value: Any, field: Any) -> Any:
        return _ids(value, bool(field.config.get("multiple")))

    def coercer(self, field: Any) -> Callable[[Any], Any]:
        return _many_ids if field.config.get("multiple") else _one_id


class LookupType(FieldType):
    """A field of the record a relation points at, read live (never stored)."""

    key, label, computed = "lookup", "引用字段", True
    config_schema: ClassVar[dict[str, Any]] = {"relation": KEY, "field": KEY}
    config_required = ("relation", "field")

    def check_config(self, field: Any, form: Any) -> list[str]:
        rel = form.field(field.config["relation"])
        if rel is None or rel.type != "relation":
            return [f"lookup {field.key!r}: {field.config['relation']!r} is not a relation "
                    "field of this form"]
        return []

    def coerce(self, value: Any, field: Any) -> Any:  # noqa: ARG002
        raise refuse("computed", "引用字段由系统计算, 不能填写", "is computed; it cannot be set")


class RollupType(LookupType):
    """An aggregate over the records of ``source`` whose relation ``via`` links here."""

    key, label = "rollup", "汇总"
    config_schema: ClassVar[dict[str, Any]] = {
        "source": KEY, "via": KEY, "aggregate": {"enum": ["count", "sum", "min", "max", "avg"]},
        "field": KEY}
    config_required = ("source", "via", "aggregate")

    def check_config(self, field: Any, form: Any) -> list[str]:  # noqa: ARG002
        if field.config["aggregate"] != "count" and "field" not in field.config:
            return [f"rollup {field.key!r}: aggregate {field.config['aggregate']!r} needs "
                    "'field'"]
        return []


class SubtableType(FieldType):
    """Rows with their own fields (e.g. a loan's co-borrowers); stored as a JSON list."""

    key, label = "subtable", "子表"
    config_schema: ClassVar[dict[str, Any]] = {
        "fields": {"type": "array", "minItems": 1, "maxItems": 50,
                   "items": {"$ref": "#/$defs/field"}},
        "max_rows": {"type": "integer", "minimum": 1, "maximum": 1000}}
    config_required = ("fields",)
    ROW_TYPES: ClassVar[frozenset[str]] = frozenset({
        "text", "textarea", "number", "money", "percent", "date", "datetime", "boolean",
        "select", "multiselect", "phone", "email", "id_card", "user", "department"})

    def check_config(self, field: Any, form: Any) -> list[str]:  # noqa: ARG002
        problems = []
        keys = [c["key"] for c in field.config["fields"]]
        for column in field.config["fields"]:
            if column["type"] not in self.ROW_TYPES:
                problems.append(f"subtable {field.key!r}: column {column['key']!r} cannot be "
                                f"of type {column['type']!r}")
            if keys.count(column["key"]) > 1:
                problems.append(f"subtable {field.key!r}: column {column['key']!r} appears "
                                "twice")
        return sorted(set(problems))

    def coerce(self, value: Any, field: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise refuse("type", "应为行的列表", "must be a list of rows")
        limit = field.config.get("max_rows", 200)
        if len(value) > limit:
            raise refuse("too_many_rows", f"最多 {limit} 行", f"at most {limit} rows")
        return value  # rows are validated column by column by the record validator

    def format(self, value: Any, field: Any) -> str:  # noqa: ARG002
        return f"{len(value or [])} 行"


class AttachmentType(FieldType):
    """Files uploaded first (``POST …/attachments``), then referenced by id."""

    key, label = "attachment", "附件"
    config_schema: ClassVar[dict[str, Any]] = {
        "max_files": {"type": "integer", "minimum": 1, "maximum": 50},
        "max_size_mb": {"type": "number", "exclusiveMinimum": 0, "maximum": 1024},
        "accept": {"type": "array", "items": {"type": "string"}}}

    def value_schema(self, field: Any) -> dict[str, Any]:  # noqa: ARG002
        return {"type": "array", "items": {"type": "integer", "minimum": 1}}

    def coerce(self, value: Any, field: Any) -> list[int]:
        ids = _ids(value if isinstance(value, list) else [value], True)
        limit = field.config.get("max_files", 10)
        if len(ids) > limit:
            raise refuse("too_many_files", f"最多 {limit} 个文件", f"at most {limit} files")
        return ids

    def format(self, value: Any, field: Any) -> str:  # noqa: ARG002
        return f"{len(value or [])} 个文件"
