"""The JSON Schemas of the app document: one field's value, a form's ``{form}.Part``
components (as the caller may read or write them) and the schemas every document shares.

``ref`` points at a component; ``refs`` lists the schema components a node points at (the
document keeps only those something refers to).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from engine_forms import forms as forms_handler
from engine_forms import service
from engine_forms.forms import Published
from engine_forms.service import Caller
from engine_forms.spec import FieldSpec
from platform_core.store.fields import SYSTEM_FIELDS
from platform_core.store.query import OPS

if TYPE_CHECKING:
    from engine_forms.openapi.document import AppDoc
    from engine_forms.openapi.operations import FormView

ID = {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}
TIME = {"type": "string", "format": "date-time"}
BINARY = {"type": "string", "format": "binary"}
MONEY = {"type": "string", "pattern": r"^-?\d+(\.\d{1,2})?$", "examples": ["1000000.00"]}
KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "text": {"type": "string"}, "number": {"type": "number"}, "money": MONEY,
    "date": {"type": "string", "format": "date"}, "datetime": TIME,
    "boolean": {"type": "boolean"}}
MASKED = {"type": "string", "x-qiao-masked": True}


def ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def refs(node: Any) -> Iterator[str]:
    """The names of the schema components ``node`` refers to, anywhere inside it."""
    if isinstance(node, dict):
        target = node.get("$ref")
        if isinstance(target, str) and target.startswith("#/components/schemas/"):
            yield target.rsplit("/", 1)[1]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


# -- field schemas -----------------------------------------------------------------------


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null (a blank field); ``{}`` (any value) already admits null."""
    kind = schema.get("type")
    if not isinstance(kind, str):
        return schema
    out = {**schema, "type": [kind, "null"]}
    if "enum" in schema:
        out["enum"] = [*schema["enum"], None]
    return out


def _non_blank(schema: dict[str, Any]) -> dict[str, Any]:
    """A required value: Qiao counts "", [] and {} as blank."""
    extra = {"string": {"minLength": 1}, "array": {"minItems": 1},
             "object": {"minProperties": 1}}.get(schema.get("type"), {})
    return {**schema, **extra}


def _rows(spec: FieldSpec, *, write: bool) -> dict[str, Any]:
    """A subtable: rows of its columns; on write, required columns and the row limit."""
    columns = [FieldSpec.model_validate(c) for c in spec.config["fields"]]
    props = {}
    for c in columns:
        value = _int64(c.field_type.value_schema(c))
        value = _non_blank(value) if write and c.required else _nullable(value)
        props[c.key] = {**value, "title": c.label}
    row: dict[str, Any] = {"type": "object", "additionalProperties": False,
                           "properties": props}
    out: dict[str, Any] = {"type": "array", "items": row}
    if write:
        row["required"] = [c.key for c in columns if c.required]
        out["maxItems"] = spec.config.get("max_rows", 200)
    return out


def value_schema(session: Session, pub: Published, spec: FieldSpec, *, write: bool = False,
                 depth: int = 0) -> dict[str, Any]:
    """The JSON Schema of one field's value as the API returns (or takes) it, unmasked.

    Most types answer alone (``value_schema``); the computed ones and subtables need
    the form around them — a formula's result kind, a lookup's source field in another
    form, a rollup's aggregate — so they are worked out here.
    """
    if spec.type == "formula":
        return dict(KIND_SCHEMAS.get(pub.compiled.kinds.get(spec.key, ""), {}))
    if spec.type == "auto_number":
        return {"type": "string"}
    if spec.type == "subtable":
        return _rows(spec, write=write)
    if spec.type == "lookup":
        relation = pub.spec.field(spec.config["relation"])
        if depth or relation is None:
            return {}
        target = forms_handler.published(session, pub.app, relation.config["target"])
        source = target.spec.field(spec.config["field"])
        return {} if source is None else value_schema(session, target, source, depth=1)
    if spec.type == "rollup":
        if spec.config["aggregate"] == "count":
            return {"type": "integer", "minimum": 0}
        source = forms_handler.published(session, pub.app, spec.config["source"])
        kind = source.compiled.kinds.get(spec.config.get("field", ""))
        return dict(KIND_SCHEMAS[kind]) if kind in ("money", "number") else {}
    return _int64(spec.field_type.value_schema(spec))


