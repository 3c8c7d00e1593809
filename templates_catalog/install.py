"""Install a bundle as an app, and export an app as a bundle.

Installing goes through each engine's own save-and-publish code, so a template is held to
exactly the checks an admin's edits are; it is one transaction — any problem and nothing
of the app is left behind. Exporting an installed template gives the same bundle back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_flows import definitions as flow_definitions
from engine_flows.models import Flow, FlowVersion
from engine_forms import forms as form_definitions
from engine_forms.models import App, Form, FormVersion
from engine_forms.publishing import publish as publish_form
from engine_reports import service as report_definitions
from engine_reports.models import Dashboard, Report
from engine_rules import service as rule_definitions
from engine_rules.models import Rule
from platform_core.errors import Conflict
from platform_core.security import audit
from platform_core.security.directory import save_role
from platform_core.security.models import Role
from platform_core.specs import SpecError
from platform_core.store import Actor
from templates_catalog.bundle import Bundle, BundleError


@contextmanager
def part(name: str) -> Iterator[None]:
    """Name the bundle file a definition's problems come from."""
    try:
        yield
    except SpecError as exc:
        raise BundleError([f"{name}: {p}" for p in exc.problems]) from None


def form_order(forms: dict[str, dict[str, Any]]) -> list[str]:
    """Forms in an order that publishes every relation's target before the relation."""
    targets = {key: {f["target"] for f in spec.get("fields", ())
                     if f.get("type") == "relation" and f.get("target") in forms
                     and f.get("target") != key}
               for key, spec in forms.items()}
    done: list[str] = []
    while len(done) < len(forms):
        ready = sorted(k for k, t in targets.items() if k not in done and t <= set(done))
        if not ready:
            left = sorted(set(forms) - set(done))
            raise BundleError([f"forms: relations go round in a circle among {left}"])
        done += ready
    return done


def _role_entries(permissions: dict[str, Any], source: str, app: str) -> dict[str, Any]:
    """The bundle's form entries, renamed from app ``source`` to ``app``."""
    out = {}
    for name, entry in permissions.get("forms", {}).items():
        prefix, _, form = name.partition(".")
        if prefix != source:
            raise BundleError([f"roles.json: {name!r} is not a form of app {source!r}"])
        out[f"{app}.{form}"] = entry
    return out


def _install_roles(session: Session, bundle: Bundle, app: str, actor: Actor) -> None:
    """Create the bundle's roles; a role that exists keeps its rights and gains this
    app's entries (so a second app from the same template shares its roles)."""
    for doc in bundle.roles:
        entries = _role_entries(doc["permissions"], bundle.key, app)
        flags = {k: v for k, v in doc["permissions"].items() if k != "forms"}
        row = session.execute(select(Role).where(Role.key == doc["key"])).scalar_one_or_none()
        if row is None:
            save_role(session, key=doc["key"], name=doc["name"],
                      description=doc.get("description"),
                      permissions={**flags, "forms": entries}, principal=None, actor=actor,
                      create=True)
            continue
        merged = dict(row.permissions)
        merged["forms"] = {**merged.get("forms", {}), **entries}
        for flag, value in flags.items():
            merged[flag] = merged.get(flag, False) or value
        save_role(session, key=row.key, name=row.name, description=row.description,
                  permissions=merged, principal=None, actor=actor, create=False)


def engines_ready() -> None:
    """Fill every engine's registries (field types, functions, node and action types …),
    as the app factory does: a bundle is checked by all of them (idempotent)."""
    from engine_flows.plugin import register_builtins as flows
    from engine_forms import fieldtypes
    from engine_reports.plugin import register_builtins as reports
    from engine_rules.plugin import register_builtins as rules
    from platform_core.expressions import register_builtins as functions
    from platform_core.store import kinds

    kinds.register_builtins()
    functions()
    fieldtypes.register_builtins()
    flows()
    rules()
    reports()


