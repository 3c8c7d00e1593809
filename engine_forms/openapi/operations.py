"""The operations of the app document, bound to the real routes.

Per form, one builder per route below ``/api/v1/apps/{app}/forms/{form}`` (``OPERATIONS``);
an operation is described only when its route is registered in the running app and the
route's rule (``x-permission``) lets the caller in — the same check the guard makes. The
app's other routes (webhooks …) come as FastAPI describes them (``other_app_routes``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine_forms import transfer
from engine_forms.forms import Published
from engine_forms.openapi.schemas import BINARY, form_schemas, ref, refs
from engine_forms.service import Caller
from engine_forms.spec import FieldSpec
from platform_core.store.fields import SYSTEM_FIELDS

if TYPE_CHECKING:
    from engine_forms.openapi.document import AppDoc

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
APP_ROUTES = "/api/v1/apps/{app}/"
FORM = APP_ROUTES + "forms/{form}"
ERRORS = {400: "BadRequest", 401: "Unauthenticated", 403: "Forbidden", 404: "NotFound",
          409: "Conflict", 413: "TooLarge", 422: "Invalid", 428: "PreconditionRequired",
          429: "RateLimited"}


def _errors(*codes: int) -> dict[str, Any]:
    every = {401, 403, 404, 422, 429}  # 422: also a path or query value of the wrong type
    return {str(c): ref(ERRORS[c], "responses") for c in sorted(every | set(codes))}


def _json(schema: dict[str, Any], description: str, *headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description,
                           "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = {h: ref(h, "headers") for h in headers}
    return out


def _body(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"required": True, "content": {media: {"schema": schema}}}


def _params(*names: str) -> list[dict[str, str]]:
    return [ref(n, "parameters") for n in names]


@dataclass
class FormView:
    """What the operations of one form need to know about it and the caller."""

    pub: Published
    key: str
    readable: list[str]  # form fields the caller can see
    unmaskable: list[str]  # masked fields the caller can see (…/unmask)
    attach_write: list[str]
    attach_read: list[str]
    unique: list[FieldSpec]  # unique fields the caller can see (upsert by them)

    def p(self, name: str) -> dict[str, str]:
        return ref(f"{self.key}.{name}", "parameters")

    def s(self, name: str) -> dict[str, str]:
        return ref(f"{self.key}.{name}")


Ops = list[tuple[str, dict[str, Any]]]  # (path below the form, operation)


def _list(f: FormView) -> Ops:
    return [("/records", {
        "operationId": f"{f.key}_list", "summary": "List records (filter, sort, pages)",
        "parameters": [f.p("filter"), f.p("sort"), *_params("Cursor", "Limit"),
                       f.p("fields"), *_params("Deleted", "Count")],
        "responses": {"200": _json(f.s("Page"), "A page of records"), **_errors()}})]


def _count(f: FormView) -> Ops:
    return [("/records/count", {
        "operationId": f"{f.key}_count", "summary": "How many records match (your scope)",
        "parameters": [f.p("filter"), *_params("Deleted")],
        "responses": {"200": _json(f.s("Count"), "The number of matching records"),
                      **_errors()}})]


def _create(f: FormView) -> Ops:
    return [("/records", {
        "operationId": f"{f.key}_create", "summary": "Create a record",
        "parameters": _params("IdempotencyKey"), "requestBody": _body(f.s("Create")),
        "responses": {"201": _json(f.s("Record"), "Created", "ETag", "Location"),
                      **_errors(409, 413)}})]


def _bulk(f: FormView) -> Ops:
    body = {"type": "object", "required": ["records"], "additionalProperties": False,
            "properties": {"records": {"type": "array", "minItems": 1,
                                       "maxItems": transfer.MAX_BULK,
                                       "items": f.s("Create")}}}
    return [("/records/bulk", {
        "operationId": f"{f.key}_bulk_create",
        "summary": f"Create up to {transfer.MAX_BULK} records (all or nothing, or partial)",
        "parameters": _params("Partial", "IdempotencyKey"), "requestBody": _body(body),
        "responses": {"201": _json(f.s("BulkResult"), "A status per item"),
                      **_errors(409, 413)}})]


def _upsert(f: FormView) -> Ops:
    ops = []
    for spec in f.unique:
        value = {"type": "string", "minLength": 1}
        pattern = spec.field_type.value_schema(spec).get("pattern")
        ops.append((f"/records/by/{spec.key}/{{value}}", {
            "operationId": f"{f.key}_upsert_by_{spec.key}",
            "summary": f"Create or update the record whose {spec.key} is {{value}}",
            "parameters": [{"name": "value", "in": "path", "required": True,
                            "schema": {**value, "pattern": pattern} if pattern else value},
                           *_params("IfMatchOptional")],
            "requestBody": _body(f.s("Update")),
            "responses": {"200": _json(f.s("Record"), "Updated", "ETag"),
                          "201": _json(f.s("Record"), "Created", "ETag", "Location"),
                          **_errors(409, 413)}}))
    return ops


def _get(f: FormView) -> Ops:
    return [("/records/{record_id}", {
        "operationId": f"{f.key}_get", "summary": "One record",
        "parameters": [*_params("RecordId"), f.p("fields")],
        "responses": {"200": _json(f.s("Record"), "The record", "ETag"), **_errors()}})]


def _update(f: FormView) -> Ops:
    return [("/records/{record_id}", {
        "operationId": f"{f.key}_update", "summary": "Change some fields (If-Match required)",
        "parameters": _params("RecordId", "IfMatch"), "requestBody": _body(f.s("Update")),
        "responses": {"200": _json(f.s("Record"), "Updated", "ETag"),
                      **_errors(409, 413, 428)}})]


def _delete(f: FormView) -> Ops:
    return [("/records/{record_id}", {
        "operationId": f"{f.key}_delete", "summary": "Move a record to the recycle bin",
        "parameters": _params("RecordId", "IfMatchOptional"),
        "responses": {"204": {"description": "Deleted (restore brings it back)"},
                      **_errors(409)}})]


def _restore(f: FormView) -> Ops:
    return [("/records/{record_id}/restore", {
        "operationId": f"{f.key}_restore", "summary": "Bring a deleted record back",
        "parameters": _params("RecordId", "IdempotencyKey"),
        "responses": {"200": _json(f.s("Record"), "Restored", "ETag"), **_errors(409)}})]


def _history(f: FormView) -> Ops:
    return [("/records/{record_id}/history", {
        "operationId": f"{f.key}_history", "summary": "The record's changes",
        "parameters": _params("RecordId"),
        "responses": {"200": _json(ref("History"), "Oldest first"), **_errors()}})]


def _unmask(f: FormView) -> Ops:
    if not f.unmaskable:
        return []
    body = {"type": "object", "required": ["field"], "additionalProperties": False,
            "properties": {"field": {"type": "string", "enum": f.unmaskable}}}
    return [("/records/{record_id}/unmask", {
        "operationId": f"{f.key}_unmask", "summary": "Show one masked value (audited)",
        "parameters": _params("RecordId", "IdempotencyKey"), "requestBody": _body(body),
        "responses": {"200": _json(ref("Unmasked"), "The value in clear"), **_errors(409)}})]


def _export(f: FormView) -> Ops:
    files = {"description": "The spreadsheet (audited)",
             "headers": {"Content-Disposition": ref("ContentDisposition", "headers")},
             "content": {XLSX: {"schema": BINARY}, "text/csv": {"schema": BINARY}}}
    return [("/export", {
        "operationId": f"{f.key}_export", "summary": "Export records (xlsx or csv)",
        "parameters": [*_params("ExportFormat"), f.p("filter"), f.p("sort")],
        "responses": {"200": files, **_errors()}})]


def _multipart(props: dict[str, Any]) -> dict[str, Any]:
    return _body({"type": "object", "required": list(props), "properties": props},
                 "multipart/form-data")


def _import(f: FormView) -> Ops:
    return [("/import", {
        "operationId": f"{f.key}_import",
        "summary": "Create records from a spreadsheet (all or nothing)",
        "parameters": _params("DryRun", "IdempotencyKey"),
        "requestBody": _multipart({"file": BINARY}),
        "responses": {"200": _json(ref("ImportResult"), "Imported (or checked)"),
                      **_errors(409, 413)}})]


def _upload(f: FormView) -> Ops:
    if not f.attach_write:
        return []
    return [("/attachments", {
        "operationId": f"{f.key}_upload", "summary": "Upload a file for an attachment field",
        "parameters": _params("IdempotencyKey"),
        "requestBody": _multipart({"field": {"type": "string", "enum": f.attach_write},
                                   "file": BINARY}),
        "responses": {"201": _json(ref("Attachment"), "Stored; put its id in the field"),
                      **_errors(409, 413)}})]


def _download(f: FormView) -> Ops:
    if not f.attach_read:
        return []
    return [("/attachments/{attachment_id}", {
        "operationId": f"{f.key}_download", "summary": "Download an attached file",
        "parameters": _params("AttachmentId"),
        "responses": {"200": {"description": "The file",
                              "content": {"*/*": {"schema": BINARY}}}, **_errors()}})]


# (method, route path below the form, builder); the route must exist and allow the caller
OPERATIONS: tuple[tuple[str, str, Callable[[FormView], Ops]], ...] = (
    ("GET", "/records", _list), ("GET", "/records/count", _count),
    ("POST", "/records", _create),
    ("POST", "/records/bulk", _bulk), ("PUT", "/records/by/{field}/{value}", _upsert),
    ("GET", "/records/{record_id}", _get), ("PATCH", "/records/{record_id}", _update),
    ("DELETE", "/records/{record_id}", _delete),
    ("POST", "/records/{record_id}/restore", _restore),
    ("GET", "/records/{record_id}/history", _history),
    ("POST", "/records/{record_id}/unmask", _unmask), ("GET", "/export", _export),
    ("POST", "/import", _import), ("POST", "/attachments", _upload),
    ("GET", "/attachments/{attachment_id}", _download),
)


# The form's definition (draft, check, publish, versions, migrations): copied from the
# running app's routes, per form, like the imports API.
DEFINITION = frozenset({FORM, FORM + "/check", FORM + "/publish", FORM + "/versions",
                        FORM + "/migrations/{job_id}"})
# The app's forms: listed for every user, created by whoever manages the app.
FORMS = APP_ROUTES + "forms"


# -- one form, the other app routes -------------------------------------------------------


def _form_parameters(f: FormView, sortable: list[str]) -> dict[str, Any]:
    def listed(name: str, items: dict[str, Any], about: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "style": "form", "explode": False,
                "description": about, "schema": {"type": "array", "minItems": 1,
                                                 "uniqueItems": True, "items": items}}
    return {
        f"{f.key}.filter": {"name": "filter", "in": "query",
                            "description": "A filter AST as JSON (docs/query.md).",
                            "content": {"application/json": {"schema": f.s("Filter")}}},
        f"{f.key}.sort": listed("sort", {"type": "string", "enum": sortable},
                                "Comma-separated keys, `-` first for descending."),
        f"{f.key}.fields": listed("fields", {"type": "string", "enum": f.readable},
                                  "Only these fields in `data`."),
    }


def add_form(doc: AppDoc, pub: Published, caller: Caller,
             parameters: dict[str, Any]) -> None:
    """One form's schemas, parameters, tag and the operations the caller may use."""
    access, key = caller.access, pub.spec.key
    readable = [f for f in pub.spec.fields if access.readable(f.key)]
    masked = {f.key for f in readable if f.sensitive and f.sensitive.mask}
    sealed = {f.key for f in readable if f.sensitive and f.sensitive.encrypt}
    form = FormView(pub, key, [f.key for f in readable], sorted(masked),
                    [f.key for f in readable if f.type == "attachment" and
                     access.writable(f.key)],
                    [f.key for f in readable if f.type == "attachment"],
                    [f for f in readable if f.unique])
    sortable = [*SYSTEM_FIELDS, *(f.key for f in readable if f.key not in masked | sealed
                                  and f.field_type.value_kind(f) is not None)]
    doc.schemas.update(form_schemas(doc, form, caller))
    parameters.update(_form_parameters(form, [k for s in sortable for k in (s, f"-{s}")]))
    doc.tags.append({"name": key, "description": pub.spec.name})
    base = FORM.replace("{app}", doc.app).replace("{form}", key)
    for method, below, build in OPERATIONS:
        name = doc.allowed(method, FORM + below, access)
        if name is None:
            continue
        for path, operation in build(form):
            if "requestBody" in operation:  # a body that cannot be parsed at all: 400
                operation["responses"].setdefault("400", ref("BadRequest", "responses"))
            doc.add(base + path, method, {**operation, "tags": [key], "x-permission": name})
    for template, ops in doc.described.get("paths", {}).items():  # definition, imports
        if template in DEFINITION or template.startswith((FORM + "/imports",
                                                          FORM + "/import-mappings")):
            for method in ops:
                path = base + template[len(FORM):]
                copy_route(doc, template, method, path=path, fixed={"form": key},
                           access=access)
                op = doc.paths.get(path, {}).get(method.lower())
                if op is not None:  # one operation per form: ids and tags of the form
                    op["operationId"] = f"{key}_{op['operationId'].split('_api_v1')[0]}"
                    op["tags"] = [key]


