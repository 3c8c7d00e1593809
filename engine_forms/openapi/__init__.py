"""The generated OpenAPI 3.1 document of one app, as one caller may use it
(``GET /api/v1/apps/{app}/openapi.json``; Swagger UI shows it at ``/docs``).

Every published form the caller may read gets its own typed schemas (components named
``{form}.{Part}``), built from the field types' ``value_schema`` and the caller's rights:

- ``{form}.Data``: a record's ``data`` as the caller reads it — hidden fields absent,
  masked fields plain text (``138****1234``), computed and read-only fields ``readOnly``;
- ``{form}.Record``: the record document (system fields + ``data``), ``{form}.Page`` a
  list page, ``{form}.Filter`` the filter AST over the fields the caller can see;
- ``{form}.Create`` / ``{form}.Update``: what the caller may write — writable,
  non-computed fields only; an unknown key is refused (``additionalProperties: false``).

Operations are bound to the real routes: one is described only when its route is
registered in the running app (so the document never names an endpoint that does not
exist) and the route's own rule (``x-permission``) allows it for this caller, the same
check the guard makes. Flows, tasks and reports have no routes yet: their engines add
their paths through ``PATH_CONTRIBUTORS`` (the extension point, see ``AppDoc``).

Order of events for one request: the app's forms → the published ones the caller may
read → per form: narrow the caller (lookups, rollups) → schemas → operations → each
registered contributor, in key order. The document is built on every request from the
published versions of that moment, so a publish shows on the very next request.

The package: ``schemas`` (a field's value, a form's components, the shared schemas) →
``operations`` (per form, bound to the routes; the app's other routes) → ``document``
(``AppDoc``, ``PATH_CONTRIBUTORS``, ``build_document``) → ``api`` (the route).
"""

from __future__ import annotations

from engine_forms.openapi.api import router
from engine_forms.openapi.document import PATH_CONTRIBUTORS, AppDoc

__all__ = ["PATH_CONTRIBUTORS", "AppDoc", "router"]