def _int64(schema: dict[str, Any]) -> dict[str, Any]:
    """Ids (relation, user, attachment …) are 64-bit: say so, in items too."""
    if schema.get("type") == "integer" and schema.get("minimum") == 1:
        return {**schema, **ID}
    if isinstance(schema.get("items"), dict):
        return {**schema, "items": _int64(schema["items"])}
    return schema


def _described(schema: dict[str, Any], spec: FieldSpec, *, read_only: bool = False
               ) -> dict[str, Any]:
    out = {**schema, "title": spec.label, "x-qiao-type": spec.type}
    notes = [spec.help] if spec.help else []
    if schema.get("x-qiao-masked"):
        notes.append("Masked for you: text such as 138****1234.")
    if notes:
        out["description"] = " ".join(notes)
    if read_only:
        out["readOnly"] = True
    return out


def data_schema(session: Session, pub: Published, caller: Caller) -> dict[str, Any]:
    """``{form}.Data``: the fields the caller can read, as they read them."""
    seen = service.narrowed(session, caller, pub)  # lookups/rollups held to their source
    masked = service.masked_keys(pub, seen.access) | set(seen.lookup_masks)
    writes = seen.access.allows("create") or seen.access.allows("update")
    props = {}
    for spec in pub.spec.fields:
        if not seen.access.readable(spec.key):
            continue
        schema = MASKED if spec.key in masked else value_schema(session, pub, spec)
        props[spec.key] = _described(_nullable(schema), spec, read_only=(
            spec.field_type.computed or not writes or not seen.access.writable(spec.key)))
    return {"type": "object", "additionalProperties": False, "properties": props}


def write_schema(session: Session, pub: Published, access: Any, *, create: bool
                 ) -> dict[str, Any]:
    """``{form}.Create`` / ``{form}.Update``: writable, non-computed fields; on create a
    field is required when it always is (no ``visible_if``, no default)."""
    props, required = {}, []
    for spec in pub.spec.fields:
        if spec.field_type.computed or not access.writable(spec.key):
            continue
        schema = value_schema(session, pub, spec, write=True)
        if create and spec.required and not spec.visible_if and spec.default is None:
            required.append(spec.key)
            props[spec.key] = _described(_non_blank(schema), spec)
        else:
            props[spec.key] = _described(_nullable(schema), spec)
    out: dict[str, Any] = {"type": "object", "additionalProperties": False,
                           "properties": props}
    if required:
        out["required"] = required
    return out


def record_schema(app: str, form: str) -> dict[str, Any]:
    """``{form}.Record``: one record as every read and write answers it."""
    who = {"type": ["integer", "null"], "minimum": 1}
    props = {"id": ID, "app": {"type": "string", "const": app},
             "form": {"type": "string", "const": form},
             "row_version": {"type": "integer", "minimum": 1,
                             "description": "Send it back as If-Match (it is the ETag)."},
             "schema_version": {"type": "integer", "minimum": 1}, "owner_id": who,
             "department_id": who, "created_at": TIME, "created_by": who,
             "updated_at": TIME, "updated_by": who,
             "deleted_at": {**TIME, "type": ["string", "null"]},
             "data": ref(f"{form}.Data")}
    required = list(props)
    props["_unavailable"] = {
        "type": "array", "items": {"type": "string"}, "uniqueItems": True,
        "description": "Present only when some encrypted value cannot be decrypted with "
                       "the installation's keys (e.g. restored without them): those fields "
                       "are null in data and named here."}
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": props}


def filter_schema(form: str, keys: list[str]) -> dict[str, Any]:
    """``{form}.Filter``: the store's filter AST (docs/query.md) over ``keys``."""
    def node(op: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "required": [op], "additionalProperties": False,
                "properties": {op: schema}}
    leaf = {"type": "object", "required": ["field", "op"], "additionalProperties": False,
            "properties": {"field": {"type": "string", "enum": keys},
                           "op": {"type": "string", "enum": list(OPS)}, "value": {}}}
    itself = ref(f"{form}.Filter")
    many = {"type": "array", "items": itself}
    return {"anyOf": [leaf, node("and", many), node("or", many), node("not", itself)],
            "examples": [{"field": "id", "op": "gt", "value": 0}]}


