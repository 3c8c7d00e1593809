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

router = APIRouter(prefix="/api/v1", tags=["rules"])
RULES = "/apps/{app}/rules"
RULE = RULES + "/{key}"


class TestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    record_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


@router.get("/rules/meta-schema", openapi_extra=rule("user"))
def get_meta_schema() -> dict[str, Any]:
    return meta_schema()


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


@router.post(RULE + "/enable", openapi_extra=rule("app:manage"))
def enable_rule(ctx: ContextDep, principal: PrincipalDep, app: str, key: str
                ) -> dict[str, Any]:
    with ctx.db.write() as s:
        return service.rule_doc(service.set_enabled(s, app, key, True, principal.actor))


@router.post(RULE + "/disable", openapi_extra=rule("app:manage"))
def disable_rule(ctx: ContextDep, principal: PrincipalDep, app: str, key: str
                 ) -> dict[str, Any]:
    with ctx.db.write() as s:
        return service.rule_doc(service.set_enabled(s, app, key, False, principal.actor))


@router.post(RULE + "/test", openapi_extra=rule("app:manage"))
def test_rule(ctx: ContextDep, app: str, key: str,
              body: TestBody | None = None) -> dict[str, Any]:
    """What the rule would do for a record — the condition and each action's preview
    (recipients, rendered message, values); nothing is written."""
    with ctx.db.read() as s:
        return service.test_run(s, app, key, record_id=body.record_id if body else None,
                                now=utcnow(), keyring=ctx.keyring)


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
                  "created_at": n.created_at.isoformat()} for n in rows]
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
