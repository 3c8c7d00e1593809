"""``FormSpec``: what a form is — its fields, layout and rules — as validated JSON.

Loading a spec runs, in order: the meta-schema (JSON Schema 2020-12 built from the
field-type registry) → structural checks (unique keys, layout and title refer to real
fields) → each type's ``check_config`` → expression checks (``engine_forms.expr``). All
problems are reported at once in ``SpecError.problems``.
"""

from __future__ import annotations

from functools import cache, cached_property
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, Field

from engine_forms.fieldtypes import FIELD_TYPES
from engine_forms.view import RecordView
from engine_forms.view import meta_schema as view_schema
from engine_forms.view import problems as view_problems
from platform_core.errors import InvalidInput
from platform_core.store.fields import SYSTEM_FIELDS

FORMAT_VERSION = 1
KEY_PATTERN = "^[a-z][a-z0-9_]{0,62}$"


class SpecError(InvalidInput):
    """A form spec that does not validate; ``problems`` lists every one of them."""

    code = "invalid_form"

    def __init__(self, problems: list[str]):
        super().__init__(f"the form definition has {len(problems)} problem(s): "
                         + "; ".join(problems[:5]), problems=problems)
        self.problems = problems


class Validation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    expression: str
    message: str


class Sensitive(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    mask: bool = False
    encrypt: bool = False


LABEL_LOCALES = ("en",)  # languages a label may be given in besides its own (Chinese)


class FieldSpec(BaseModel):
    """One field. Type-specific keys (``options``, ``target`` …) are in ``config``."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    key: str
    label: str
    labels: dict[str, str] | None = None  # the label in other languages: {"en": "Mobile"}
    type: str
    required: bool = False
    default: Any = None
    help: str | None = None
    indexed: bool = False
    unique: bool = False
    visible_if: str | None = None
    required_if: str | None = None
    validations: tuple[Validation, ...] = Field(default=(), alias="validate")
    sensitive: Sensitive | None = None
    renamed_from: str | None = None  # publish moves the old key's data here

    @cached_property
    def config(self) -> dict[str, Any]:
        """The type's own keys (read-only: the spec is immutable)."""
        return dict(self.model_extra or {})

    @cached_property
    def field_type(self) -> Any:
        return FIELD_TYPES.get(self.type)


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    section: str
    labels: dict[str, str] | None = None
    columns: int = 1
    fields: tuple[str, ...]


class Tab(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tab: str
    sections: tuple[Section, ...]


class FormSpec(BaseModel):
    """An immutable, validated form definition (one published version of it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = FORMAT_VERSION
    key: str
    name: str
    labels: dict[str, str] | None = None  # the name in other languages
    description: str | None = None
    title_field: str | None = None
    fields: tuple[FieldSpec, ...]
    layout: tuple[Section | Tab, ...] = ()
    view: RecordView | None = None  # the record page around the fields (engine_forms.view)

    def field(self, key: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.key == key), None)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)


# a label in other languages, by locale (pages in English show it instead of the label)
LABELS: dict[str, Any] = {
    "type": "object", "propertyNames": {"enum": list(LABEL_LOCALES)},
    "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 100}}


@cache
def meta_schema() -> dict[str, Any]:
    """The JSON Schema every form definition must satisfy (built from the registry)."""
    expr = {"type": "string", "minLength": 1, "maxLength": 4000}
    common = {
        "key": {"type": "string", "pattern": KEY_PATTERN},
        "label": {"type": "string", "minLength": 1, "maxLength": 100},
        "labels": LABELS,
        "type": {"enum": list(FIELD_TYPES)},
        "required": {"type": "boolean"}, "default": {}, "help": {"type": "string"},
        "indexed": {"type": "boolean"}, "unique": {"type": "boolean"},
        "renamed_from": {"type": "string", "pattern": KEY_PATTERN},
        "visible_if": expr, "required_if": expr,
        "validate": {"type": "array", "items": {
            "type": "object", "required": ["expression", "message"],
            "additionalProperties": False,
            "properties": {"expression": expr, "message": {"type": "string", "minLength": 1}}}},
        "sensitive": {"type": "object", "additionalProperties": False,
                      "properties": {"mask": {"type": "boolean"},
                                     "encrypt": {"type": "boolean"}}},
    }
    per_type = []
    for key, t in FIELD_TYPES.items():
        when = {"properties": {"type": {"const": key}}, "required": ["type"]}
        # Two entries per type: the first only names its config keys and always passes,
        # so they count as evaluated even when the second (the real check) fails —
        # otherwise a bad value would also be reported as an "unexpected" key.
        per_type.append({"if": when, "then": {"properties": dict.fromkeys(t.config_schema,
                                                                           True)}})
        per_type.append({"if": when, "then": {"properties": t.config_schema,
                                              "required": list(t.config_required)}})
    view, view_defs = view_schema()
    section = {"type": "object", "required": ["section", "fields"],
               "additionalProperties": False,
               "properties": {"section": {"type": "string"}, "labels": LABELS,
                              "columns": {"type": "integer", "minimum": 1, "maximum": 4},
                              "fields": {"type": "array", "items": {"type": "string"}}}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:qiao:schema:form",
        "type": "object", "required": ["key", "name", "fields"], "additionalProperties": False,
        "properties": {
            "format_version": {"const": FORMAT_VERSION},
            "key": {"type": "string", "pattern": KEY_PATTERN},
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "labels": LABELS,
            "description": {"type": "string"},
            "title_field": {"type": "string"},
            "fields": {"type": "array", "minItems": 1, "maxItems": 500,
                       "items": {"$ref": "#/$defs/field"}},
            "layout": {"type": "array", "items": {"oneOf": [section, {
                "type": "object", "required": ["tab", "sections"],
                "additionalProperties": False,
                "properties": {"tab": {"type": "string"},
                               "sections": {"type": "array", "items": section}}}]}},
            "view": view,
        },
        "$defs": {"field": {"type": "object", "required": ["key", "label", "type"],
                            "properties": common, "allOf": per_type,
                            "unevaluatedProperties": False}, **view_defs},
    }


def _schema_problems(raw: Any) -> list[str]:
    validator = Draft202012Validator(meta_schema())
    problems = []
    for err in sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path)):
        where = "/" + "/".join(str(p) for p in err.absolute_path)
        problems.append(f"{where}: {err.message}")
    return problems


def _structure_problems(spec: FormSpec) -> list[str]:
    problems = []
    keys = [f.key for f in spec.fields]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"field key {key!r} appears twice")
    for key in sorted(set(keys) & set(SYSTEM_FIELDS)):
        problems.append(f"field key {key!r} is reserved for a system field")
    if spec.title_field and spec.title_field not in keys:
        problems.append(f"title_field {spec.title_field!r} is not a field of the form")
    placed: list[str] = []
    for item in spec.layout:
        for section in item.sections if isinstance(item, Tab) else (item,):
            placed += section.fields
    for key in sorted({k for k in placed if k not in keys}):
        problems.append(f"layout names {key!r}, which is not a field of the form")
    for key in sorted({k for k in placed if placed.count(k) > 1}):
        problems.append(f"layout places {key!r} twice")
    if spec.view is not None:
        problems += view_problems(spec.view, spec)
    return problems


def _field_problems(spec: FormSpec) -> list[str]:
    problems = []
    for field in spec.fields:
        ftype = field.field_type
        problems += ftype.check_config(field, spec)
        kind = ftype.value_kind(field)
        if (field.indexed or field.unique) and kind is None and field.type != "formula":
            problems.append(f"{field.key!r}: a {field.type} field cannot be indexed or unique")
        problems += _default_problems(field)
        if field.type == "subtable":
            for column in field.config["fields"]:
                problems += [f"subtable {field.key!r}: column {p}"
                             for p in _column_problems(column, spec)]
    return problems


def _default_problems(field: FieldSpec) -> list[str]:
    if field.default is None:
        return []
    if field.field_type.computed:
        return [f"{field.key!r}: a computed field has no default"]
    try:
        field.field_type.coerce(field.default, field)
    except ValueError as exc:
        return [f"{field.key!r}: default {exc}"]
    return []


def _column_problems(raw: dict[str, Any], spec: FormSpec) -> list[str]:
    """A subtable column's own problems, each starting with its quoted key."""
    column = FieldSpec.model_validate(raw)
    found = column.field_type.check_config(column, spec) + _default_problems(column)
    return [p if p.startswith(f"{column.key!r}") else f"{column.key!r}: {p}" for p in found]


def shape_problems(raw: Any) -> tuple[FormSpec | None, list[str]]:
    """The spec and the problems of ``raw`` short of its expressions: the meta-schema,
    then (when that passes) the layout and each field's own configuration."""
    problems = _schema_problems(raw)
    if problems:
        return None, problems
    spec = FormSpec.model_validate(raw)
    return spec, _structure_problems(spec) + _field_problems(spec)


def load_form(raw: Any) -> FormSpec:
    """Validate a form definition; ``SpecError`` lists every problem found."""
    spec, problems = shape_problems(raw)
    if spec is None:
        raise SpecError(problems)
    if not problems:
        from engine_forms.expr import expression_problems

        problems = expression_problems(spec)
    if problems:
        raise SpecError(problems)
    return spec
