"""What a role may do: its permission document, the built-in roles, and how several roles
combine into one user's access to one form.

A role's ``permissions`` is JSON validated by ``META_SCHEMA``::

    {"admin": false,            # system administration: users, roles, audit, apps
     "users": false,            # manage users of one's own department tree
     "forms": {"crm.customer": {"actions": ["create", "read", "update"],
                                "scope": "own",            # or department, department_tree,
                                                           # all, {"filter": <filter AST>}
                                "fields": {"id_number": "hidden", "income": "read",
                                           "mobile": "masked"},  # read, always masked
                                "default_field": "write"}}}

Form keys are ``app.form``, ``app.*`` or ``*``; the most specific entry of a role wins.
Across roles, rights add up: an action is allowed when any role allows it, on the rows of
any of those roles' scopes (OR), and a field gets the most open permission of the roles
that can read the form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator

from platform_core.errors import DomainError, InvalidInput

ACTIONS = ("create", "read", "update", "delete", "import", "export", "manage", "unmask")
WRITE_ACTIONS = frozenset({"create", "update", "delete", "import", "manage"})
SCOPES = ("own", "department", "department_tree", "all")
FIELD_LEVELS = ("hidden", "masked", "read", "write")  # least to most open
FORM_PATTERN = r"^(\*|[a-z][a-z0-9_]{0,63}\.(\*|[a-z][a-z0-9_]{0,63}))$"
PLACEHOLDERS = ("$user.id", "$user.department_id")

META_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Qiao role permissions",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "admin": {"type": "boolean"},
        "users": {"type": "boolean"},
        "forms": {
            "type": "object",
            "propertyNames": {"pattern": FORM_PATTERN},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["actions"],
                "properties": {
                    "actions": {"type": "array", "uniqueItems": True,
                                "items": {"enum": list(ACTIONS)}},
                    "scope": {"oneOf": [
                        {"enum": list(SCOPES)},
                        {"type": "object", "additionalProperties": False,
                         "required": ["filter"], "properties": {"filter": {"type": "object"}}},
                    ]},
                    "fields": {"type": "object",
                               "propertyNames": {"pattern": "^[a-z][a-z0-9_]{0,63}$"},
                               "additionalProperties": {"enum": list(FIELD_LEVELS)}},
                    "default_field": {"enum": list(FIELD_LEVELS)},
                },
            },
        },
    },
}

ALL_ACTIONS = list(ACTIONS)
BUILTIN_ROLES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "admin": ("系统管理员", "Everything, including users, roles, apps and the audit log.",
              {"admin": True, "users": True,
               "forms": {"*": {"actions": ALL_ACTIONS, "scope": "all"}}}),
    "manager": ("部门经理", "All records of their department and its sub-departments.",
                {"users": True, "forms": {"*": {
                    "actions": ["create", "read", "update", "delete", "import", "export",
                                "unmask"], "scope": "department_tree"}}}),
    "staff": ("业务员", "Their own records: create, read, update.",
              {"forms": {"*": {"actions": ["create", "read", "update"], "scope": "own"}}}),
    "viewer": ("只读", "Reads their department's records; masked values stay masked.",
               {"forms": {"*": {"actions": ["read"], "scope": "department"}}}),
}


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class InvalidPermissions(InvalidInput):
    code = "invalid_permissions"


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(META_SCHEMA)


def check_permissions(doc: Any) -> dict[str, Any]:
    """Validate a role's permission document; every problem named by its JSON path."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        problems = [f"permissions/{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
                    for e in errors]
        raise InvalidPermissions("; ".join(problems[:5]), problems=problems)
    return doc


def _entry(perms: Mapping[str, Any], app: str, form: str) -> Mapping[str, Any] | None:
    forms = perms.get("forms") or {}
    return forms.get(f"{app}.{form}") or forms.get(f"{app}.*") or forms.get("*")


RANK = {level: i for i, level in enumerate(FIELD_LEVELS)}
SCOPE_RANK = {scope: i for i, scope in enumerate(SCOPES)}


