"""The rules API (``/api/v1``): rule CRUD, enable/disable, test runs, the run log, dead
letters and replay — for whoever manages the app — and each user's notification centre.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from engine_rules import service
from engine_rules.models import Notification
from engine_rules.spec import meta_schema
from platform_core.app import ContextDep, IdPath
from platform_core.errors import NotFound
from platform_core.models import utcnow
from platform_core.security.guard import PrincipalDep, rule
from platform_core.webhooks.events import iso

router = APIRouter(prefix="/api/v1", tags=["rules"])
RULES = "/apps/{app}/rules"
RULE = RULES + "/{key}"


class TestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    record_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


@router.get("/rules/meta-schema", openapi_extra=rule("user"))
def get_meta_schema() -> dict[str, Any]:
    return meta_schema()


@router.get("/rules/actions", openapi_extra=rule("user"))
def action_types() -> dict[str, Any]:
    """Every registered action type and the JSON Schema of its settings (what the rule
    editor builds each action's form from)."""
    from engine_rules.action_settings import schema_of
    from engine_rules.actions import ACTIONS

    return {"items": [{"type": key, "external": action.external,
                       "schema": schema_of(action.settings)}
                      for key, action in ACTIONS.items()]}


@router.get(RULES, openapi_extra=rule("app:manage"))
def list_rules(ctx: ContextDep, app: str) -> dict[str, Any]:
    from sqlalchemy import select

    from engine_forms.forms import get_app
    from engine_rules.models import Rule

    with ctx.db.read() as s:
        get_app(s, app)
        rows = s.execute(select(Rule).where(Rule.app == app).order_by(Rule.key)).scalars()
        return {"items": [service.rule_doc(r) for r in rows]}


@router.post(RULES, status_code=201, openapi_extra=rule("app:manage"))
def create_rule(ctx: ContextDep, principal: PrincipalDep, app: str,
                body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    with ctx.db.write() as s:
        return service.rule_doc(service.save(s, app=app, raw=body, actor=principal.actor))


@router.get(RULE, openapi_extra=rule("app:manage"))
def get_rule(ctx: ContextDep, app: str, key: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        return service.rule_doc(service.get_rule(s, app, key))


@router.put(RULE, openapi_extra=rule("app:manage"))
def put_rule(ctx: ContextDep, principal: PrincipalDep, app: str, key: str,
             body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Save a new version of the rule (runs keep the version they followed)."""
    with ctx.db.write() as s:
        return service.rule_doc(service.save(s, app=app, raw=body, actor=principal.actor,
                                             key=key))


@router.delete(RULE, status_code=204, openapi_extra=rule("app:manage"))
def delete_rule(ctx: ContextDep, app: str, key: str) -> Response:
    with ctx.db.write() as s:
        service.delete(s, app, key)
    return Response(status_code=204)


class SwitchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=500)


@router.post(RULE + "/enable", openapi_extra=rule("app:manage"))
def enable_rule(ctx: ContextDep, principal: PrincipalDep, app: str, key: str,
                body: SwitchBody | None = None) -> dict[str, Any]:
    """Turn the rule on; ``{"reason": …}`` (optional) is kept in the audit log."""
    with ctx.db.write() as s:
        return service.rule_doc(service.set_enabled(
            s, app, key, True, principal.actor, body.reason if body else None))


@router.post(RULE + "/disable", openapi_extra=rule("app:manage"))
def disable_rule(ctx: ContextDep, principal: PrincipalDep, app: str, key: str,
                 body: SwitchBody | None = None) -> dict[str, Any]:
    """Turn the rule off; ``{"reason": …}`` (optional here, asked for on the rule pages)
    is kept in the audit log and shown in the rule list."""
    with ctx.db.write() as s:
        return service.rule_doc(service.set_enabled(
            s, app, key, False, principal.actor, body.reason if body else None))


@router.post(RULE + "/test", openapi_extra=rule("app:manage"))
def test_rule(ctx: ContextDep, app: str, key: str,
              body: TestBody | None = None) -> dict[str, Any]:
    """What the rule would do for a record — the condition and each action's preview
    (recipients, rendered message, values); nothing is written."""
    with ctx.db.read() as s:
        return service.test_run(s, app, key, record_id=body.record_id if body else None,
                                now=utcnow(), keyring=ctx.keyring)


class DraftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: dict[str, Any]
    record_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


@router.post(RULES + "-check", openapi_extra=rule("app:manage"))
def check_rule(ctx: ContextDep, app: str, body: DraftBody) -> dict[str, Any]:
    """A working copy checked exactly as saving checks it; nothing is saved. 200 with
    ``{"valid": true}``, else 422 with the ``problems``."""
    with ctx.db.read() as s:
        service.check(s, app=app, raw=body.spec)
    return {"valid": True}


@router.post(RULES + "-test", openapi_extra=rule("app:manage"))
def test_draft(ctx: ContextDep, app: str, body: DraftBody) -> dict[str, Any]:
    """The test run of a working copy not saved yet (checked as saving checks it first);
    nothing is written."""
    with ctx.db.read() as s:
        spec = service.check(s, app=app, raw=body.spec)
        return service.preview(s, app, spec, record_id=body.record_id, now=utcnow(),
                               keyring=ctx.keyring)


@router.get(RULES + "-runs", openapi_extra=rule("app:manage"))
def app_runs(ctx: ContextDep, app: str, rule_key: Annotated[str | None, Query(
                 alias="rule", max_length=64)] = None,
             status: Annotated[str | None, Query(max_length=16)] = None,
             record_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 50,
             before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None
             ) -> dict[str, Any]:
    """The run log of all the app's rules, newest first, filtered by rule key, outcome
    (done, skipped, failed, stopped) and record."""
    from engine_forms.forms import get_app
    from engine_rules.overview import app_runs as runs_of

    with ctx.db.read() as s:
        get_app(s, app)
        found = runs_of(s, app, rule=rule_key, status=status, record_id=record_id,
                        limit=limit, before=before)
        return {"items": [service.run_doc(r) | {"rule": k} for r, k in found]}


@router.get(RULE + "/runs", openapi_extra=rule("app:manage"))
def rule_runs(ctx: ContextDep, app: str, key: str,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None
              ) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [service.run_doc(r) for r in service.runs(s, app, key, limit=limit,
                                                                   before=before)]}


@router.get(RULES + "-dead-letters", openapi_extra=rule("app:manage"))
def dead_letters(ctx: ContextDep, app: str,
                 limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [service.action_doc(a) for a in service.dead_letters(
            s, app, limit=limit)]}


@router.post(RULES + "-dead-letters/{action_run_id}/replay", status_code=202,
             openapi_extra=rule("app:manage"))
def replay(ctx: ContextDep, app: str, action_run_id: IdPath) -> dict[str, Any]:
    with ctx.db.write() as s:
        return service.action_doc(service.replay(s, app, action_run_id, now=utcnow(),
                                                 keyring=ctx.keyring))


# -- the notification centre ---------------------------------------------------------------


@router.get("/notifications", openapi_extra=rule("user"))
def notifications(ctx: ContextDep, principal: PrincipalDep,
                  unread: bool = False,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50,
                  before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None
                  ) -> dict[str, Any]:
    from sqlalchemy import select

    with ctx.db.read() as s:
        stmt = select(Notification).where(Notification.user_id == principal.user_id)
        if unread:
            stmt = stmt.where(Notification.read_at.is_(None))
        if before:
            stmt = stmt.where(Notification.id < before)
        rows = s.execute(stmt.order_by(Notification.id.desc()).limit(limit)).scalars()
        items = [{"id": n.id, "app": n.app, "title": n.title, "body": n.body,
                  "record_id": n.record_id, "read": n.read_at is not None,
                  "created_at": iso(n.created_at),
                  "read_at": iso(n.read_at) if n.read_at else None} for n in rows]
        return {"items": items, "unread": service.unread(s, principal.user_id)}


@router.post("/notifications/{notification_id}/read", openapi_extra=rule("user"))
def mark_read(ctx: ContextDep, principal: PrincipalDep,
              notification_id: IdPath) -> dict[str, Any]:
    with ctx.db.write() as s:
        row = s.get(Notification, notification_id)
        if row is None or row.user_id != principal.user_id:
            raise NotFound(f"notification {notification_id} does not exist")
        row.read_at = row.read_at or utcnow()
        s.flush()
        return {"id": row.id, "read": True, "unread": service.unread(s, principal.user_id)}


@router.post("/notifications/read-all", openapi_extra=rule("user"))
def mark_all_read(ctx: ContextDep, principal: PrincipalDep) -> dict[str, Any]:
    from sqlalchemy import update

    with ctx.db.write() as s:
        s.execute(update(Notification).where(Notification.user_id == principal.user_id,
                                             Notification.read_at.is_(None))
                  .values(read_at=utcnow()))
        return {"unread": 0}
