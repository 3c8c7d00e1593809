"""The authorization matrix: every route × every built-in role × own/other department target.

Generated from the route table (``api_routes``): a route without a permission rule, or
without an entry in ``EXAMPLES`` (how to build a *valid* request for it), fails
``test_every_route_has_a_rule_and_an_example`` by its method and path. Each case then sends
that valid request as one caller and compares the status with the outcome *computed* from
the route's declared rule, the caller's built-in role (``BUILTIN_ROLES``) and, for routes
addressing a record, a flow run, a task, a user or one's own token, where that target lies:

- ``public`` → anyone, even anonymous; any other rule without credentials → 401 (a page,
  GET outside ``/api/``: 303 to ``/login?next=…``);
- ``self`` → any signed-in user, even one who must first change a one-time password (the
  caller ``pending``), who gets 403 on every other rule;
- ``user`` → any signed-in user; ``admin`` → administrators only;
- ``users`` → administrators and user managers; a manager only reaches users of their
  own department tree (anyone else is 404);
- ``app:<action>`` / ``form:<action>`` → 403 unless the role allows the action (on some
  form of the app / on the form); a record (or an attachment of a record) outside the
  action's row scope is 404 — own for staff, the department for viewers, the department
  tree for managers, everything for admins;
- ``/me/…/{token_id}`` → another user's token is 404, whoever asks;
- a flow run (``{run_id}``) is read with its record: outside the read row scope of the
  flow's form it is 404, like the record — unless the caller started it or takes part in
  it, so a run outside their scope is one of somebody else's; inside, the example makes
  the run the caller's own (they started it, or completed the step to withdraw) since
  cancel and withdraw check that beyond the rule; starting a run names its record in the
  body, which is the target (its update row scope);
- a task (``/tasks/{task_id}``): "own" is the caller's (assigned to them, or a candidate
  for claim), "other" staff_b's; a task one takes no part in is 404 unless one manages the
  flow's form (admins: a role with ``manage``), who may read and reassign it but not act
  on it (403: only its assignee or a candidate does); reassigning needs a flow manager
  (else 403, even for one's own task).

Targets: "own" (staff's, Branch A: the department of manager and viewer), "sub" (Branch
A1, below Branch A) and "other" (Branch B, a sibling under HQ). "Allowed" is a 2xx or 3xx;
"denied" is exactly the status computed (401, 303 to sign-in, 403, 404).

The world (departments, users, forms, records, flows over customers and a run of flow
``review`` over each target customer) is built once per module on the session's
migrated database and emptied before and after, like the ``db`` fixture after a test;
destructive cases (delete, restore, patch, reset-password, revoke, logout, a task's
operations…) get a fresh target of their own so they never spoil another case (on flow
routes, anonymous and pending callers, refused by the guard before the route runs, are
sent to the shared ones).
"""

from __future__ import annotations

import csv
import io
import itertools
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from engine_forms.models import FormMigration
from frontend.pages_auth import LOGIN_CSRF_COOKIE
from platform_core.app import create_app
from platform_core.db import Database
from platform_core.security import passwords
from platform_core.security.auth import issue_token
from platform_core.security.directory import save_role
from platform_core.security.guard import api_routes, route_rule, valid
from platform_core.security.models import User
from platform_core.security.permissions import BUILTIN_ROLES
from platform_core.settings import load_settings
from platform_core.webhooks.models import WebhookDelivery
from tests import security_setup
from tests.conftest import _reset
from tests.engine_forms.forms_setup import make_crm, ok
from tests.security_setup import PASSWORD, SYSTEM, add_department, add_user, token_for

# -- the world ----------------------------------------------------------------------------

ROLES = ("admin", "manager", "staff", "viewer")
ANONYMOUS = "anonymous"
PENDING = "pending"  # a staff user who must first change their one-time password
CALLERS = (ANONYMOUS, *ROLES, PENDING)
DEPARTMENTS = {"HQ": None, "Branch A": "HQ", "Branch A1": "Branch A", "Branch B": "HQ"}
USERS = {  # username: (built-in role, department)
    "admin": ("admin", "HQ"), "manager": ("manager", "Branch A"),
    "staff": ("staff", "Branch A"), "viewer": ("viewer", "Branch A"),
    "staff_a1": ("staff", "Branch A1"), "staff_b": ("staff", "Branch B"),
    PENDING: ("staff", "Branch A"),
}
# Where a target (a record, an attachment, a user) lies: "own" is owned by staff in Branch
# A (the department of manager and viewer); "sub" is in Branch A1, below Branch A (inside
# the manager's tree, outside the viewer's department); "other" is in Branch B, a sibling.
TARGETS = {"own": "staff", "sub": "staff_a1", "other": "staff_b"}
RECORD_PARAMS = frozenset({"record_id", "attachment_id"})  # targets in a form's row scope
RUN_PARAMS = frozenset({"run_id"})  # a flow run: readable with its record (or one's own)
TASK_PARAMS = frozenset({"task_id"})  # a task: "own" is the caller's, "other" staff_b's
# routes whose target record is named in the body, not the path
BODY_RECORDS = frozenset({("POST", "/api/v1/apps/{app}/flows/{flow}/instances")})
USER_PARAMS = frozenset({"user_id"})  # targets in a user manager's department tree
# ... and a personal token under /me: "own" is the caller's, "other" is staff_b's
MY_PARAMS = frozenset({"token_id"})
NEW_PASSWORD = "Fresh-Passw0rd-42"
API = "/api/v1"
CRM = f"{API}/apps/crm"
CUSTOMER = f"{CRM}/forms/customer"
MEMO = f"{CRM}/forms/memo"  # the form whose design is edited and republished by cases
MEMO_SPEC = {"key": "memo", "name": "备忘", "fields": [
    {"key": "note", "label": "备注", "type": "text"}]}
MENUS = [{"label": "客户", "items": [  # an app's whole menus, as the menu editor saves them
    {"label": "客户", "kind": "form", "key": "customer", "roles": ["staff"]},
    {"label": "待办", "kind": "tasks"}]}]
# flows over customers: who gets a step's task is named by the record's city (a user of
# the world; "<name>|pool": that user and staff_a1, as candidates of an unassigned task),
# else it is the record's owner (the world's shared records are in 北京)
FLOWS = f"{CRM}/flows"
REVIEW = f"{FLOWS}/review"  # work (a task) → check (an approval of mode any)
HOLDERS = ("admin", "manager", "staff", "viewer", "staff_b")
TO_WHOM = {"strategy": "mapping", "field": "city", "map": {
    **{name: {"strategy": "users", "users": [name]} for name in HOLDERS},
    **{f"{name}|pool": {"strategy": "users", "users": [name, "staff_a1"]}
       for name in HOLDERS}}, "default": {"strategy": "field", "field": "owner"}}


def _linear(key: str, *steps: dict[str, Any]) -> dict[str, Any]:
    nodes = [{"id": "start", "type": "start"}, *steps, {"id": "end", "type": "end"}]
    return {"key": key, "name": key, "form": "customer", "nodes": nodes,
            "edges": [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]}


CHECK = {"id": "check", "type": "approval", "name": "审批", "mode": "any", "assignee": TO_WHOM}
REVIEW_SPEC = _linear(
    "review", {"id": "work", "type": "user_task", "name": "处理", "assignee": TO_WHOM}, CHECK
) | {"public": {"steps": {"work": "正在办理", "check": "正在审核"}}}  # customer progress links
SIGN_SPEC = _linear("sign", CHECK)  # an approval at once
# hand → a sub-flow run of review, started by whoever completes hand (its initiator)
RELAY_SPEC = _linear(
    "relay", {"id": "hand", "type": "user_task", "name": "转交", "assignee": TO_WHOM},
    {"id": "sub", "type": "subflow", "flow": "review"})
NOTES_SPEC = _linear("notes")  # the flow whose draft is edited and republished by cases
FLOW_FORMS = {"review": "customer", "sign": "customer", "relay": "customer",
              "notes": "customer"}
TASK_FORM = ("crm", "customer")  # the form of every task of the world


def subtree(department: str) -> set[str]:
    below = {department}
    while True:
        more = {d for d, parent in DEPARTMENTS.items() if parent in below} - below
        if not more:
            return below
        below |= more


@dataclass
class Request:
    """A request to send; ``token`` replaces the caller's own bearer token (a fresh user's
    or a fresh token's, for cases that change the caller)."""

    url: str
    json: Any = None
    data: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    token: str | None = None