@dataclass(frozen=True)
class FormAccess:
    """One user's combined rights on one form (possibly narrowed by a token's scope).

    ``scopes[action]`` lists the row scopes under which ``action`` is allowed (OR); a
    scope is ``"own"``, ``"department"``, ``"department_tree"``, ``"all"`` or
    ``{"filter": …}``. ``field_rules`` has one ``(fields, default)`` per role that may
    read the form; a field's level is the most open of them (none: hidden).
    """

    app: str
    form: str
    scopes: dict[str, tuple[Any, ...]]
    field_rules: tuple[tuple[Mapping[str, str], str], ...] = ()
    caps: Mapping[str, str] = field(default_factory=dict)  # upper bounds (see ``capped``)

    def allows(self, action: str) -> bool:
        return bool(self.scopes.get(action))

    def require(self, action: str) -> None:
        if not self.allows(action):
            raise Forbidden(f"you may not {action} records of {self.app}.{self.form}",
                            action=action, form=f"{self.app}.{self.form}")

    def level(self, key: str) -> str:
        level = max((rules.get(key, default) for rules, default in self.field_rules),
                    key=RANK.__getitem__, default="hidden")
        cap = self.caps.get(key)
        return level if cap is None else min(level, cap, key=RANK.__getitem__)

    def capped(self, caps: Mapping[str, str]) -> FormAccess:
        """The same rights with some fields held at most at the given levels (a lookup
        of a field hidden in its own form is hidden here too)."""
        return FormAccess(self.app, self.form, self.scopes, self.field_rules,
                          {**self.caps, **caps})

    def readable(self, key: str) -> bool:
        return self.level(key) != "hidden"

    def masks(self) -> bool:
        """Whether some field may be at level ``masked`` (cheap: no per-field work)."""
        return any(default == "masked" or "masked" in rules.values()
                   for rules, default in self.field_rules)

    def writable(self, key: str) -> bool:
        return self.level(key) == "write"

    def any_allowed(self) -> bool:
        return any(self.scopes.values())


def combine(role_perms: Iterable[Mapping[str, Any]], app: str, form: str,
            *, allowed_actions: frozenset[str] | None = None) -> FormAccess:
    """Merge the roles' entries for ``app.form`` into one ``FormAccess``.

    ``allowed_actions`` (from a token's scope) removes every other action.
    """
    scopes: dict[str, list[Any]] = {}
    rules = []
    for perms in role_perms:
        entry = _entry(perms, app, form)
        if not entry:
            continue
        actions = set(entry.get("actions") or ())
        if allowed_actions is not None:
            actions &= allowed_actions
        scope = entry.get("scope", "own")
        for action in actions:
            bucket = scopes.setdefault(action, [])
            if scope not in bucket:
                bucket.append(scope)
        if "read" in actions:
            rules.append((entry.get("fields") or {}, entry.get("default_field", "write")))
    return FormAccess(app, form, {a: tuple(s) for a, s in scopes.items()}, tuple(rules))


def _scope_covered(held: tuple[Any, ...], wanted: Any) -> bool:
    if wanted in held:
        return True
    if isinstance(wanted, str):
        return any(isinstance(h, str) and SCOPE_RANK[h] >= SCOPE_RANK[wanted] for h in held)
    return "all" in held  # a filter scope is covered by "all" or by the same filter


def covers(holder: Iterable[Mapping[str, Any]], granted: Mapping[str, Any]) -> bool:
    """Whether someone holding roles ``holder`` holds every right in ``granted`` (so they
    may hand it out: nobody grants a right they do not have)."""
    holder = list(holder)
    if any(p.get("admin") for p in holder):
        return True
    if granted.get("admin") or (granted.get("users") and not any(p.get("users")
                                                                  for p in holder)):
        return False
    for key, entry in (granted.get("forms") or {}).items():
        app, _, form = key.partition(".")
        mine = combine(holder, app, form or "*")
        for action in entry.get("actions") or ():
            if not mine.allows(action) or not _scope_covered(mine.scopes[action],
                                                             entry.get("scope", "own")):
                return False
    return True
