"""The app document for one caller: ``AppDoc`` (what the builders and contributors fill
in), the extension point ``PATH_CONTRIBUTORS``, the shared components, and
``build_document``, which assembles them and keeps only the schemas something refers to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from engine_forms import forms as forms_handler
from engine_forms.openapi.operations import add_form, other_app_routes
from engine_forms.openapi.schemas import ID, ref, refs, shared_schemas
from engine_forms.service import Caller
from platform_core import __version__
from platform_core.registry import Registry
from platform_core.security.auth import SESSION_COOKIE
from platform_core.security.principal import Principal

PROBLEM = "application/problem+json"


# -- the extension point -----------------------------------------------------------------


@dataclass
class AppDoc:
    """The document of one app being built for one caller: what a contributor gets.

    A contributor (a later engine: flows, tasks, reports) adds its operations with
    ``add`` — only those ``allowed`` for the caller — and its schemas to ``schemas``, or
    copies a route as FastAPI describes it (``described``) with
    ``engine_forms.openapi.operations.copy_route``.
    """

    session: Session
    app: str
    principal: Principal
    routes: Mapping[tuple[str, str], str]  # (METHOD, path template) → the route's rule
    described: Mapping[str, Any] = field(default_factory=dict)  # FastAPI's own document
    paths: dict[str, dict[str, Any]] = field(default_factory=dict)
    schemas: dict[str, Any] = field(default_factory=dict)
    tags: list[dict[str, str]] = field(default_factory=list)

    def allowed(self, method: str, template: str, access: Any = None) -> str | None:
        """The rule of route ``method template`` if it exists and lets the caller in."""
        name = self.routes.get((method.upper(), template))
        if name is None:
            return None
        kind, _, action = name.partition(":")
        if kind == "form":
            ok = access is not None and access.allows(action)
        elif kind == "app":
            ok = self.principal.app_allows(self.app, action)
        else:
            ok = name in ("public", "user", "self") or (
                name == "admin" and self.principal.is_admin) or (
                name == "users" and self.principal.manages_users)
        return name if ok else None

    def add(self, path: str, method: str, operation: dict[str, Any]) -> None:
        self.paths.setdefault(path, {})[method.lower()] = operation


Contributor = Callable[[AppDoc], None]
# Flows, tasks and reports paths come with those engines: each registers a contributor
# here from its own ``register_builtins()`` (engine_flows, engine_reports …).
PATH_CONTRIBUTORS: Registry[Contributor] = Registry("OpenAPI path contributor")


def _contributors() -> Registry[Contributor]:
    """``PATH_CONTRIBUTORS`` as the package exports it at the time of the call.

    Read through ``engine_forms.openapi`` rather than this module so that replacing the
    registry there (as the tests do) is seen here, as when the package was one module.
    """
    from engine_forms import openapi

    return openapi.PATH_CONTRIBUTORS


# -- the shared components, the document -------------------------------------------------


def _shared_parameters() -> dict[str, Any]:
    def query(name: str, schema: dict[str, Any], about: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "description": about, "schema": schema}
    version = {"type": "string", "pattern": '^(W/)?"[0-9]+"$', "examples": ['"3"']}
    return {
        "RecordId": {"name": "record_id", "in": "path", "required": True, "schema": ID},
        "AttachmentId": {"name": "attachment_id", "in": "path", "required": True,
                         "schema": ID},
        "Cursor": query("cursor", {"type": "string"}, "`next_cursor` of the previous page."),
        "Limit": query("limit", {"type": "integer", "minimum": 1, "maximum": 1000,
                                 "default": 50}, "Records per page."),
        "Deleted": query("deleted", {"type": "string", "enum": ["exclude", "only",
                                                                 "include"],
                                     "default": "exclude"}, "Records in the recycle bin."),
        "Count": query("count", {"type": "boolean", "default": False},
                       "Add `count`: how many records match, over all pages."),
        "Partial": query("partial", {"type": "boolean", "default": False},
                         "Create the valid items and report each one (201), instead of "
                         "all or nothing (422)."),
        "DryRun": query("dry_run", {"type": "boolean", "default": False},
                        "Check everything, write nothing."),
        "ExportFormat": query("format", {"type": "string", "enum": ["xlsx", "csv"],
                                         "default": "xlsx"}, "File format."),
        "IfMatch": {"name": "If-Match", "in": "header", "required": True, "schema": version,
                    "description": "The record's ETag (row_version): a change made since "
                                   "is refused (409) instead of overwritten."},
        "IfMatchOptional": {"name": "If-Match", "in": "header", "schema": version,
                            "description": "The record's ETag, when you want the check."},
        "IdempotencyKey": {"name": "Idempotency-Key", "in": "header",
                           "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                           "description": "A retry with the same key and request gets the "
                                          "first response again (kept 24 h)."},
    }


def _components(schemas: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    def problem(about: str, **headers: Any) -> dict[str, Any]:
        out = {"description": about, "content": {PROBLEM: {"schema": ref("Problem")}}}
        return out | ({"headers": headers} if headers else {})
    text = {"schema": {"type": "string"}}
    return {
        "schemas": shared_schemas() | schemas,
        "parameters": _shared_parameters() | parameters,
        "headers": {"ETag": {**text, "required": True,
                             "description": 'The row_version, quoted ("3")'},
                    "Location": {**text, "required": True},
                    "ContentDisposition": {**text, "required": True}},
        "responses": {
            "BadRequest": problem("The body could not be read (not JSON, broken multipart)"),
            "Unauthenticated": problem("No valid token or session",
                                       **{"WWW-Authenticate": text}),
            "Forbidden": problem("Your roles do not allow this (or a field is read-only)"),
            "NotFound": problem("No such app, form or record (or not in your row scope)"),
            "Conflict": problem("Changed by someone else since, or a duplicate unique value"),
            "TooLarge": problem("The request or file is over the limit"),
            "Invalid": problem("Invalid input; `errors` lists every problem"),
            "PreconditionRequired": problem("Send If-Match"),
            "RateLimited": problem("Too many requests with this token; wait Retry-After s",
                                   **{"Retry-After": {**text, "required": True}}),
        },
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "A personal API token (Settings → Security)."},
            "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                        "description": "The pages' session cookie; any write must also "
                                       "send the X-CSRF-Token header."},
        },
    }


def _used(components: dict[str, Any], paths: dict[str, Any]) -> dict[str, Any]:
    """The schemas something refers to (a viewer's document has no ``{form}.Create``)."""
    schemas = components["schemas"]
    wanted = [*refs(paths), *refs(components["parameters"]), *refs(components["responses"])]
    kept: dict[str, Any] = {}
    while wanted:
        name = wanted.pop()
        if name not in kept and name in schemas:
            kept[name] = schemas[name]
            wanted += refs(schemas[name])
    return {name: schema for name, schema in schemas.items() if name in kept}


def build_document(session: Session, app: str, principal: Principal,
                   routes: Mapping[tuple[str, str], str],
                   described: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app`` for ``principal`` (see the package docstring);
    ``described``: FastAPI's own document of the running app (for ``other_app_routes``)."""
    row = forms_handler.get_app(session, app)
    doc = AppDoc(session, app, principal, routes, described or {})
    parameters: dict[str, Any] = {}
    versions = {}
    for form in forms_handler.list_forms(session, app):
        access = principal.access(app, form.key)
        if form.published_version is None or not access.allows("read"):
            continue
        pub = forms_handler.published(session, app, form.key)
        versions[form.key] = pub.version
        add_form(doc, pub, Caller(principal, access, None), parameters)
    other_app_routes(doc, doc.described)
    for _key, contribute in _contributors().items():
        contribute(doc)
    components = _components(doc.schemas, parameters)
    components["schemas"] = _used(components, doc.paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{row.name} — Qiao API", "version": __version__,
                 "description": row.description or f"The forms of app `{app}` as "
                 f"{principal.username} may use them.", "x-qiao-forms": versions},
        "security": [{"bearer": []}, {"session": []}],
        "tags": doc.tags,
        "paths": doc.paths,
        "components": components,
    }