@dataclass
class World:
    client: TestClient
    db: Database
    departments: dict[str, int]
    users: dict[str, int]
    tokens: dict[str, str]
    records: dict[str, int] = field(default_factory=dict)
    attachments: dict[str, int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)  # review over each shared record
    tasks: dict[str, int] = field(default_factory=dict)  # … and its task (the owner's)
    standing: dict[str, int] = field(default_factory=dict)  # a task per user, only read
    spare: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # customers
    migration_id: int = 0
    serial: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def n(self) -> int:
        return next(self.serial)

    def auth(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def acting(self, who: str) -> str:
        """The user a request is built for (anonymous requests borrow staff's data)."""
        return "staff" if who == ANONYMOUS else who

    def fresh_user(self, role: str, department: str, **columns: Any) -> tuple[int, str]:
        """A new user (id, token) with ``role`` in ``department``."""
        user_id = add_user(self.db, f"fresh{self.n()}", roles=(role,),
                           department_id=self.departments[department], **columns)
        return user_id, token_for(self.db, user_id)

    def fresh_user_like(self, who: str) -> tuple[int, str]:
        role, department = USERS[self.acting(who)]
        return self.fresh_user(role, department, must_change_password=who == PENDING)

    def upload(self, owner: str) -> int:
        return ok(self.client.post(f"{CUSTOMER}/attachments", data={"field": "docs"},
                                   files={"file": ("合同.pdf", b"%PDF-1.4 test",
                                                   "application/pdf")},
                                   headers=self.auth(owner)), 201)["id"]

    def fresh_record(self, variant: str, **data: Any) -> int:
        """A new customer owned by the variant's user (in their department)."""
        body = {"name": f"客户{self.n()}", "city": "北京", **data}
        return ok(self.client.post(f"{CUSTOMER}/records", json=body,
                                   headers=self.auth(TARGETS[variant])), 201)["id"]

    def doer(self, who: str) -> str:
        """The user a flow target is built for (anonymous and pending borrow staff's)."""
        return "staff" if who in (ANONYMOUS, PENDING) else who

    def start(self, record_id: int, by: str, flow: str = "review") -> dict[str, Any]:
        return ok(self.client.post(f"{FLOWS}/{flow}/instances", json={"record_id": record_id},
                                   headers=self.auth(by)), 201)

    def act(self, task_id: int, who: str) -> dict[str, Any]:
        """``who`` completes their task: the run as it then stands."""
        return ok(self.client.post(f"{API}/tasks/{task_id}/complete", json={},
                                   headers=self.auth(who)))["instance"]

    @staticmethod
    def task_at(run: dict[str, Any]) -> int:
        """The open task of the run's (one) current step."""
        [step] = run["current"]
        return step["tasks"][0]

    def fresh_task(self, holder: str, *, flow: str = "review", at: str = "work",
                   pool: bool = False) -> int:
        """A new run's task of ``holder``'s at its first step, or at review's check
        (``pool``: unassigned, with holder and staff_a1 as candidates); started by admin
        over a customer of staff's."""
        record_id = self.flow_record("own", f"{holder}|pool" if pool else holder)
        task_id = self.task_at(self.start(record_id, "admin", flow=flow))
        return self.task_at(self.act(task_id, holder)) if at == "check" else task_id

    def standing_task(self, holder: str) -> int:
        """A task of ``holder``'s that no case changes (for routes that only read)."""
        if holder not in self.standing:
            self.standing[holder] = self.fresh_task(holder)
        return self.standing[holder]

    def flow_record(self, variant: str, city: str = "北京") -> int:
        """A new customer of the variant's owner in ``city`` (who gets its flow's tasks),
        for a flow target: customers are created 8 at a time (one bulk request)."""
        spare = self.spare.setdefault((variant, city), [])
        if not spare:
            batch = [{"name": f"客户{self.n()}", "city": city} for _ in range(8)]
            created = ok(self.client.post(f"{CUSTOMER}/records/bulk", json={"records": batch},
                                          headers=self.auth(TARGETS[variant])), 201)
            spare += [item["id"] for item in reversed(created["items"])]
        return spare.pop()

    def fresh_department(self) -> int:
        return add_department(self.db, f"Dept {self.n()}", self.departments["HQ"])

    def fresh_role(self) -> str:
        key = f"role{self.n()}"
        with self.db.write() as s:
            save_role(s, key=key, name=key, description=None, permissions=ROLE_PERMS,
                      principal=None, actor=SYSTEM, create=True)
        return key


ROLE_PERMS = {"forms": {"crm.*": {"actions": ["read"], "scope": "own"}}}


def build_world(app: Any, db: Database, client: TestClient) -> World:
    departments: dict[str, int] = {}
    for name, parent in DEPARTMENTS.items():  # parents come first
        departments[name] = add_department(db, name, departments.get(parent))
    users = {name: add_user(db, name, roles=(role,), department_id=departments[dept],
                            must_change_password=name == PENDING)
             for name, (role, dept) in USERS.items()}
    tokens = {name: token_for(db, user_id) for name, user_id in users.items()}
    w = World(client, db, departments, users, tokens)
    with TestClient(app, raise_server_exceptions=False) as admin:
        admin.headers.update(w.auth("admin"))
        make_crm(admin)
        ok(admin.post(f"{CRM}/forms", json=MEMO_SPEC), 201)
        ok(admin.post(f"{MEMO}/publish"))
    with db.write() as s:
        job = FormMigration(app="crm", form="memo", from_version=1, to_version=2,
                            status="done", failures=[])
        s.add(job)
        s.flush()
        w.migration_id = job.id
    for i, (variant, owner) in enumerate(TARGETS.items()):
        w.attachments[variant] = w.upload(owner)
        w.records[variant] = w.fresh_record(variant, mobile=f"1380000000{i}",
                                            docs=[w.attachments[variant]])
    for spec in (REVIEW_SPEC, SIGN_SPEC, RELAY_SPEC, NOTES_SPEC):  # relay runs review
        ok(w.client.post(FLOWS, json=spec, headers=w.auth("admin")), 201)
        ok(w.client.post(f"{FLOWS}/{spec['key']}/publish", headers=w.auth("admin")), 201)
    for variant, owner in TARGETS.items():  # each owner runs review over their record
        run = w.start(w.records[variant], owner)
        w.runs[variant], w.tasks[variant] = run["id"], w.task_at(run)
    return w


@pytest.fixture(scope="module")
def world(_migrated: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world for the module, on the session's migrated database (emptied before and
    after, as the function-scoped ``db`` fixture does after each test)."""
    _reset(_migrated)
    settings = load_settings(data_dir=tmp_path_factory.mktemp("matrix"),
                             login_rate_per_minute=1000,  # every case may sign in
                             # admin's token makes far more than 600 calls a minute
                             api_rate_per_minute=10**9,
                             background_jobs=False)  # no webhook is really sent
    app = create_app(settings, db=_migrated)
    # argon2 is slow on purpose, and some 70 cases hash or verify a password: here a cheap
    # argon2id (the matrix is about who may call what, not about the cost of a hash)
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    hashed = cheap.hash(PASSWORD)
    try:
        with pytest.MonkeyPatch.context() as patch, TestClient(
                app, raise_server_exceptions=False, follow_redirects=False) as client:
            patch.setattr(passwords, "HASHER", cheap)
            patch.setattr(security_setup, "password_hash", lambda: hashed)
            yield build_world(app, _migrated, client)
    finally:
        _reset(_migrated)


# -- how to build a valid request for each route -------------------------------------------
# A builder takes (world, caller, target variant or None) and returns the Request.


def _token_exchange(w: World, who: str, _v: str | None) -> Request:
    return Request(f"{API}/auth/token", json={"username": w.acting(who), "password": PASSWORD})


def _logout(w: World, who: str, _v: str | None) -> Request:  # ends a fresh token of theirs
    return Request(f"{API}/auth/logout", token=token_for(w.db, w.users[w.acting(who)]))


def _password(w: World, who: str, _v: str | None) -> Request:
    _, token = w.fresh_user_like(who)
    return Request(f"{API}/me/password", token=token,
                   json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})


def _totp_confirm(w: World, who: str, _v: str | None) -> Request:
    role, department = USERS[w.acting(who)]
    user_id, token = w.fresh_user(role, department)
    begun = ok(w.client.post(f"{API}/me/totp", headers={"Authorization": f"Bearer {token}"}))
    if who == PENDING:  # enrolled first, then made to change their password
        with w.db.write() as s:
            s.get(User, user_id).must_change_password = True
    return Request(f"{API}/me/totp/confirm", token=token,
                   json={"code": pyotp.TOTP(begun["secret"]).now()})


def _my_token_revoke(w: World, who: str, variant: str | None) -> Request:
    owner = "staff_b" if variant == "other" else w.acting(who)
    with w.db.write() as s:
        row, _ = issue_token(s, user_id=w.users[owner], name="spare", actor=SYSTEM)
        token_id = row.id
    return Request(f"{API}/me/tokens/{token_id}")


def _new_user(w: World, _who: str, _v: str | None) -> Request:
    return Request(f"{API}/users", json={
        "username": f"new{w.n()}", "display_name": "新用户", "roles": ["staff"],
        "department_id": w.departments["Branch A"], "password": NEW_PASSWORD})


def _target_user(suffix: str = "", *, fresh: bool = False, **body: Any
                 ) -> Callable[[World, str, str | None], Request]:
    def build(w: World, _who: str, variant: str | None) -> Request:
        owner = TARGETS[variant or "own"]
        if fresh:  # a new user where the variant's user is
            user_id, _ = w.fresh_user("staff", USERS[owner][1])
        else:
            user_id = w.users[owner]
        return Request(f"{API}/users/{user_id}{suffix}", json=body or None)
    return build


def _record(suffix: str = "", **body: Any) -> Callable[[World, str, str | None], Request]:
    """A request on the variant's shared record (for routes that change nothing)."""
    def build(w: World, _who: str, variant: str | None) -> Request:
        return Request(f"{CUSTOMER}/records/{w.records[variant or 'own']}{suffix}",
                       json=body or None)
    return build


def _patch_record(w: World, _who: str, variant: str | None) -> Request:
    record_id = w.fresh_record(variant or "own")
    return Request(f"{CUSTOMER}/records/{record_id}", json={"city": "上海"},
                   headers={"If-Match": '"1"'})


def _delete_record(w: World, _who: str, variant: str | None) -> Request:
    record_id = w.fresh_record(variant or "own")
    return Request(f"{CUSTOMER}/records/{record_id}", headers={"If-Match": '"1"'})


def _restore_record(w: World, _who: str, variant: str | None) -> Request:
    record_id = w.fresh_record(variant or "own")
    assert w.client.delete(f"{CUSTOMER}/records/{record_id}",
                           headers=w.auth("admin")).status_code == 204
    return Request(f"{CUSTOMER}/records/{record_id}/restore")


def _fixed(url: str, **kwargs: Any) -> Callable[[World, str, str | None], Request]:
    def build(_w: World, _who: str, _v: str | None) -> Request:
        return Request(url, **kwargs)
    return build


def _fresh_department(suffix: str = "", **body: Any
                      ) -> Callable[[World, str, str | None], Request]:
    def build(w: World, _who: str, _v: str | None) -> Request:
        return Request(f"{API}/departments/{w.fresh_department()}{suffix}", json=body or None)
    return build


def _fresh_role(**body: Any) -> Callable[[World, str, str | None], Request]:
    def build(w: World, _who: str, _v: str | None) -> Request:
        return Request(f"{API}/roles/{w.fresh_role()}", json=body or None)
    return build


def _admin_token_revoke(w: World, _who: str, _v: str | None) -> Request:
    with w.db.write() as s:
        row, _ = issue_token(s, user_id=w.users["staff_b"], name="spare", actor=SYSTEM)
        token_id = row.id
    return Request(f"{API}/tokens/{token_id}")


PAGE = "/apps/crm/forms/customer"  # the workspace's pages of the customer form


def _page_record(suffix: str = "") -> Callable[[World, str, str | None], Request]:
    """A record page of the variant's shared customer (pages that change nothing)."""
    def build(w: World, _who: str, variant: str | None) -> Request:
        return Request(f"{PAGE}/records/{w.records[variant or 'own']}{suffix}")
    return build


def _progress_link(w: World, variant: str | None) -> tuple[int, str]:
    """A new customer progress link to the variant's shared record: (its id, its token)."""
    from engine_flows import progress_links
    from platform_core.models import utcnow

    ctx = w.client.app.state.qiao
    with w.db.write() as s:
        link = progress_links.create_link(s, app="crm", form="customer",
                                          record_id=w.records[variant or "own"], actor=SYSTEM,
                                          now=utcnow())
        return link.id, progress_links.Site(ctx.secret_key, "http://x").token(link.nonce)


def _revoke_link(prefix: str) -> Callable[[World, str, str | None], Request]:
    def build(w: World, _who: str, variant: str | None) -> Request:
        link_id, _ = _progress_link(w, variant)
        return Request(f"{prefix}/records/{w.records[variant or 'own']}/progress-links/"
                       f"{link_id}/revoke")
    return build


def _page_fresh(suffix: str, **data: Any) -> Callable[[World, str, str | None], Request]:
    """A page's form posted about a fresh customer of the variant's owner."""
    def build(w: World, _who: str, variant: str | None) -> Request:
        record_id = w.fresh_record(variant or "own")
        return Request(f"{PAGE}/records/{record_id}{suffix}", data=data or None)
    return build


def _stands_task(w: World, who: str, variant: str | None) -> Request:
    """The record page's panel working a task: a fresh run over a customer of the
    variant's owner whose first step is the caller's."""
    variant = variant or "own"
    record_id = w.flow_record(variant, w.doer(who))
    task_id = w.task_at(w.start(record_id, "admin"))
    return Request(f"{PAGE}/records/{record_id}/stands/{task_id}",
                   data={"action": "outcome:submit", "comment": "好"})


def _page_upload(w: World, _who: str, variant: str | None) -> Request:
    """A file uploaded into the attachment field of a fresh customer (a quick action)."""
    record_id = w.fresh_record(variant or "own")
    return Request(f"{PAGE}/records/{record_id}/upload/docs",
                   files={"file": ("合同.pdf", b"%PDF-1.4 test", "application/pdf")})


MANUAL_RULE = {"key": "greet", "name": "问候", "trigger": {"type": "manual", "form": "customer"},
               "actions": [{"type": "notify", "channel": "in_app", "to": {"owner": True},
                            "template": "您好 {{ record.name }}"}]}


def _page_message(w: World, _who: str, variant: str | None) -> Request:
    """A templated in-app message sent about a fresh customer (a manual rule)."""
    from sqlalchemy import select

    from engine_rules import service as rules
    from engine_rules.models import Rule

    with w.db.write() as s:
        if s.execute(select(Rule.id).where(Rule.app == "crm", Rule.key == "greet")).first() \
                is None:
            rules.save(s, app="crm", raw=MANUAL_RULE, actor=SYSTEM)
    record_id = w.fresh_record(variant or "own")
    return Request(f"{PAGE}/records/{record_id}/message",
                   data={"rule": "greet", "nonce": f"n{w.n()}"})


def _bundle_zip() -> bytes:
    """A small app bundle zip (one form), as ``GET /apps/{app}/bundle`` gives them."""
    from templates_catalog.bundle import Bundle
    from templates_catalog.service import bundle_zip

    return bundle_zip(Bundle(app={"key": "memo_app", "name": "备忘", "version": "1.0.0"},
                             forms={MEMO_SPEC["key"]: MEMO_SPEC}))


def _install_job(w: World, _who: str, _v: str | None) -> Request:
    """An install the server knows of (finished at once)."""
    from frontend.pages_apps import Jobs
    from platform_core.catalog import Installed

    state = w.client.app.state
    if getattr(state, "install_jobs", None) is None:
        state.install_jobs = Jobs()
    job = state.install_jobs.start("备忘", lambda _say: Installed("memo", None, "1.0.0"))
    return Request(f"/admin/apps/jobs/{job.id}")


def _my_view(w: World, who: str, _v: str | None) -> Request:
    """A saved list view of the caller's own (anonymous borrows staff's)."""
    from engine_forms.models import ListView

    with w.db.write() as s:
        view = ListView(app="crm", form="customer", name="我的视图", query="q=x",
                        owner_id=w.users[w.acting(who)])
        s.add(view)
        s.flush()
        view_id = view.id
    return Request(f"{PAGE}/views/{view_id}/delete")


def _upload(_w: World, _who: str, _v: str | None) -> Request:
    return Request(f"{CUSTOMER}/attachments", data={"field": "docs"},
                   files={"file": ("身份证.pdf", b"%PDF-1.4 id", "application/pdf")})


def _download(w: World, _who: str, variant: str | None) -> Request:
    return Request(f"{CUSTOMER}/attachments/{w.attachments[variant or 'own']}")


# pages (HTML forms; signed in by the bearer token, which needs no CSRF token)


def _page_login(w: World, who: str, _v: str | None) -> Request:
    """The sign-in form's POST with the login-CSRF cookie and field of a fresh form."""
    w.client.cookies.clear()
    token = w.client.get("/login").cookies[LOGIN_CSRF_COOKIE]
    return Request("/login", headers={"Cookie": f"{LOGIN_CSRF_COOKIE}={token}"},
                   data={"username": w.acting(who), "password": PASSWORD, "next": "/",
                         "csrf_token": token})


def _page_password(w: World, who: str, _v: str | None) -> Request:
    _, token = w.fresh_user_like(who)
    return Request("/password", token=token, data={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD,
        "confirm_password": NEW_PASSWORD, "next": "/"})


def _page_totp_confirm(w: World, who: str, v: str | None) -> Request:
    api = _totp_confirm(w, who, v)
    return Request("/me/security/totp/confirm", token=api.token, data=api.json)


def _page_token_revoke(w: World, who: str, v: str | None) -> Request:
    api = _my_token_revoke(w, who, v)
    return Request(f"/me/security/tokens/{api.url.rsplit('/', 1)[1]}/revoke")


def _page_user_save(w: World, _who: str, variant: str | None) -> Request:
    department = USERS[TARGETS[variant or "own"]][1]
    user_id, _ = w.fresh_user("staff", department)
    return Request(f"/admin/users/{user_id}", data={
        "display_name": "改名", "department_id": str(w.departments[department]),
        "status": "active", "roles": ["staff"]})


def _page_user(suffix: str = "", *, fresh: bool = False
               ) -> Callable[[World, str, str | None], Request]:
    api = _target_user(suffix, fresh=fresh)

    def build(w: World, who: str, variant: str | None) -> Request:
        return Request(api(w, who, variant).url.replace(f"{API}/users", "/admin/users"))
    return build


def _handover(page: bool, *, apply: bool = False
              ) -> Callable[[World, str, str | None], Request]:
    """A staff handover of the variant's user to viewer (Branch A): a dry run (API) or a
    preview (page); ``apply``: a fresh user of the variant's department with a customer,
    handed over for real."""
    def build(w: World, _who: str, variant: str | None) -> Request:
        source = w.users[TARGETS[variant or "own"]]
        if apply:
            source, token = w.fresh_user("staff", USERS[TARGETS[variant or "own"]][1])
            ok(w.client.post(f"{CUSTOMER}/records", json={"name": f"客户{w.n()}"},
                             headers={"Authorization": f"Bearer {token}"}), 201)
        if not page:
            return Request(f"{API}/users/{source}/handover",
                           json={"to": [w.users["viewer"]], "dry_run": True})
        return Request(f"/admin/users/{source}/handover" + ("" if apply else "/preview"),
                       data={"to": [str(w.users["viewer"])]})
    return build


WEBHOOKS = f"{CRM}/webhooks"
HOOK = {"name": "ERP", "url": "https://93.184.215.14/qiao-hook",
        "event_types": ["record.created"]}


def _fresh_webhook(suffix: str = "", **body: Any) -> Callable[[World, str, str | None],
                                                              Request]:
    def build(w: World, _who: str, _v: str | None) -> Request:
        hook = ok(w.client.post(WEBHOOKS, json=HOOK, headers=w.auth("admin")), 201)
        return Request(f"{WEBHOOKS}/{hook['id']}{suffix}", json=body or None)
    return build


def _replay_delivery(w: World, _who: str, _v: str | None) -> Request:
    hook = ok(w.client.post(WEBHOOKS, json=HOOK, headers=w.auth("admin")), 201)
    with w.db.write() as s:
        dead = WebhookDelivery(subscription_id=hook["id"], event_type="ping",
                               body={"type": "ping"}, status="dead", attempts=8)
        s.add(dead)
        s.flush()
        delivery_id = dead.id
    return Request(f"{WEBHOOKS}/{hook['id']}/deliveries/{delivery_id}/replay")


# the channels: an SMTP server on a closed local port (a test send is refused at once)
CHANNELS = {"smtp": {"host": "127.0.0.1", "port": 1, "password": "matrix-secret"}}


def _page_webhook(suffix: str = "") -> Callable[[World, str, str | None], Request]:
    """The admin page of a fresh webhook of crm (or one of its actions)."""
    def build(w: World, who: str, variant: str | None) -> Request:
        api = _fresh_webhook(suffix)(w, who, variant)
        return Request(api.url.replace(WEBHOOKS, "/admin/webhooks/crm"))
    return build


# rules: all behind app:manage (they show the app's automation); a fresh rule per case
RULES = f"{CRM}/rules"
RULE_SPEC = {"name": "新客户提醒", "trigger": {"type": "record.created", "form": "customer"},
             "actions": [{"type": "notify", "channel": "in_app", "to": {"owner": True},
                          "template": "新客户 {{ record.name }}"}]}


def _fresh_rule(suffix: str = "", **body: Any) -> Callable[[World, str, str | None], Request]:
    def build(w: World, _who: str, _v: str | None) -> Request:
        key = f"rule{w.n()}"
        ok(w.client.post(RULES, json={**RULE_SPEC, "key": key}, headers=w.auth("admin")),
           201)
        payload = {**RULE_SPEC, "key": key, **body} if suffix == "" and body else \
            (body or None)
        return Request(f"{RULES}/{key}{suffix}", json=payload)
    return build


def _page_rule(suffix: str = "", **data: Any) -> Callable[[World, str, str | None], Request]:
    """A rule page (``/apps/crm/rules/<key>…``) of a fresh rule; ``data``: a form body."""
    def build(w: World, who: str, variant: str | None) -> Request:
        api = _fresh_rule()(w, who, variant)
        return Request(api.url.replace(RULES, "/apps/crm/rules") + suffix, data=data or None)
    return build


def _replay_action(w: World, _who: str, _v: str | None) -> Request:
    from engine_rules.models import ActionRun, Rule

    key = f"rule{w.n()}"
    ok(w.client.post(RULES, json={**RULE_SPEC, "key": key}, headers=w.auth("admin")), 201)
    with w.db.write() as s:
        rule_id = s.query(Rule.id).filter(Rule.key == key).scalar()
        dead = ActionRun(key=f"matrix:{key}", rule_id=rule_id, app="crm",
                         action_type="call_webhook", status="dead", attempts=5,
                         request={"channel": "webhook", "url": "https://93.184.215.14/x"})
        s.add(dead)
        s.flush()
        return Request(f"{CRM}/rules-dead-letters/{dead.id}/replay")


def _my_notification(w: World, who: str, _v: str | None) -> Request:
    from engine_rules.models import Notification

    with w.db.write() as s:
        note = Notification(user_id=w.users[w.acting(who)], app="crm", title="通知",
                            body="matrix")
        s.add(note)
        s.flush()
        return Request(f"{API}/notifications/{note.id}/read")


# report and dashboard pages: a report over the customers (bar by city, a date range) and
# a dashboard of it, shared with everyone who may read crm (made once, by admin)
PAGE_REPORT = {"key": "page_cities", "name": "客户城市", "source": {"form": "customer"},
               "dimensions": [{"field": "city"}], "measures": [{"agg": "count"}],
               "parameters": [{"key": "period", "type": "date_range"}],
               "chart": {"type": "bar"}}
PAGE_BOARD = {"key": "page_board", "name": "客户看板", "widgets": [{"report": "page_cities"}],
              "parameters": [{"key": "period", "type": "date_range"}]}


def _ensure_page_report(w: World) -> None:
    for kind, spec in (("reports", PAGE_REPORT), ("dashboards", PAGE_BOARD)):
        url = f"{CRM}/{kind}"
        if w.client.get(f"{url}/{spec['key']}", headers=w.auth("admin")).status_code == 404:
            ok(w.client.post(url, json=spec, headers=w.auth("admin")), 201)


def _report_page(suffix: str = "", *, board: bool = False, api: bool = False, **params: Any
                 ) -> Callable[[World, str, str | None], Request]:
    def build(w: World, _who: str, _v: str | None) -> Request:
        _ensure_page_report(w)
        path = "/apps/crm/dashboards/page_board" if board else "/apps/crm/reports/page_cities"
        return Request(("/api/v1" if api else "") + path + suffix, params=params or None)
    return build


# the report builder checks and previews a working spec (nothing is saved)
BUILDER_SPEC = {"name": "草稿", "source": {"form": "customer"},
                "dimensions": [{"field": "city"}], "measures": [{"agg": "count"}]}


# the report API: reading runs the shared report; writes get a fresh report or dashboard
SEGMENTS = {"name": "分层", "source": {"form": "loan_case"}, "dimensions": [{"field": "id"}],
            "measures": [{"key": "n", "agg": "count"}],
            "segment": {"field": "channel", "rules": [{"value": "web", "when": "n >= 1"}]}}


def _fresh_report(kind: str = "reports", suffix: str = "", body: bool = False,
                  create: bool = True, spec: dict[str, Any] | None = None
                  ) -> Callable[[World, str, str | None], Request]:
    def build(w: World, _who: str, _v: str | None) -> Request:
        _ensure_page_report(w)
        key = f"{kind[:3]}{w.n()}"
        base = spec or (PAGE_REPORT if kind == "reports" else PAGE_BOARD)
        doc = {**base, "key": key}
        if create:
            ok(w.client.post(f"{CRM}/{kind}", json=doc, headers=w.auth("admin")), 201)
            return Request(f"{CRM}/{kind}/{key}{suffix}", json=doc if body else None)
        return Request(f"{CRM}/{kind}", json=doc)
    return build


def _fresh_page(kind: str, suffix: str, spec: dict[str, Any] | None = None,
                segments: bool = False, **data: Any
                ) -> Callable[[World, str, str | None], Request]:
    """A page about a fresh report or dashboard (made by admin through the API)."""
    def build(w: World, _who: str, _v: str | None) -> Request:
        _ensure_page_report(w)
        key = f"{kind[:3]}{w.n()}"
        base = spec or (PAGE_REPORT if kind == "reports" else PAGE_BOARD)
        ok(w.client.post(f"{CRM}/{kind}", json={**base, "key": key},
                         headers=w.auth("admin")), 201)
        path = f"/apps/crm/segments/{key}" if segments else f"/apps/crm/{kind}/{key}"
        return Request(path + suffix, data=data or None)
    return build


# flows: runs over a variant's record, tasks of the caller's (or of staff_b's). Anonymous
# and pending callers are refused by the guard before a flow route runs: their examples
# take the shared targets (staff's), which they cannot change.


def refused(who: str) -> bool:
    return who in (ANONYMOUS, PENDING)


def reaches(who: str, variant: str) -> bool:
    """Whether the variant's customer is in the read scope of ``who`` (a built-in role)."""
    scope = _form_entry(USERS[who][0], *TASK_FORM).get("scope")
    return scope is not None and in_row_scope(scope, who, TARGETS[variant])


def _start_run(w: World, who: str, variant: str | None) -> Request:
    """The caller starts review over a fresh customer of the variant's owner."""
    record_id = w.records["own"] if refused(who) else w.flow_record(variant or "own")
    return Request(f"{REVIEW}/instances", json={"record_id": record_id})


def _instance(w: World, _who: str, variant: str | None) -> Request:
    return Request(f"{REVIEW}/instances/{w.runs[variant or 'own']}")


def _bystander_run(w: World, variant: str) -> int:
    """A fresh run over a record of the variant's owner, started by them, with their tasks
    only: one the caller takes no part in (where the caller's row scope does not reach)."""
    return w.start(w.flow_record(variant), TARGETS[variant])["id"]


def _cancel(w: World, who: str, variant: str | None) -> Request:
    """Where the caller reaches the record and may update it (the cancel rule), a fresh
    run of their own (they are its initiator); elsewhere a bystander's run (a caller
    without the update right is refused by the rule before it matters)."""
    doer, variant = w.doer(who), variant or "own"
    if refused(who):
        run_id = w.runs[variant]
    elif reaches(doer, variant) and "update" in _form_entry(USERS[doer][0],
                                                            *TASK_FORM)["actions"]:
        run_id = w.start(w.flow_record(variant, doer), doer)["id"]
    else:
        run_id = _bystander_run(w, variant)
    return Request(f"{REVIEW}/instances/{run_id}/cancel", json={"reason": "不再需要"})


def _withdraw(w: World, who: str, variant: str | None) -> Request:
    """Where the caller reaches the record, a fresh run whose first step they have just
    completed (the owner started it); elsewhere a bystander's run."""
    doer, variant = w.doer(who), variant or "own"
    if refused(who):
        run_id = w.runs[variant]
    elif reaches(doer, variant):
        run = w.start(w.flow_record(variant, doer), TARGETS[variant])
        w.act(w.task_at(run), doer)
        run_id = run["id"]
    else:
        run_id = _bystander_run(w, variant)
    return Request(f"{REVIEW}/instances/{run_id}/withdraw")


def _task(suffix: str = "", *, flow: str = "review", at: str = "work", pool: bool = False,
          shared: bool = False, body: Callable[[World], Any] | None = None,
          page: bool = False, **data: Any) -> Callable[[World, str, str | None], Request]:
    """A task of the caller's ("own") or of staff_b's ("other"): a fresh one (see
    ``World.fresh_task``), or for ``shared`` routes (that change nothing) a standing one;
    a JSON ``body``, or for a ``page`` the form ``data``."""
    def build(w: World, who: str, variant: str | None) -> Request:
        holder = "staff_b" if variant == "other" else w.doer(who)
        if refused(who) or (shared and variant == "other"):
            task_id = w.tasks[variant or "own"]
        elif shared:
            task_id = w.standing_task(holder)
        else:
            task_id = w.fresh_task(holder, flow=flow, at=at, pool=pool)
        url = f"/tasks/{task_id}{suffix}" if page else f"{API}/tasks/{task_id}{suffix}"
        return Request(url, json=body(w) if body else None, data=data or None)
    return build


def _to_staff_a1(w: World) -> dict[str, int]:
    return {"to": w.users["staff_a1"]}


def _import_upload(w: World) -> Path:
    """A small customer CSV saved as the import page saves an upload."""
    from engine_forms.imports import service as imports

    text = f"name,city\n导入{w.n()},北京\n导入{w.n()},上海\n".encode()
    return imports.upload(Path(w.client.app.state.qiao.settings.data_dir), "客户.csv",
                          io.BytesIO(text))


def _upload_query(w: World) -> dict[str, str]:
    """The import page's map step names an upload by its path under ``imports/``."""
    return {"file": _import_upload(w).name, "name": "客户.csv"}


def _api_import(suffix: str = "", **kwargs: Any
                ) -> Callable[[World, str, str | None], Request]:
    """The same batch as ``_import_batch``, addressed through the imports API."""
    page = _import_batch(suffix, **kwargs)

    def build(w: World, who: str, v: str | None) -> Request:
        return Request(page(w, who, v).url.replace(PAGE, CUSTOMER, 1))
    return build


def _api_import_file(suffix: str = "", **data: Any
                     ) -> Callable[[World, str, str | None], Request]:
    def build(w: World, _who: str, _v: str | None) -> Request:
        return Request(f"{CUSTOMER}/imports{suffix}", data=data or None, files={
            "file": ("客户.csv", f"name,city\n导入{w.n()},北京\n".encode(), "text/csv")})
    return build


def _import_batch(suffix: str = "", *, state: str = "done", dry_run: bool = True,
                  **data: Any) -> Callable[[World, str, str | None], Request]:
    """A page about an import batch of the customer form, started by the caller when they
    may import (cancel and revert are the starter's or an administrator's), else by admin;
    run to the end, or still ``queued``."""
    def build(w: World, who: str, _v: str | None) -> Request:
        from engine_forms.forms import published
        from engine_forms.imports import mapping, runner
        from engine_forms.imports import service as imports
        from engine_forms.service import Caller
        from platform_core.security.principal import load_principal

        starter = who if who in ("admin", "manager") else "admin"
        keyring = w.client.app.state.qiao.keyring
        with w.db.write() as s:
            user = s.get(User, w.users[starter])
            principal = load_principal(s, user, via="test")
            caller = Caller(principal, principal.access("crm", "customer"), keyring)
            pub = published(s, "crm", "customer")
            batch = imports.start(s, caller, pub, path=_import_upload(w), filename="客户.csv",
                                  mapping=mapping.suggest(pub, ["name", "city"]),
                                  options=imports.ImportOptions(), dry_run=dry_run)
            batch_id = batch.id
        if state == "done":
            runner.claim(w.db, "matrix", batch_id=batch_id)
            runner.run(w.db, batch_id, "matrix", keyring=keyring)
        return Request(f"{PAGE}/imports/{batch_id}{suffix}", data=data or None)
    return build


EXAMPLES: dict[tuple[str, str], Callable[..., Request]] = {
    # system and pages
    ("GET", "/healthz"): _fixed("/healthz"),
    ("GET", "/metrics"): _fixed("/metrics"),
    ("GET", "/favicon.ico"): _fixed("/favicon.ico"),
    ("GET", "/openapi.json"): _fixed("/openapi.json"),
    ("GET", "/docs"): _fixed("/docs"),
    ("GET", "/api/v1/apps/{app}/openapi.json"): _fixed(f"{CRM}/openapi.json"),
    ("GET", "/"): _fixed("/"),
    # sign-in and one's own account
    ("POST", "/api/v1/auth/token"): _token_exchange,
    ("POST", "/api/v1/auth/logout"): _logout,
    ("GET", "/api/v1/me"): _fixed(f"{API}/me"),
    ("POST", "/api/v1/me/password"): _password,
    ("POST", "/api/v1/me/totp"): _fixed(f"{API}/me/totp"),
    ("POST", "/api/v1/me/totp/confirm"): _totp_confirm,
    ("POST", "/api/v1/me/totp/disable"): _fixed(f"{API}/me/totp/disable",
                                                json={"password": PASSWORD}),
    ("GET", "/api/v1/me/tokens"): _fixed(f"{API}/me/tokens"),
    ("POST", "/api/v1/me/tokens"): _fixed(f"{API}/me/tokens", json={"name": "integration"}),
    ("DELETE", "/api/v1/me/tokens/{token_id}"): _my_token_revoke,
    # users
    ("GET", "/api/v1/users"): _fixed(f"{API}/users"),
    ("POST", "/api/v1/users"): _new_user,
    ("GET", "/api/v1/users/{user_id}"): _target_user(),
    ("PATCH", "/api/v1/users/{user_id}"): _target_user(fresh=True, display_name="改名"),
    ("POST", "/api/v1/users/{user_id}/unlock"): _target_user("/unlock"),
    ("POST", "/api/v1/users/{user_id}/reset-password"): _target_user("/reset-password",
                                                                      fresh=True),
    ("POST", "/api/v1/users/{user_id}/handover"): _handover(page=False),
    # departments
    ("GET", "/api/v1/departments"): _fixed(f"{API}/departments"),
    ("POST", "/api/v1/departments"): lambda w, _who, _v: Request(
        f"{API}/departments", json={"name": f"Dept {w.n()}",
                                    "parent_id": w.departments["HQ"]}),
    ("PATCH", "/api/v1/departments/{department_id}"): _fresh_department(name="改名"),
    ("DELETE", "/api/v1/departments/{department_id}"): _fresh_department(),
    # roles
    ("GET", "/api/v1/roles"): _fixed(f"{API}/roles"),
    ("GET", "/api/v1/roles/meta-schema"): _fixed(f"{API}/roles/meta-schema"),
    ("POST", "/api/v1/roles"): lambda w, _who, _v: Request(
        f"{API}/roles", json={"key": f"role{w.n()}", "name": "角色", "permissions": ROLE_PERMS}),
    ("GET", "/api/v1/roles/{key}"): _fixed(f"{API}/roles/staff"),
    ("PUT", "/api/v1/roles/{key}"): _fresh_role(name="改名", permissions=ROLE_PERMS),
    ("DELETE", "/api/v1/roles/{key}"): _fresh_role(),
    # every user's tokens, lock-outs, the audit log
    ("GET", "/api/v1/tokens"): _fixed(f"{API}/tokens"),
    ("DELETE", "/api/v1/tokens/{token_id}"): _admin_token_revoke,
    ("POST", "/api/v1/tokens"): lambda w, _who, _v: Request(f"{API}/tokens", json={
        "name": "集成", "user_id": w.users["staff_b"], "scopes": {"apps": ["crm"]}}),
    ("GET", "/api/v1/auth/lockouts"): _fixed(f"{API}/auth/lockouts"),
    ("POST", "/api/v1/auth/lockouts/unlock"): _fixed(f"{API}/auth/lockouts/unlock",
                                                     json={"client": "203.0.113.9"}),
    ("GET", "/api/v1/audit"): _fixed(f"{API}/audit", params={"action": "record."}),
    # apps and forms
    ("GET", "/api/v1/apps"): _fixed(f"{API}/apps"),
    ("POST", "/api/v1/apps"): lambda w, _who, _v: Request(
        f"{API}/apps", json={"key": f"app{w.n()}", "name": "应用"}),
    ("GET", "/api/v1/apps/{app}"): _fixed(CRM),
    ("PUT", "/api/v1/apps/{app}/menus"): _fixed(f"{CRM}/menus", json=MENUS),
    ("GET", "/api/v1/apps/{app}/forms"): _fixed(f"{CRM}/forms"),
    ("POST", "/api/v1/apps/{app}/forms"): lambda w, _who, _v: Request(
        f"{CRM}/forms", json={**MEMO_SPEC, "key": f"form{w.n()}"}),
    ("GET", "/api/v1/apps/{app}/forms/{form}"): _fixed(CUSTOMER),
    ("PUT", "/api/v1/apps/{app}/forms/{form}"): _fixed(MEMO, json=MEMO_SPEC),
    ("POST", "/api/v1/apps/{app}/forms/{form}/check"): _fixed(f"{MEMO}/check", json=MEMO_SPEC),
    ("POST", "/api/v1/apps/{app}/forms/{form}/publish"): _fixed(f"{MEMO}/publish"),
    ("GET", "/api/v1/apps/{app}/forms/{form}/versions"): _fixed(f"{MEMO}/versions"),
    ("GET", "/api/v1/apps/{app}/forms/{form}/migrations/{job_id}"): lambda w, _who, _v: Request(
        f"{MEMO}/migrations/{w.migration_id}"),
    # records
    ("GET", "/api/v1/apps/{app}/forms/{form}/records"): _fixed(f"{CUSTOMER}/records"),
    ("GET", "/api/v1/apps/{app}/forms/{form}/records/count"): _fixed(
        f"{CUSTOMER}/records/count"),
    ("POST", "/api/v1/apps/{app}/forms/{form}/records"): _fixed(f"{CUSTOMER}/records",
                                                               json={"name": "新客户"}),
    ("POST", "/api/v1/apps/{app}/forms/{form}/records/bulk"): lambda w, _who, _v: Request(
        f"{CUSTOMER}/records/bulk", json={"records": [{"name": f"批量{w.n()}"}]}),
    ("PUT", "/api/v1/apps/{app}/forms/{form}/records/by/{field}/{value}"):
        lambda w, _who, _v: Request(f"{CUSTOMER}/records/by/mobile/139{w.n():08d}",
                                    json={"name": "按手机号"}),
    ("GET", "/api/v1/apps/{app}/forms/{form}/records/{record_id}"): _record(),
    ("PATCH", "/api/v1/apps/{app}/forms/{form}/records/{record_id}"): _patch_record,
    ("DELETE", "/api/v1/apps/{app}/forms/{form}/records/{record_id}"): _delete_record,
    ("POST", "/api/v1/apps/{app}/forms/{form}/records/{record_id}/restore"): _restore_record,
    ("GET", "/api/v1/apps/{app}/forms/{form}/records/{record_id}/history"): _record("/history"),
    ("GET", "/api/v1/apps/{app}/forms/{form}/records/{record_id}/timeline"): _record(
        "/timeline"),
    ("GET", "/api/v1/apps/{app}/forms/{form}/export"): _fixed(f"{CUSTOMER}/export",
                                                             params={"format": "csv"}),
    ("POST", "/api/v1/apps/{app}/forms/{form}/import"): lambda w, _who, _v: Request(
        f"{CUSTOMER}/import", files={"file": ("客户.csv", f"name,city\n导入{w.n()},北京\n"
                                              .encode(), "text/csv")}),
    ("POST", "/api/v1/apps/{app}/forms/{form}/imports"): _api_import_file(dry_run="true"),
    ("POST", "/api/v1/apps/{app}/forms/{form}/imports/inspect"): _api_import_file("/inspect"),
    ("GET", "/api/v1/apps/{app}/forms/{form}/imports"): _fixed(f"{CUSTOMER}/imports"),
    ("GET", "/api/v1/apps/{app}/forms/{form}/imports/{batch_id}"): _api_import(),
    ("GET", "/api/v1/apps/{app}/forms/{form}/imports/{batch_id}/problems"): _api_import(
        "/problems"),
    ("GET", "/api/v1/apps/{app}/forms/{form}/imports/{batch_id}/problems.xlsx"): _api_import(
        "/problems.xlsx"),
    ("POST", "/api/v1/apps/{app}/forms/{form}/imports/{batch_id}/cancel"): _api_import(
        "/cancel", state="queued"),
    ("POST", "/api/v1/apps/{app}/forms/{form}/imports/{batch_id}/revert"): _api_import(
        "/revert", dry_run=False),
    ("GET", "/api/v1/apps/{app}/forms/{form}/import-mappings"): _fixed(
        f"{CUSTOMER}/import-mappings"),
    ("PUT", "/api/v1/apps/{app}/forms/{form}/import-mappings/{name}"): lambda w, _who, _v:
        Request(f"{CUSTOMER}/import-mappings/m{w.n()}", json={"columns": [
            {"column": 0, "header": "name", "field": "name"}]}),
    ("POST", "/api/v1/apps/{app}/forms/{form}/records/{record_id}/unmask"): _record(
        "/unmask", field="mobile"),
    ("POST", "/api/v1/apps/{app}/forms/{form}/attachments"): _upload,
    ("GET", "/api/v1/apps/{app}/forms/{form}/attachments/{attachment_id}"): _download,
    # webhooks
    ("GET", "/api/v1/apps/{app}/webhooks"): _fixed(WEBHOOKS),
    ("POST", "/api/v1/apps/{app}/webhooks"): _fixed(WEBHOOKS, json=HOOK),
    ("GET", "/api/v1/apps/{app}/webhooks/{webhook_id}"): _fresh_webhook(),
    ("PATCH", "/api/v1/apps/{app}/webhooks/{webhook_id}"): _fresh_webhook(name="改名"),
    ("DELETE", "/api/v1/apps/{app}/webhooks/{webhook_id}"): _fresh_webhook(),
    ("GET", "/api/v1/apps/{app}/webhooks/{webhook_id}/deliveries"): _fresh_webhook(
        "/deliveries"),
    ("POST", "/api/v1/apps/{app}/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"):
        _replay_delivery,
    ("POST", "/api/v1/apps/{app}/webhooks/{webhook_id}/test"): _fresh_webhook("/test"),
    # notification channels (a test to a closed local port fails at once: 200, ok false)
    ("GET", "/api/v1/channels"): _fixed(f"{API}/channels"),
    ("PUT", "/api/v1/channels"): _fixed(f"{API}/channels", json=CHANNELS),
    ("POST", "/api/v1/channels/{channel}/test"): _fixed(f"{API}/channels/smtp/test",
                                                       json={"to": "ops@bank.example"}),
    # flows: definitions
    ("GET", "/api/v1/flows/meta-schema"): _fixed(f"{API}/flows/meta-schema"),
    ("GET", "/api/v1/apps/{app}/flows"): _fixed(FLOWS),
    ("POST", "/api/v1/apps/{app}/flows"): lambda w, _who, _v: Request(
        FLOWS, json={**NOTES_SPEC, "key": f"flow{w.n()}"}),
    ("GET", "/api/v1/apps/{app}/flows/{flow}"): _fixed(REVIEW),
    ("PUT", "/api/v1/apps/{app}/flows/{flow}"): _fixed(f"{FLOWS}/notes", json=NOTES_SPEC),
    ("POST", "/api/v1/apps/{app}/flows/{flow}/validate"): _fixed(f"{FLOWS}/notes/validate"),
    ("POST", "/api/v1/apps/{app}/flows/{flow}/publish"): _fixed(f"{FLOWS}/notes/publish"),
    ("POST", "/api/v1/apps/{app}/flows/{flow}/publish-preview"): _fixed(
        f"{FLOWS}/notes/publish-preview"),
    ("GET", "/api/v1/apps/{app}/flows/{flow}/overlay"): _fixed(f"{REVIEW}/overlay"),
    ("GET", "/api/v1/apps/{app}/flows/{flow}/versions"): _fixed(f"{REVIEW}/versions"),
    ("GET", "/api/v1/apps/{app}/flows/{flow}/versions/{version}"): _fixed(
        f"{REVIEW}/versions/1"),
    ("POST", "/api/v1/apps/{app}/flows/{flow}/migrations"): _fixed(
        f"{REVIEW}/migrations", json={"dry_run": True}),
    # flows: instances and record progress
    ("POST", "/api/v1/apps/{app}/flows/{flow}/instances"): _start_run,
    ("GET", "/api/v1/apps/{app}/flows/{flow}/instances"): _fixed(f"{REVIEW}/instances"),
    ("GET", "/api/v1/apps/{app}/flows/{flow}/instances/{run_id}"): _instance,
    ("POST", "/api/v1/apps/{app}/flows/{flow}/instances/{run_id}/cancel"): _cancel,
    ("POST", "/api/v1/apps/{app}/flows/{flow}/instances/{run_id}/withdraw"): _withdraw,
    ("GET", "/api/v1/apps/{app}/forms/{form}/records/{record_id}/progress"): _record(
        "/progress"),
    ("GET", "/api/v1/apps/{app}/forms/{form}/records/{record_id}/progress-links"): _record(
        "/progress-links"),
    ("POST", "/api/v1/apps/{app}/forms/{form}/records/{record_id}/progress-links"): _record(
        "/progress-links", days=7),
    ("POST", "/api/v1/apps/{app}/forms/{form}/records/{record_id}/progress-links/{link_id}"
             "/revoke"): _revoke_link(CUSTOMER),
    # the customer's progress page (public): a live link's
    ("GET", "/p/{token}"): lambda w, _who, _v: Request(f"/p/{_progress_link(w, 'own')[1]}"),
    # flows: tasks
    ("GET", "/api/v1/tasks"): _fixed(f"{API}/tasks", params={"status": "all"}),
    ("GET", "/api/v1/tasks/{task_id}"): _task(shared=True),
    ("POST", "/api/v1/tasks/{task_id}/complete"): _task("/complete", body=lambda _w: {}),
    ("POST", "/api/v1/tasks/{task_id}/approve"): _task("/approve", flow="sign"),
    ("POST", "/api/v1/tasks/{task_id}/reject"): _task("/reject", flow="sign"),
    ("POST", "/api/v1/tasks/{task_id}/return"): _task("/return", at="check"),
    ("POST", "/api/v1/tasks/{task_id}/transfer"): _task("/transfer", body=_to_staff_a1),
    ("POST", "/api/v1/tasks/{task_id}/delegate"): _task("/delegate", body=_to_staff_a1),
    ("POST", "/api/v1/tasks/{task_id}/claim"): _task("/claim", pool=True),
    ("POST", "/api/v1/tasks/{task_id}/add-signer"): _task(
        "/add-signer", flow="sign", body=lambda w: {"user": w.users["staff_a1"]}),
    ("POST", "/api/v1/tasks/{task_id}/reassign"): _task("/reassign", body=_to_staff_a1),
    # the working-day calendar
    ("GET", "/api/v1/calendar/days"): _fixed(f"{API}/calendar/days", params={"year": 2099}),
    ("PUT", "/api/v1/calendar/days"): _fixed(f"{API}/calendar/days", params={"year": 2099},
                                             json={"days": [{"day": "2099-10-01",
                                                             "name": "国庆节"}]}),
    # rules and notifications
    ("GET", "/api/v1/rules/meta-schema"): _fixed(f"{API}/rules/meta-schema"),
    ("GET", "/api/v1/apps/{app}/rules"): _fixed(RULES),
    ("POST", "/api/v1/apps/{app}/rules"): lambda w, _who, _v: Request(
        RULES, json={**RULE_SPEC, "key": f"rule{w.n()}"}),
    ("GET", "/api/v1/apps/{app}/rules/{key}"): _fresh_rule(),
    ("PUT", "/api/v1/apps/{app}/rules/{key}"): _fresh_rule(name="改名"),
    ("DELETE", "/api/v1/apps/{app}/rules/{key}"): _fresh_rule(),
    ("POST", "/api/v1/apps/{app}/rules/{key}/enable"): _fresh_rule("/enable"),
    ("POST", "/api/v1/apps/{app}/rules/{key}/disable"): _fresh_rule("/disable"),
    ("POST", "/api/v1/apps/{app}/rules/{key}/test"): lambda w, who, v: Request(
        _fresh_rule("/test")(w, who, v).url, json={"record_id": w.records["own"]}),
    ("GET", "/api/v1/apps/{app}/rules/{key}/runs"): _fresh_rule("/runs"),
    ("GET", "/api/v1/apps/{app}/rules-dead-letters"): _fixed(f"{CRM}/rules-dead-letters"),
    ("POST", "/api/v1/apps/{app}/rules-dead-letters/{action_run_id}/replay"): _replay_action,
    ("GET", "/api/v1/rules/actions"): _fixed(f"{API}/rules/actions"),
    ("POST", "/api/v1/apps/{app}/rules-check"): _fixed(
        f"{RULES}-check", json={"spec": {**RULE_SPEC, "key": "checked"}}),
    ("POST", "/api/v1/apps/{app}/rules-test"): lambda w, _who, _v: Request(
        f"{RULES}-test", json={"spec": {**RULE_SPEC, "key": "tried"},
                               "record_id": w.records["own"]}),
    ("GET", "/api/v1/apps/{app}/rules-runs"): _fixed(f"{RULES}-runs",
                                                      params={"status": "failed"}),
    ("GET", "/api/v1/notifications"): _fixed(f"{API}/notifications"),
    ("POST", "/api/v1/notifications/{notification_id}/read"): _my_notification,
    ("POST", "/api/v1/notifications/read-all"): _fixed(f"{API}/notifications/read-all"),
    ("GET", "/notifications"): _fixed("/notifications"),
    ("GET", "/search"): _fixed("/search", params={"q": "张"}),
    ("GET", "/search/results"): _fixed("/search/results", params={"q": "张"}),
    ("GET", "/api/v1/search"): _fixed(f"{API}/search", params={"q": "张"}),
    ("POST", "/notifications/{notification_id}/read"): lambda w, who, v: Request(
        _my_notification(w, who, v).url.removeprefix(API)),
    ("POST", "/notifications/read-all"): _fixed("/notifications/read-all"),
    # pages
    ("GET", "/login"): _fixed("/login", params={"next": "/"}),
    ("POST", "/login"): _page_login,
    ("POST", "/logout"): _fixed("/logout"),
    ("GET", "/password"): _fixed("/password"),
    ("POST", "/password"): _page_password,
    ("GET", "/me/security"): _fixed("/me/security"),
    ("POST", "/me/security/totp"): _fixed("/me/security/totp"),
    ("POST", "/me/security/totp/confirm"): _page_totp_confirm,
    ("POST", "/me/security/totp/disable"): _fixed("/me/security/totp/disable",
                                                  data={"password": PASSWORD}),
    ("POST", "/me/security/tokens"): _fixed("/me/security/tokens",
                                            data={"name": "integration"}),
    ("POST", "/me/security/tokens/{token_id}/revoke"): _page_token_revoke,
    ("POST", "/me/security/locale"): _fixed("/me/security/locale", data={"locale": "en"}),
    ("GET", "/admin/users"): _fixed("/admin/users"),
    ("POST", "/admin/users"): lambda w, _who, _v: Request("/admin/users", data={
        "username": f"new{w.n()}", "display_name": "新用户", "roles": ["staff"],
        "department_id": str(w.departments["Branch A"])}),
    ("GET", "/admin/users/{user_id}"): _page_user(),
    ("POST", "/admin/users/{user_id}"): _page_user_save,
    ("POST", "/admin/users/{user_id}/unlock"): _page_user("/unlock"),
    ("POST", "/admin/users/{user_id}/reset-password"): _page_user("/reset-password",
                                                                   fresh=True),
    ("GET", "/admin/users/{user_id}/handover"): _page_user("/handover"),
    ("POST", "/admin/users/{user_id}/handover/preview"): _handover(page=True),
    ("POST", "/admin/users/{user_id}/handover"): _handover(page=True, apply=True),
    ("GET", "/admin/roles"): _fixed("/admin/roles"),
    ("POST", "/admin/roles"): lambda w, _who, _v: Request("/admin/roles", data={
        "key": f"role{w.n()}", "name": "角色"}),
    ("GET", "/admin/roles/{key}"): _fixed("/admin/roles/staff"),
    ("POST", "/admin/roles/{key}/view-as"): _fixed("/admin/roles/staff/view-as"),
    ("POST", "/view-as/stop"): _fixed("/view-as/stop"),
    ("POST", "/admin/roles/{key}"): lambda w, _who, _v: Request(
        f"/admin/roles/{w.fresh_role()}", data={
            "name": "改名", "row": "crm.*", "scope:crm.*": "own", "act:crm.*": "read"}),
    ("GET", "/admin/departments"): _fixed("/admin/departments"),
    ("POST", "/admin/departments"): lambda w, _who, _v: Request("/admin/departments", data={
        "name": f"Dept {w.n()}", "parent_id": str(w.departments["HQ"])}),
    ("POST", "/admin/departments/{department_id}"): lambda w, _who, _v: Request(
        f"/admin/departments/{w.fresh_department()}", data={"name": "改名"}),
    ("GET", "/admin/audit"): _fixed("/admin/audit", params={"action": "record."}),
    # the integration pages: channels, webhooks, every API token
    ("GET", "/admin/channels"): _fixed("/admin/channels"),
    ("POST", "/admin/channels/{channel}"): _fixed("/admin/channels/smtp", data={
        "host": "127.0.0.1", "port": "1", "password": "matrix-secret"}),
    ("POST", "/admin/channels/{channel}/reset"): _fixed("/admin/channels/sms/reset"),
    ("POST", "/admin/channels/{channel}/test"): _fixed("/admin/channels/wecom/test"),
    ("GET", "/admin/webhooks"): _fixed("/admin/webhooks", params={"app": "crm"}),
    ("POST", "/admin/webhooks/{app}"): _fixed("/admin/webhooks/crm", data={
        "name": "ERP", "url": HOOK["url"], "event_types": ["record.created"]}),
    ("GET", "/admin/webhooks/{app}/{webhook_id}"): _page_webhook(),
    ("POST", "/admin/webhooks/{app}/{webhook_id}/test"): _page_webhook("/test"),
    ("POST", "/admin/webhooks/{app}/{webhook_id}/delete"): _page_webhook("/delete"),
    ("POST", "/admin/webhooks/{app}/{webhook_id}/deliveries/{delivery_id}/replay"):
        lambda w, who, v: Request(_replay_delivery(w, who, v).url.replace(
            WEBHOOKS, "/admin/webhooks/crm")),
    ("GET", "/admin/tokens"): _fixed("/admin/tokens"),
    ("POST", "/admin/tokens"): _fixed("/admin/tokens", data={"name": "集成", "limit": "crm"}),
    ("POST", "/admin/tokens/{token_id}/revoke"): lambda w, who, v: Request(
        _admin_token_revoke(w, who, v).url.replace(API, "/admin") + "/revoke"),
    # the task inbox pages
    ("GET", "/tasks"): _fixed("/tasks", params={"status": "done"}),
    ("GET", "/tasks/{task_id}"): _task(shared=True, page=True),
    ("POST", "/tasks/{task_id}"): _task(page=True, action="outcome:submit", comment="好"),
    # report and dashboard pages, and plotly.js from the plotly package
    ("GET", "/static/plotly.min.js"): _fixed("/static/plotly.min.js"),
    ("GET", "/static/plotly.css"): _fixed("/static/plotly.css"),
    ("GET", "/apps/{app}/reports"): _fixed("/apps/crm/reports"),
    ("GET", "/apps/{app}/reports/new"): _fixed("/apps/crm/reports/new"),
    ("GET", "/apps/{app}/reports/{report}/edit"): _report_page("/edit"),
    ("POST", "/apps/{app}/reports/builder/check"): _fixed(
        "/apps/crm/reports/builder/check", json={"spec": BUILDER_SPEC}),
    ("POST", "/apps/{app}/reports/builder/preview"): _fixed(
        "/apps/crm/reports/builder/preview", json={"spec": BUILDER_SPEC}),
    ("GET", "/apps/{app}/reports/{report}"): _report_page(**{
        "p.period.from": "2020-01-01", "p.period.to": "2099-12-31"}),
    ("GET", "/apps/{app}/reports/{report}/drill"): _report_page("/drill", keys='["北京"]'),
    ("GET", "/apps/{app}/dashboards"): _fixed("/apps/crm/dashboards"),
    ("GET", "/apps/{app}/dashboards/new"): _fixed("/apps/crm/dashboards/new"),
    ("GET", "/apps/{app}/dashboards/{dashboard}/edit"): _report_page("/edit", board=True),
    ("GET", "/apps/{app}/dashboards/{dashboard}/widgets/{index}"): _report_page(
        "/widgets/0", board=True),
    ("GET", "/apps/{app}/reports/{report}/versions"): _fresh_page("reports", "/versions"),
    ("POST", "/apps/{app}/reports/{report}/versions/{version}/restore"): _fresh_page(
        "reports", "/versions/1/restore", go="1"),
    ("GET", "/apps/{app}/dashboards/{dashboard}/versions"): _fresh_page("dashboards",
                                                                        "/versions"),
    ("POST", "/apps/{app}/dashboards/{dashboard}/versions/{version}/restore"): _fresh_page(
        "dashboards", "/versions/1/restore", go="1"),
    ("GET", "/apps/{app}/segments"): _fixed("/apps/crm/segments"),
    ("POST", "/apps/{app}/segments/{report}/run"): _fresh_page(
        "reports", "/run", spec=SEGMENTS, segments=True, go="1"),
    ("GET", "/apps/{app}/reports/{report}/export.pdf"): _report_page("/export.pdf"),
    ("GET", "/apps/{app}/dashboards/{dashboard}/export.xlsx"): _report_page(
        "/export.xlsx", board=True),
    ("GET", "/apps/{app}/dashboards/{dashboard}/export.pdf"): _report_page(
        "/export.pdf", board=True),
    ("GET", "/api/v1/reports/meta-schema"): _fixed(f"{API}/reports/meta-schema"),
    ("GET", "/api/v1/dashboards/meta-schema"): _fixed(f"{API}/dashboards/meta-schema"),
    ("GET", "/api/v1/apps/{app}/reports"): _fixed(f"{CRM}/reports"),
    ("POST", "/api/v1/apps/{app}/reports"): _fresh_report(create=False),
    ("GET", "/api/v1/apps/{app}/reports/{report}"): _fresh_report(),
    ("PUT", "/api/v1/apps/{app}/reports/{report}"): _fresh_report(body=True),
    ("DELETE", "/api/v1/apps/{app}/reports/{report}"): _fresh_report(),
    ("GET", "/api/v1/apps/{app}/reports/{report}/versions"): _fresh_report(suffix="/versions"),
    ("GET", "/api/v1/apps/{app}/reports/{report}/data"): _report_page("/data", api=True),
    ("GET", "/api/v1/apps/{app}/reports/{report}/drill"): _report_page(
        "/drill", api=True, keys='["北京"]'),
    ("GET", "/api/v1/apps/{app}/reports/{report}/export"): _report_page(
        "/export", api=True, format="csv"),
    ("POST", "/api/v1/apps/{app}/reports/{report}/segments/run"): _fresh_report(
        suffix="/segments/run", spec=SEGMENTS),
    ("GET", "/api/v1/apps/{app}/dashboards"): _fixed(f"{CRM}/dashboards"),
    ("POST", "/api/v1/apps/{app}/dashboards"): _fresh_report("dashboards", create=False),
    ("GET", "/api/v1/apps/{app}/dashboards/{dashboard}"): _fresh_report("dashboards"),
    ("PUT", "/api/v1/apps/{app}/dashboards/{dashboard}"): _fresh_report("dashboards",
                                                                        body=True),
    ("DELETE", "/api/v1/apps/{app}/dashboards/{dashboard}"): _fresh_report("dashboards"),
    ("GET", "/api/v1/apps/{app}/dashboards/{dashboard}/data"): _report_page(
        "/data", board=True, api=True),
    ("GET", "/apps/{app}/dashboards/{dashboard}"): _report_page(board=True, **{
        "p.period.from": "2020-01-01", "p.period.to": "2099-12-31"}),
    # the workspace: lists, record pages, views, bulk actions, import, pickers
    ("GET", "/apps/{app}/forms/{form}"): _fixed(PAGE, params={"q": "客户"}),
    ("GET", "/apps/{app}/forms/{form}/rows"): _fixed(f"{PAGE}/rows"),
    ("GET", "/apps/{app}/forms/{form}/count"): _fixed(f"{PAGE}/count"),
    ("GET", "/apps/{app}/forms/{form}/condition"): _fixed(f"{PAGE}/condition",
                                                        params={"i": "1"}),
    ("POST", "/apps/{app}/forms/{form}/views"): _fixed(f"{PAGE}/views", data={
        "name": "北京客户", "query": "c0.f=city&c0.o=eq&c0.v=北京"}),
    ("POST", "/apps/{app}/forms/{form}/views/{view_id}/delete"): _my_view,
    ("POST", "/apps/{app}/forms/{form}/bulk"): _fixed(f"{PAGE}/bulk",
                                                    data={"action": "delete"}),
    ("GET", "/apps/{app}/forms/{form}/new"): _fixed(f"{PAGE}/new"),
    ("POST", "/apps/{app}/forms/{form}/new"): _fixed(f"{PAGE}/new", data={"f:name": "新客户"}),
    ("POST", "/apps/{app}/forms/{form}/check"): _fixed(f"{PAGE}/check",
                                                     data={"f:name": "新客户"}),
    ("GET", "/apps/{app}/forms/{form}/quick"): _fixed(f"{PAGE}/quick"),
    ("POST", "/apps/{app}/forms/{form}/quick"): _fixed(f"{PAGE}/quick",
                                                     data={"f:name": "新客户"}),
    ("GET", "/apps/{app}/forms/{form}/owners"): _fixed(
        "/apps/crm/forms/customer/owners", params={"q": "王"}),
    ("GET", "/apps/{app}/forms/{form}/options/{field}"): _fixed(
        "/apps/crm/forms/loan_case/options/customer", params={"q": "客户"}),
    ("GET", "/apps/{app}/forms/{form}/records/{record_id}"): _page_record(),
    ("GET", "/apps/{app}/forms/{form}/records/{record_id}/timeline"): _page_record(
        "/timeline"),
    ("GET", "/apps/{app}/forms/{form}/records/{record_id}/progress-links"): _page_record(
        "/progress-links"),
    ("POST", "/apps/{app}/forms/{form}/records/{record_id}/progress-links"): _page_fresh(
        "/progress-links", days="30"),
    ("POST", "/apps/{app}/forms/{form}/records/{record_id}/progress-links/{link_id}/revoke"):
        _revoke_link(PAGE),
    ("GET", "/apps/{app}/forms/{form}/records/{record_id}/edit"): _page_record("/edit"),
    ("GET", "/apps/{app}/forms/{form}/records/{record_id}/stands"): _page_record("/stands"),
    ("POST", "/apps/{app}/forms/{form}/records/{record_id}/upload/{field}"): _page_upload,
    ("GET", "/apps/{app}/forms/{form}/records/{record_id}/message"): _page_record(
        "/message"),
    ("POST", "/apps/{app}/forms/{form}/records/{record_id}/message"): _page_message,
    ("POST", "/apps/{app}/forms/{form}/records/{record_id}/stands/start"): _page_fresh(
        "/stands/start", flow="review"),
    ("POST", "/apps/{app}/forms/{form}/records/{record_id}/stands/{task_id}"): _stands_task,
    ("POST", "/apps/{app}/forms/{form}/records/{record_id}/edit"): _page_fresh(
        "/edit", row_version="1", **{"f:city": "上海"}),
    ("POST", "/apps/{app}/forms/{form}/records/{record_id}/delete"): _page_fresh("/delete"),
    ("GET", "/apps/{app}/forms/{form}/import"): _fixed(f"{PAGE}/import"),
    ("POST", "/apps/{app}/forms/{form}/import"): lambda w, _who, _v: Request(
        f"{PAGE}/import", data={"mode": "check"}, files={
            "file": ("客户.csv", f"name,city\n导入{w.n()},北京\n".encode(), "text/csv")}),
    ("GET", "/apps/{app}/forms/{form}/import/map"): lambda w, _who, _v: Request(
        f"{PAGE}/import/map", params=_upload_query(w)),
    ("POST", "/apps/{app}/forms/{form}/import/map"): lambda w, _who, _v: Request(
        f"{PAGE}/import/map", data=_upload_query(w) | {
            "action": "check", "col-0": "name", "col-1": "city"}),
    ("GET", "/apps/{app}/forms/{form}/imports/{batch_id}"): _import_batch(),
    ("GET", "/apps/{app}/forms/{form}/imports/{batch_id}/progress"): _import_batch(
        "/progress"),
    ("GET", "/apps/{app}/forms/{form}/imports/{batch_id}/problems.xlsx"): _import_batch(
        "/problems.xlsx"),
    ("POST", "/apps/{app}/forms/{form}/imports/{batch_id}/cancel"): _import_batch(
        "/cancel", state="queued"),
    ("POST", "/apps/{app}/forms/{form}/imports/{batch_id}/revert"): _import_batch(
        "/revert", dry_run=False),
    ("POST", "/apps/{app}/forms/{form}/imports/{batch_id}/run"): _import_batch("/run"),
    ("GET", "/address/options"): _fixed("/address/options", params={"province": "北京市"}),
    # apps: the template catalogue, bundles
    ("GET", "/api/v1/templates"): _fixed(f"{API}/templates"),
    ("POST", "/api/v1/templates/{name}/install"): lambda w, _who, _v: Request(
        f"{API}/templates/bank_intermediary_crm/install", json={"key": f"crm{w.n()}"}),
    ("GET", "/api/v1/apps/{app}/bundle"): _fixed(f"{CRM}/bundle"),
    ("POST", "/api/v1/apps/import"): lambda w, _who, _v: Request(
        f"{API}/apps/import", data={"key": f"imported{w.n()}"},
        files={"file": ("app.zip", _bundle_zip(), "application/zip")}),
    ("GET", "/admin/apps"): _fixed("/admin/apps"),
    ("POST", "/admin/apps/install"): lambda w, _who, _v: Request(
        "/admin/apps/install", data={"template": "bank_intermediary_crm",
                                     "key": f"crm{w.n()}"}),
    ("GET", "/admin/apps/jobs/{job_id}"): _install_job,
    ("POST", "/admin/apps/import"): lambda w, _who, _v: Request(
        "/admin/apps/import", data={"key": f"imported{w.n()}"},
        files={"file": ("app.zip", _bundle_zip(), "application/zip")}),
    ("POST", "/admin/apps/new"): lambda w, _who, _v: Request(
        "/admin/apps/new", data={"key": f"blank{w.n()}", "name": "空应用"}),
    # the form designer
    ("GET", "/apps/{app}/forms/{form}/design"): _fixed(f"{PAGE}/design"),
    ("GET", "/apps/{app}/design/new"): _fixed("/apps/crm/design/new"),
    ("GET", "/apps/{app}/design/key"): _fixed("/apps/crm/design/key",
                                              params={"label": "房产估值"}),
    ("POST", "/apps/{app}/design/preview"): _fixed("/apps/crm/design/preview",
                                                   json={"spec": MEMO_SPEC, "role": "staff"}),
    ("POST", "/apps/{app}/design/try"): _fixed("/apps/crm/design/try",
                                               json={"spec": MEMO_SPEC, "text": "1 + 1"}),
    # the flow designer
    ("GET", "/apps/{app}/flows"): _fixed("/apps/crm/flows"),
    ("GET", "/apps/{app}/flows/{flow}/design"): _fixed("/apps/crm/flows/review/design"),
    ("GET", "/apps/{app}/flows/new"): _fixed("/apps/crm/flows/new",
                                             params={"form": "customer"}),
    ("POST", "/apps/{app}/flows/design/layout"): _fixed("/apps/crm/flows/design/layout",
                                                        json={"spec": REVIEW_SPEC}),
    ("POST", "/apps/{app}/flows/design/check"): _fixed(
        "/apps/crm/flows/design/check", json={"spec": REVIEW_SPEC, "text": "1 = 1"}),
    # a flow's live overlay, the records at a step, the drawing as a file
    ("GET", "/apps/{app}/flows/{flow}/overlay"): _fixed("/apps/crm/flows/review/overlay"),
    ("GET", "/apps/{app}/flows/{flow}/at/{node}"): _fixed("/apps/crm/flows/review/at/work",
                                                          params={"overdue": "0"}),
    ("GET", "/apps/{app}/flows/{flow}/diagram.svg"): _fixed(
        "/apps/crm/flows/review/diagram.svg"),
    # the menu editor
    ("GET", "/apps/{app}/menus"): _fixed("/apps/crm/menus"),
    ("POST", "/apps/{app}/menus/preview"): _fixed("/apps/crm/menus/preview",
                                                  json={"menus": MENUS, "role": "staff"}),
    # the rule pages
    ("GET", "/apps/{app}/rules"): _fixed("/apps/crm/rules"),
    ("GET", "/apps/{app}/rules/new"): _fixed("/apps/crm/rules/new"),
    ("GET", "/apps/{app}/rules/{key}"): _page_rule(),
    ("POST", "/apps/{app}/rules/{key}/enable"): _page_rule("/enable"),
    ("POST", "/apps/{app}/rules/{key}/disable"): _page_rule("/disable", reason="矩阵"),
    ("GET", "/apps/{app}/rule-editor/cron"): _fixed("/apps/crm/rule-editor/cron",
                                                    params={"cron": "0 9 * * MON"}),
    ("POST", "/apps/{app}/rule-editor/condition"): _fixed(
        "/apps/crm/rule-editor/condition", json={
            "trigger": {"type": "record.created", "form": "customer"},
            "condition": "1 = 1"}),
    ("GET", "/apps/{app}/rule-runs"): _fixed("/apps/crm/rule-runs", params={"rule": "x"}),
    ("GET", "/apps/{app}/rule-dead-letters"): _fixed("/apps/crm/rule-dead-letters"),
    ("POST", "/apps/{app}/rule-dead-letters/{action_run_id}/replay"):
        lambda w, who, v: Request(_replay_action(w, who, v).url.replace(
            f"{CRM}/rules-dead-letters", "/apps/crm/rule-dead-letters")),
}

# Tasks: what a flow manager (a role with manage on the flow's form) may do with a task
# that is not theirs — read it, reassign it; acting on it is its assignee's (or a
# candidate's). Reassigning needs a flow manager, even for one's own task.
TASK_MANAGER_MAY = frozenset({("GET", "/api/v1/tasks/{task_id}"), ("GET", "/tasks/{task_id}"),
                              ("POST", "/api/v1/tasks/{task_id}/reassign")})
FLOW_MANAGERS_ONLY = frozenset({("POST", "/api/v1/tasks/{task_id}/reassign")})

# Product bugs found by the matrix: (method, path, caller, variant) → reason. Each such case
# is marked xfail(strict=True), so the fix makes it pass and then fail until removed here.
KNOWN_BUGS: dict[tuple[str, str, str, str | None], str] = {}


# -- the route table and the expected outcome ----------------------------------------------


def _route_table() -> list[tuple[str, str, str | None, Any]]:
    """(method, path, rule, route) of every route of a freshly built app."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.from_url(f"sqlite:///{Path(tmp) / 'routes.db'}")
        try:
            app = create_app(load_settings(data_dir=Path(tmp)), db=db)
            return [(method, route.path, route_rule(route), route)
                    for route in api_routes(app) for method in sorted(route.methods)]
        finally:
            db.dispose()


ROUTES = _route_table()


def _form_entry(role: str, app: str, form: str) -> dict[str, Any]:
    forms = BUILTIN_ROLES[role][2].get("forms") or {}
    return forms.get(f"{app}.{form}") or forms.get(f"{app}.*") or forms.get("*") or {}


def rule_allows(rule: str, role: str, params: dict[str, str]) -> bool:
    """Whether the built-in ``role`` passes ``rule`` (the route-level check)."""
    perms = BUILTIN_ROLES[role][2]
    kind, _, action = rule.partition(":")
    if rule in ("public", "self", "user"):
        return True
    if rule == "admin":
        return bool(perms.get("admin"))
    if rule == "users":
        return bool(perms.get("admin") or perms.get("users"))
    if kind == "app":
        app = params["app"]
        entries = [e for key, e in (perms.get("forms") or {}).items()
                   if key == "*" or key.partition(".")[0] == app]
        return bool(perms.get("admin")) or any(action in e.get("actions", ()) for e in entries)
    if kind == "form":
        return action in _form_entry(role, params["app"], params["form"]).get("actions", ())
    raise AssertionError(f"unknown rule {rule!r}")


def in_row_scope(scope: str, caller: str, owner: str) -> bool:
    """Whether a record of ``owner`` (in their department) is in ``caller``'s ``scope``."""
    caller_dept, owner_dept = USERS[caller][1], USERS[owner][1]
    return {"all": True, "own": owner == caller, "department": owner_dept == caller_dept,
            "department_tree": owner_dept in subtree(caller_dept)}[scope]


def expected(method: str, path: str, rule: str, caller: str, params: dict[str, str],
             variant: str | None) -> int | None:
    """The status a denial must have (401, or 303 to the sign-in page; 403; 404), or None
    when the call is allowed."""
    if path == "/metrics":  # "public" to the guard; the route itself lets in loopback,
        # the scrape token or an administrator's token (the test client is no loopback)
        admin = caller in USERS and rule_allows("admin", USERS[caller][0], params)
        return None if admin and caller != PENDING else 403
    if rule == "public":
        return None
    if caller == ANONYMOUS:  # a browser asking for a page is sent to the sign-in page
        return 303 if method in ("GET", "HEAD") and not path.startswith("/api/") else 401
    if rule == "self":
        return None
    if caller == PENDING:  # only "self" routes until the one-time password is changed
        return 403
    role = USERS[caller][0]
    if not rule_allows(rule, role, params):
        return 403
    kind = target_kind(method, path)
    owner = TARGETS[variant] if variant else None
    if kind in ("record", "run"):  # the action's row scope (built-in roles: one per form)
        # (a run is the caller's own where they reach its record: see _cancel, _withdraw)
        entry = _form_entry(role, params["app"], params.get("form") or
                            FLOW_FORMS[params["flow"]])
        if "read" not in entry["actions"] or not in_row_scope(entry["scope"], caller, owner):
            return 404
    if kind == "task":
        manages = "manage" in _form_entry(role, *TASK_FORM)["actions"]
        if variant != "own" and not manages:  # a task one takes no part in
            return 404
        if (method, path) in FLOW_MANAGERS_ONLY and not manages:
            return 403
        if variant != "own" and (method, path) not in TASK_MANAGER_MAY:
            return 403  # only its assignee (or a candidate) acts on a task
    if kind == "user" and not BUILTIN_ROLES[role][2].get("admin"):
        # a user manager reaches the users of their own department tree only
        if USERS[owner][1] not in subtree(USERS[caller][1]):
            return 404
    if kind == "mine" and variant != "own":  # nobody's /me reaches another user's things
        return 404
    return None


def _path_params(path: str) -> set[str]:
    return set(path.replace("}", "{").split("{")[1::2])


def target_kind(method: str, path: str) -> str | None:
    """What a route's path parameter (or body) addresses: "record", "run", "task", "user",
    "mine" or nothing."""
    params = _path_params(path)
    if params & RECORD_PARAMS or (method, path) in BODY_RECORDS:
        return "record"
    if params & RUN_PARAMS:
        return "run"
    if params & TASK_PARAMS:
        return "task"
    if params & USER_PARAMS:
        return "user"
    if params & MY_PARAMS and path.startswith((f"{API}/me/", "/me/")):
        return "mine"
    return None


def _variants(method: str, path: str) -> tuple[str | None, ...]:
    kind = target_kind(method, path)
    if kind is None:
        return (None,)
    return ("own", "other") if kind in ("mine", "task") else tuple(TARGETS)


def _cases() -> Iterator[Any]:
    for method, path, rule, route in ROUTES:
        if rule is None or (method, path) not in EXAMPLES:
            continue  # test_every_route_has_a_rule_and_an_example names it
        for caller in CALLERS:
            variants = _variants(method, path)
            for variant in variants[:1] if caller in (ANONYMOUS, PENDING) else variants:
                bug = KNOWN_BUGS.get((method, path, caller, variant))
                marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
                case_id = f"{method} {path} | {caller}" + (f" | {variant}" if variant else "")
                yield pytest.param(method, path, rule, route, caller, variant, marks=marks,
                                   id=case_id)


# -- the tests ------------------------------------------------------------------------------


def test_every_route_has_a_rule_and_an_example():
    problems = []
    for method, path, rule, _route in ROUTES:
        if rule is None:
            problems.append(f"{method} {path}: no permission rule (openapi_extra=rule(...))")
        else:
            try:
                valid(rule)
            except ValueError as exc:
                problems.append(f"{method} {path}: {exc}")
        if (method, path) not in EXAMPLES:
            problems.append(f"{method} {path}: no entry in EXAMPLES "
                            "(tests/security/test_matrix.py)")
    routes = {(method, path) for method, path, _rule, _route in ROUTES}
    problems += [f"{method} {path}: in EXAMPLES but no such route"
                 for method, path in EXAMPLES if (method, path) not in routes]
    assert not problems, "\n".join(problems)


def test_the_matrix_covers_every_role_and_every_kind_of_outcome():
    assert set(BUILTIN_ROLES) == set(ROLES), "a new built-in role: give it a user here"
    outcomes = set()
    for param in _cases():
        method, path, rule, _route, caller, variant = param.values
        params = dict.fromkeys(_path_params(path), "") | {"app": "crm", "form": "customer"}
        outcomes.add(expected(method, path, rule, caller, params, variant))
    assert outcomes >= {None, 401, 403, 404}


@pytest.mark.parametrize("caller", ROLES)
def test_lists_and_exports_hold_only_the_targets_in_scope(world: World, caller: str):
    """The list routes answer 200 to everyone allowed; what they hold is the same row
    scope: of the world's own/sub/other targets, exactly those the caller may reach."""
    headers = world.auth(caller)
    world.client.cookies.clear()

    def reach(action: str) -> set[int]:
        scope = _form_entry(caller, "crm", "customer").get("scope")
        return {world.records[v] for v, owner in TARGETS.items()
                if action in _form_entry(caller, "crm", "customer").get("actions", ())
                and in_row_scope(scope, caller, owner)}

    listed = ok(world.client.get(f"{CUSTOMER}/records", params={"limit": 1000},
                                 headers=headers))["items"]
    assert {r["id"] for r in listed} & set(world.records.values()) == reach("read")
    if reach("export"):
        text = world.client.get(f"{CUSTOMER}/export", params={"format": "csv"},
                                headers=headers).content.decode("utf-8-sig")
        exported = {int(row[0]) for row in list(csv.reader(io.StringIO(text)))[1:]}
        assert exported & set(world.records.values()) == reach("export")
    if rule_allows("users", caller, {}):
        users = {u["id"] for u in ok(world.client.get(f"{API}/users", headers=headers))["items"]}
        visible = {world.users[name] for name, (_role, department) in USERS.items()
                   if BUILTIN_ROLES[caller][2].get("admin")
                   or department in subtree(USERS[caller][1])}
        assert users & set(world.users.values()) == visible
    # the shared runs (each owner's, over their customer, with their task): a flow manager
    # lists every one, anyone else those they started or take part in; the inbox holds
    # one's own tasks only
    manages = "manage" in _form_entry(caller, *TASK_FORM)["actions"]
    runs = ok(world.client.get(f"{REVIEW}/instances", params={"limit": 500},
                               headers=headers))["items"]
    assert {r["id"] for r in runs} & set(world.runs.values()) == {
        world.runs[v] for v, owner in TARGETS.items() if manages or owner == caller}
    tasks = ok(world.client.get(f"{API}/tasks", params={"limit": 500},
                                headers=headers))["items"]
    assert {t["id"] for t in tasks} & set(world.tasks.values()) == {
        world.tasks[v] for v, owner in TARGETS.items() if owner == caller}


@pytest.mark.parametrize(("method", "path", "rule", "route", "caller", "variant"), _cases())
def test_authorization_matrix(world: World, method: str, path: str, rule: str, route: Any,
                              caller: str, variant: str | None):
    request = EXAMPLES[(method, path)](world, caller, variant)
    url_path = request.url.split("?")[0]
    matched = route.path_regex.match(url_path)
    assert matched, f"the example's URL {request.url} is not a URL of {path}"
    want = expected(method, path, rule, caller, matched.groupdict(), variant)
    headers = dict(request.headers)
    if caller != ANONYMOUS:
        headers["Authorization"] = f"Bearer {request.token or world.tokens[caller]}"
    world.client.cookies.clear()  # nothing signs in but the bearer token (or nobody)
    response = world.client.request(method, request.url, params=request.params,
                                    json=request.json, data=request.data,
                                    files=request.files, headers=headers)
    got, location = response.status_code, response.headers.get("location", "")
    detail = (f"{method} {request.url} as {caller} ({rule}, {variant or '-'}): "
              f"{location or response.text[:300]}")
    if want is None:
        assert 200 <= got < 400, f"expected allowed, got {got}: {detail}"
        assert not location.startswith("/login?next="), f"sent to sign in: {detail}"
    else:
        assert got == want, f"expected {want}, got {got}: {detail}"
    if want == 303:
        assert location.startswith("/login?next="), f"redirected elsewhere: {detail}"