def other_app_routes(doc: AppDoc, described: Mapping[str, Any]) -> None:
    """App routes served outside the forms (webhooks, flows …), as FastAPI describes them
    (bodies typed by their models) with Qiao's error responses, where their rule lets the
    caller in."""
    for template, ops in described.get("paths", {}).items():
        if not template.startswith(APP_ROUTES) or (template.startswith(FORMS)
                                                   and template != FORMS):
            continue
        for method in ops:
            if not template.endswith("/openapi.json"):
                copy_route(doc, template, method)


def copy_route(doc: AppDoc, template: str, method: str, path: str | None = None,
               fixed: Mapping[str, str] | None = None, access: Any = None) -> None:
    """Describe route ``method template`` of the running app in ``doc`` (if its rule lets
    the caller in) at ``path`` (default: the template with this app), without the path
    parameters ``fixed`` there (``app`` always)."""
    described = doc.described
    found = described.get("paths", {}).get(template, {}).get(method)
    name = doc.allowed(method, template, access)
    if found is None or name is None:
        return
    dropped = {"app", *(fixed or {})}
    op = copy.deepcopy(found)
    op["parameters"] = [p for p in op.get("parameters", ())
                        if not (p.get("in") == "path" and p.get("name") in dropped)]
    errors = _errors(400, 409, 413) if "requestBody" in op else \
        _errors(409) if method.lower() != "get" else _errors()  # a write can conflict
    op["responses"] = {code: answer for code, answer in op["responses"].items()
                       if code.startswith("2")} | errors
    doc.add(path or template.replace("{app}", doc.app), method, op)
    known = described.get("components", {}).get("schemas", {})
    wanted = list(refs(op))
    while wanted:
        key = wanted.pop()
        if key not in doc.schemas and key in known:
            doc.schemas[key] = known[key]
            wanted += refs(known[key])