def install(session: Session, bundle: Bundle, *, actor: Actor, key: str | None = None,
            template: str | None = None) -> App:
    """Create app ``key`` (default: the bundle's) with everything in ``bundle``:
    roles, forms (published), flows (published), rules, reports, dashboards, menus."""
    engines_ready()
    key = key or bundle.key
    if session.get(App, key) is not None:
        raise Conflict(f"app {key!r} already exists; install under another key", app=key)
    row = form_definitions.create_app(session, key=key, name=bundle.app["name"],
                                      description=bundle.app.get("description"))
    row.menus, row.template = bundle.menus, template
    row.template_version = bundle.app["version"]
    _install_roles(session, bundle, key, actor)
    for form in form_order(bundle.forms):
        with part(f"forms/{form}.json"):
            form_definitions.create_form(session, app=key, raw=bundle.forms[form])
            publish_form(session, app=key, key=form, actor=actor)
    for flow in bundle.flows:
        with part(f"flows/{flow}.json"):
            flow_definitions.create_flow(session, app=key, raw=bundle.flows[flow])
            flow_definitions.publish(session, app=key, key=flow, actor=actor)
    for rule, raw in bundle.rules.items():
        with part(f"rules/{rule}.json"):
            rule_definitions.save(session, app=key, raw=raw, actor=actor)
    for report, raw in bundle.reports.items():
        with part(f"reports/{report}.json"):
            report_definitions.save_report(session, app=key, raw=raw, actor_id=actor.user_id)
    for dashboard, raw in bundle.dashboards.items():
        with part(f"dashboards/{dashboard}.json"):
            report_definitions.save_dashboard(session, app=key, raw=raw,
                                              actor_id=actor.user_id)
    session.flush()
    audit.append(session, actor=actor, action="app.install", target=f"app:{key}",
                 detail={"template": template, "version": bundle.app["version"],
                         **{kind: sorted(bundle.kind(kind)) for kind in
                            ("forms", "flows", "rules", "reports", "dashboards")}})
    return row


def _specs(session: Session, model: Any, app: str) -> dict[str, dict[str, Any]]:
    rows = session.execute(select(model).where(model.app == app).order_by(model.key))
    return {r.key: r.spec for r in rows.scalars()}


def _published(session: Session, model: Any, version_model: Any, owner: Any,
               app: str) -> dict[str, dict[str, Any]]:
    """Each definition's latest published spec (its draft if never published)."""
    out = {}
    for row in session.execute(select(model).where(model.app == app)
                               .order_by(model.key)).scalars():
        spec = row.draft
        if row.published_version is not None:
            spec = session.execute(select(version_model.spec).where(
                version_model.app == app, owner == row.key,
                version_model.version == row.published_version)).scalar_one()
        out[row.key] = spec
    return out


def export(session: Session, app: str) -> Bundle:
    """App ``app`` as a bundle: the published forms and flows, the rules, reports,
    dashboards and menus, and the roles that have rights in it (only those rights) or that
    its menus name (so the bundle's menus check against its roles)."""
    row = form_definitions.get_app(session, app)
    head = {"key": row.key, "name": row.name, "version": row.template_version or "1.0.0"}
    if row.description:
        head["description"] = row.description
    bundle = Bundle(app=head, menus=list(row.menus or []))
    bundle.forms = _published(session, Form, FormVersion, FormVersion.form, app)
    bundle.flows = _published(session, Flow, FlowVersion, FlowVersion.flow, app)
    bundle.rules = _specs(session, Rule, app)
    bundle.reports = _specs(session, Report, app)
    bundle.dashboards = _specs(session, Dashboard, app)
    named = {key for group in bundle.menus for item in group["items"]
             for key in item.get("roles", ())}
    for role in session.execute(select(Role).order_by(Role.id)).scalars():
        entries = {k: v for k, v in role.permissions.get("forms", {}).items()
                   if k.startswith(f"{app}.")}
        if not entries and role.key not in named:
            continue
        flags = {k: v for k, v in role.permissions.items() if k not in ("forms", "admin")
                 and v}
        doc = {"key": role.key, "name": role.name}
        if role.description:
            doc["description"] = role.description
        bundle.roles.append({**doc, "permissions": {**flags, "forms": entries}})
    return bundle