# -- the components of one form, and the shared ones -------------------------------------


def form_schemas(doc: AppDoc, f: FormView, caller: Caller) -> dict[str, Any]:
    """Every ``{form}.Part`` component of one form, for the caller."""
    key, s, pub = f.key, doc.session, f.pub
    schemas = {f"{key}.Data": data_schema(s, pub, caller),
               f"{key}.Record": record_schema(doc.app, key),
               f"{key}.Create": write_schema(s, pub, caller.access, create=True),
               f"{key}.Update": write_schema(s, pub, caller.access, create=False),
               f"{key}.Filter": filter_schema(key, [*SYSTEM_FIELDS, *f.readable]),
               f"{key}.Page": {"type": "object", "additionalProperties": False,
                               "required": ["items", "next_cursor", "next"],
                               "properties": {"items": {"type": "array",
                                                        "items": f.s("Record")},
                                              "next_cursor": {"type": ["string", "null"]},
                                              "next": {"type": ["string", "null"]},
                                              "count": {"type": "integer", "minimum": 0,
                                                        "description": "With count=true: "
                                                        "how many match, over all pages"}}},
               f"{key}.Count": {"type": "object", "additionalProperties": False,
                                "required": ["count"],
                                "properties": {"count": {"type": "integer", "minimum": 0}}}}
    created = {"type": "object", "additionalProperties": False,
               "required": ["index", "status", "id", "record"],
               "properties": {"index": {"type": "integer", "minimum": 0},
                              "status": {"const": 201}, "id": ID, "record": f.s("Record")}}
    failed = {"type": "object", "additionalProperties": False,
              "required": ["index", "status", "error"],
              "properties": {"index": {"type": "integer", "minimum": 0},
                             "status": {"type": "integer"}, "error": ref("Problem")}}
    schemas[f"{key}.BulkResult"] = {
        "type": "object", "additionalProperties": False, "required": ["items", "created"],
        "properties": {"items": {"type": "array", "items": {"anyOf": [created, failed]}},
                       "created": {"type": "integer", "minimum": 0}}}
    return schemas


def shared_schemas() -> dict[str, Any]:
    """The schemas every app document has (problem details, history, attachments …)."""
    text, count = {"type": "string"}, {"type": "integer", "minimum": 0}
    return {
        "Problem": {"type": "object", "required": ["type", "title", "status", "detail",
                                                   "code"],
                    "description": "RFC 9457 problem details; `code` is stable.",
                    "properties": {"type": text, "title": text, "status": {"type": "integer"},
                                   "detail": text, "code": text, "instance": text,
                                   "errors": {"type": "array", "items": {"type": "object"}}}},
        "History": {"type": "object", "required": ["items"], "properties": {"items": {
            "type": "array", "items": {
                "type": "object", "required": ["row_version", "action", "diff", "actor_id",
                                               "at"],
                "properties": {"row_version": {"type": "integer", "minimum": 1},
                               "action": text, "at": TIME,
                               "actor_id": {"type": ["integer", "null"]},
                               "diff": {"type": "object", "description": "field → [old, new]",
                                        "additionalProperties": {"type": "array"}}}}}}},
        "Unmasked": {"type": "object", "required": ["id", "field", "value"],
                     "properties": {"id": ID, "field": text, "value": {}}},
        "ImportResult": {"type": "object", "required": ["dry_run", "rows", "ids"],
                         "properties": {"dry_run": {"type": "boolean"}, "rows": count,
                                        "ids": {"type": "array", "items": ID}}},
        "Attachment": {"type": "object", "required": ["id", "field", "filename", "size",
                                                      "sha256", "record_id", "created_at"],
                       "properties": {"id": ID, "field": text, "filename": text,
                                      "content_type": {"type": ["string", "null"]},
                                      "size": count, "sha256": text,
                                      "record_id": {**ID, "type": ["integer", "null"]},
                                      "created_at": TIME}},
    }
