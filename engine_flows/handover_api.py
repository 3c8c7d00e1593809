"""``POST /api/v1/users/{user_id}/handover``: a staff handover (``staff_handover``) as a
preview (``dry_run``) or carried out in one transaction. Rule ``users``: administrators,
and user managers for users of their own department tree (others are 404, as on every
user route)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from engine_flows import staff_handover
from platform_core.app import ContextDep, IdPath
from platform_core.models import utcnow
from platform_core.security.guard import PrincipalDep, client_of, rule

router = APIRouter(prefix="/api/v1", tags=["flows"])
USER_ID = Field(ge=1, le=2**63 - 1)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FormRef(_Body):
    app: str = Field(min_length=1, max_length=64)
    form: str | None = Field(default=None, min_length=1, max_length=64,
                             description="without it: every form of the app")


class SplitRule(_Body):
    field: str = Field(min_length=1, max_length=64)
    map: dict[str, int] = Field(min_length=1, max_length=200,
                                description="field value → user id (one of to)")


class HandoverBody(_Body):
    to: list[int] = Field(min_length=1, max_length=50, description="user ids")
    split: str = Field(default="even", max_length=16, description="even | by_field")
    rule: SplitRule | None = None
    forms: list[FormRef] | None = Field(default=None, max_length=200,
                                        description="null: every form of every app")
    dry_run: bool = False


def request_of(user_id: int, body: HandoverBody) -> staff_handover.Request:
    return staff_handover.Request(
        source_id=user_id, to=body.to, split=body.split,
        rule=body.rule.model_dump() if body.rule else None,
        forms=[(f.app, f.form) for f in body.forms] if body.forms is not None else None)


def result_doc(done: staff_handover.Plan, *, applied: bool) -> dict[str, Any]:
    doc = done.doc() | {"dry_run": not applied, "applied": applied}
    if applied:
        doc["moved"] = [{"id": rid, "app": app, "form": form, "owner_id": to}
                        for rid, app, form, to in done.records]
    return doc


@router.post("/users/{user_id}/handover", openapi_extra=rule("users"))
def handover(ctx: ContextDep, principal: PrincipalDep, request: Request, user_id: IdPath,
             body: HandoverBody) -> dict[str, Any]:
    """Preview (``dry_run``) or hand over a user's records, open tasks and flow
    assignments to colleagues; the result counts equal the preview's."""
    wanted = request_of(user_id, body)
    if body.dry_run:
        with ctx.db.read() as s:
            return result_doc(staff_handover.plan(s, principal, wanted), applied=False)
    with ctx.db.write() as s:
        done = staff_handover.apply(s, principal, wanted, actor=principal.actor,
                                    now=utcnow(), client=client_of(request))
        return result_doc(done, applied=True)
