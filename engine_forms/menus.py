"""An app's menus: groups of items (a form's records, a flow, a report, a dashboard, the
task inbox), each item optionally limited to some roles.

The shape (``MENUS_SCHEMA``) and the references (every item's key names a definition of
the app, every role exists) are checked here, once, for everything that stores menus: the
API (``PUT /api/v1/apps/{app}/menus``, which the menu editor calls too) and a template
bundle (``templates_catalog.bundle``, which checks against the bundle's own keys).

The definitions an item may point at belong to the engines above this one (flows,
reports, dashboards), so each engine registers a lister of its keys in ``MENU_TARGETS``
at start-up (ARCHITECTURE.md: a registry in the lower layer that the higher fills); the
form engine registers its own forms the same way (``register_builtins``).

Saving, in order: the app exists → the shape (JSON Schema) → the references → the menus
replace the app's (the caller audits the change).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_forms.forms import get_app, list_forms
from engine_forms.models import App
from platform_core.models import utcnow
from platform_core.registry import Registry
from platform_core.security.models import Role
from platform_core.specs import MAX_PROBLEMS, SpecError

KEY = "^[a-z][a-z0-9_]{0,62}$"
# The kinds of item (public keys, like type keys: never renamed). Every kind but ``tasks``
# (the caller's own inbox) points at one definition of the app through its ``key``.
MENU_KINDS = ("tasks", "form", "flow", "report", "dashboard")
KEYED_KINDS = MENU_KINDS[1:]
MENUS_SCHEMA: dict[str, Any] = {
    "type": "array", "maxItems": 30, "items": {
        "type": "object", "additionalProperties": False, "required": ["label", "items"],
        "properties": {
            "label": {"type": "string", "minLength": 1, "maxLength": 50},
            "items": {"type": "array", "maxItems": 50, "items": {
                "type": "object", "additionalProperties": False, "required": ["label", "kind"],
                "properties": {
                    "label": {"type": "string", "minLength": 1, "maxLength": 50},
                    "kind": {"enum": list(MENU_KINDS)},
                    "key": {"type": "string", "pattern": KEY},
                    # who sees the item (any of them; admins always do); absent: everyone
                    # who may use what it points at
                    "roles": {"type": "array", "minItems": 1, "maxItems": 50,
                              "uniqueItems": True,
                              "items": {"type": "string", "pattern": KEY}}}}}}}}

# kind → (session, app) → {key: display name} of the app's definitions of that kind
Lister = Callable[[Session, str], dict[str, str]]
MENU_TARGETS: Registry[Lister] = Registry("menu item kind")


class MenuError(SpecError):
    """Menus that cannot be stored; ``problems`` names each one by its place
    (``menus[1].items[0].key: …``)."""

    code, what = "invalid_menus", "menus"


def _forms(session: Session, app: str) -> dict[str, str]:
    return {f.key: str(f.draft.get("name") or f.key) for f in list_forms(session, app)}


def register_builtins() -> None:
    """The form engine's own kind (idempotent); flows and reports add theirs."""
    if "form" not in MENU_TARGETS:
        MENU_TARGETS.register("form", _forms)


def _place(where: str, path: Sequence[Any]) -> str:
    """``menus[1].items[0].key`` for the JSON path ``(1, "items", 0, "key")``."""
    text = where
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def shape_problems(menus: Any, *, where: str = "menus") -> list[str]:
    """What ``MENUS_SCHEMA`` finds wrong with ``menus``, each problem named by its place."""
    errors = sorted(Draft202012Validator(MENUS_SCHEMA).iter_errors(menus),
                    key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{_place(where, e.absolute_path)}: {e.message}" for e in errors]


def reference_problems(menus: list[dict[str, Any]], *, keys: Mapping[str, Collection[str]],
                       roles: Collection[str], owner: str,
                       where: str = "menus") -> list[str]:
    """What a well-shaped ``menus`` names that does not exist: an item's definition
    (``keys``: kind → the keys there are; ``owner`` says whose, for the message) or one of
    its roles."""
    problems = []
    for g, group in enumerate(menus):
        for i, item in enumerate(group["items"]):
            place, kind = _place(where, (g, "items", i)), item["kind"]
            if kind not in KEYED_KINDS:
                if "key" in item:
                    problems.append(f"{place}.key: a {kind} item has no key")
            elif "key" not in item:
                problems.append(f"{place}: a {kind} item needs a key")
            elif kind not in keys:
                problems.append(f"{place}.kind: {kind} items are not available here")
            elif item["key"] not in keys[kind]:
                problems.append(f"{place}.key: {owner} has no {kind} {item['key']!r}")
            problems += [f"{place}.roles: there is no role {role!r}"
                         for role in item.get("roles", ()) if role not in roles]
    return problems


def targets(session: Session, app: str) -> dict[str, dict[str, str]]:
    """Every kind an item may point at → the app's definitions of it (key → name)."""
    return {kind: lister(session, app) for kind, lister in MENU_TARGETS.items()}


def role_keys(session: Session) -> set[str]:
    return set(session.execute(select(Role.key)).scalars())


def check_menus(session: Session, app: str, raw: Any) -> list[str]:
    """Every problem storing ``raw`` as app ``app``'s menus would meet (nothing written)."""
    problems = shape_problems(raw)
    if problems:
        return problems
    return reference_problems(raw, keys=targets(session, app), roles=role_keys(session),
                              owner=f"app {app!r}")


def save_menus(session: Session, *, app: str, raw: Any) -> App:
    """Replace app ``app``'s menus with ``raw`` (``MenuError`` naming every problem)."""
    row = get_app(session, app)
    problems = check_menus(session, app, raw)
    if problems:
        raise MenuError(problems[:MAX_PROBLEMS])
    row.menus, row.updated_at = raw, utcnow()
    return row
