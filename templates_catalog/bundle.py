"""An app bundle on disk (ARCHITECTURE.md, "Metadata"): ``app.json`` + ``forms/``,
``flows/``, ``rules/``, ``reports/``, ``dashboards/`` (one JSON file a definition, named by
its key), ``roles.json``, ``menus.json`` and an optional ``demo/``.

Reading a bundle checks its shape only (every file parses, names match keys, menus point
at things the bundle has); each definition is checked by its own engine when installed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from engine_forms.menus import MENUS_SCHEMA, reference_problems
from platform_core.security.permissions import BUILTIN_ROLES
from platform_core.specs import SpecError

CATALOG = Path(__file__).resolve().parent
KINDS = ("forms", "flows", "rules", "reports", "dashboards")
KEY = "^[a-z][a-z0-9_]{0,62}$"
# a menu item's kind → the bundle's folder of definitions it may point at
MENU_FOLDERS = {"form": "forms", "flow": "flows", "report": "reports",
                "dashboard": "dashboards"}

APP_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["key", "name", "version"],
    "properties": {"key": {"type": "string", "pattern": KEY},
                   "name": {"type": "string", "minLength": 1, "maxLength": 100},
                   "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
                   "description": {"type": "string", "maxLength": 2000}}}
ROLES_SCHEMA: dict[str, Any] = {
    "type": "array", "items": {
        "type": "object", "additionalProperties": False,
        "required": ["key", "name", "permissions"],
        "properties": {"key": {"type": "string", "pattern": KEY},
                       "name": {"type": "string", "minLength": 1, "maxLength": 100},
                       "description": {"type": "string", "maxLength": 2000},
                       "permissions": {"type": "object"}}}}


class BundleError(SpecError):
    """A bundle that cannot be read or installed; ``problems`` names each one."""

    code, what = "invalid_bundle", "bundle"


@dataclass
class Bundle:
    """One app's metadata: each kind maps a key to its definition."""

    app: dict[str, Any]
    forms: dict[str, dict[str, Any]] = field(default_factory=dict)
    flows: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles: list[dict[str, Any]] = field(default_factory=list)
    menus: list[dict[str, Any]] = field(default_factory=list)
    demo: Path | None = None

    @property
    def key(self) -> str:
        return self.app["key"]

    def kind(self, name: str) -> dict[str, dict[str, Any]]:
        return getattr(self, name)

    def menu_problems(self) -> list[str]:
        """What the menus name that the bundle lacks (the API's check, over the bundle's
        keys and roles — its own and the built-in ones)."""
        roles = {r["key"] for r in self.roles} | set(BUILTIN_ROLES)
        return reference_problems(
            self.menus, keys={kind: self.kind(folder) for kind, folder in MENU_FOLDERS.items()},
            roles=roles, owner="the bundle", where="menus.json")


def _read(path: Path, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path.name}: {exc}")
        return None


def _checked(doc: Any, schema: dict[str, Any], name: str, problems: list[str]) -> bool:
    errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: e.path)
    problems += [f"{name}/{'/'.join(map(str, e.path))}: {e.message}" for e in errors]
    return not errors


def load_bundle(path: Path) -> Bundle:
    """The bundle in folder ``path`` (``BundleError`` naming every problem)."""
    problems: list[str] = []
    if not (path / "app.json").is_file():
        raise BundleError([f"{path}: no app.json — not an app bundle"])
    app = _read(path / "app.json", problems)
    if app is not None and not _checked(app, APP_SCHEMA, "app.json", problems):
        app = None
    bundle = Bundle(app=app or {})
    for kind in KINDS:
        for file in sorted((path / kind).glob("*.json")):
            doc = _read(file, problems)
            if doc is None:
                continue
            if not isinstance(doc, dict) or doc.get("key") != file.stem:
                problems.append(f"{kind}/{file.name}: its key must be {file.stem!r}")
                continue
            bundle.kind(kind)[file.stem] = doc
    for name, schema in (("roles", ROLES_SCHEMA), ("menus", MENUS_SCHEMA)):
        file = path / f"{name}.json"
        doc = _read(file, problems) if file.is_file() else []
        if doc is not None and _checked(doc, schema, f"{name}.json", problems):
            setattr(bundle, name, doc)
    problems += bundle.menu_problems()
    if (path / "demo").is_dir():
        bundle.demo = path / "demo"
    if problems:
        raise BundleError(problems)
    return bundle


def write_bundle(bundle: Bundle, path: Path) -> None:
    """Write ``bundle`` as a folder (files of kinds no longer in it are removed)."""
    path.mkdir(parents=True, exist_ok=True)
    _write(path / "app.json", bundle.app)
    for kind in KINDS:
        folder = path / kind
        folder.mkdir(exist_ok=True)
        for stale in folder.glob("*.json"):
            if stale.stem not in bundle.kind(kind):
                stale.unlink()
        for key, doc in bundle.kind(kind).items():
            _write(folder / f"{key}.json", doc)
    _write(path / "roles.json", bundle.roles)
    _write(path / "menus.json", bundle.menus)


def _write(path: Path, doc: Any) -> None:
    # keys sorted: PostgreSQL's JSONB keeps no key order, and an export must not depend
    # on the database it came from
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
                    encoding="utf-8")


def catalog() -> dict[str, Path]:
    """The templates shipped with Qiao: name → folder."""
    return {p.name: p for p in sorted(CATALOG.iterdir()) if (p / "app.json").is_file()}


def template(name: str) -> Bundle:
    from platform_core.errors import NotFound

    found = catalog().get(name)
    if found is None:
        raise NotFound(f"no template {name!r} (there are: {', '.join(catalog()) or 'none'})",
                       template=name)
    return load_bundle(found)
