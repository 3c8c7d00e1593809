"""Flow definitions: a mutable draft per flow, published as immutable numbered versions.

Saving a draft checks it against the meta-schema only (an admin may save half-built
work); ``validate`` and ``publish`` run every check of ``engine_flows.validation``, and
publishing stores a new version that running instances never see (they keep theirs).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine_flows.models import Flow, FlowVersion
from engine_flows.spec import FlowSpec, FlowSpecError, parse_flow
from engine_flows.validation import check_flow
from engine_forms.forms import get_app
from platform_core.errors import Conflict, InvalidInput, NotFound
from platform_core.models import utcnow
from platform_core.store import Actor


def get_flow(session: Session, app: str, key: str) -> Flow:
    row = session.execute(select(Flow).where(Flow.app == app, Flow.key == key)
                          ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"flow {key!r} does not exist in app {app!r}", app=app, flow=key)
    return row


def list_flows(session: Session, app: str) -> list[Flow]:
    get_app(session, app)
    return list(session.execute(select(Flow).where(Flow.app == app).order_by(Flow.key))
                .scalars())


def flow_names(session: Session, app: str) -> dict[str, str]:
    """The app's flows, key → name (what a menu item may point at)."""
    return {f.key: str(f.draft.get("name") or f.key) for f in list_flows(session, app)}


def create_flow(session: Session, *, app: str, raw: Any) -> Flow:
    get_app(session, app)
    spec = parse_flow(raw)
    row = Flow(app=app, key=spec.key, draft=spec.dump())
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise Conflict(f"flow {spec.key!r} already exists in app {app!r}",
                       flow=spec.key) from None
    return row


def put_draft(session: Session, *, app: str, key: str, raw: Any) -> Flow:
    row = get_flow(session, app, key)
    spec = parse_flow(raw)
    if spec.key != key:
        raise InvalidInput(f"key: the key of a flow cannot change ({key!r})", field="key")
    if row.published_version is not None and spec.form != row.draft.get("form"):
        raise InvalidInput(f"form: a published flow keeps its form ({row.draft.get('form')})",
                           field="form")
    row.draft, row.updated_at = spec.dump(), utcnow()
    return row


def validate(session: Session, app: str, raw: Any) -> FlowSpec:
    """The spec if it can be published; ``FlowSpecError`` with every problem if not."""
    spec = parse_flow(raw)
    problems = check_flow(session, app, spec)
    if problems:
        raise FlowSpecError(problems, raw)
    return spec


def publish(session: Session, *, app: str, key: str, actor: Actor) -> FlowVersion:
    """The draft as the next immutable version (``FlowSpecError`` if it has problems)."""
    row = session.execute(select(Flow).where(Flow.app == app, Flow.key == key)
                          .with_for_update()).scalar_one_or_none()
    if row is None:
        raise NotFound(f"flow {key!r} does not exist in app {app!r}", app=app, flow=key)
    spec = validate(session, app, row.draft)
    number = (session.execute(select(func.max(FlowVersion.version)).where(
        FlowVersion.app == app, FlowVersion.flow == key)).scalar() or 0) + 1
    version = FlowVersion(app=app, flow=key, version=number, spec=spec.dump(),
                          published_at=utcnow(), published_by=actor.user_id)
    session.add(version)
    row.published_version, row.updated_at = number, utcnow()
    session.flush()
    return version


def versions(session: Session, app: str, key: str) -> list[FlowVersion]:
    get_flow(session, app, key)
    return list(session.execute(select(FlowVersion).where(
        FlowVersion.app == app, FlowVersion.flow == key).order_by(FlowVersion.version))
        .scalars())


def version_row(session: Session, app: str, key: str, version: int) -> FlowVersion:
    row = session.execute(select(FlowVersion).where(
        FlowVersion.app == app, FlowVersion.flow == key, FlowVersion.version == version)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"flow {key!r} has no version {version}", flow=key, version=version)
    return row


def latest(session: Session, app: str, key: str) -> FlowVersion:
    row = get_flow(session, app, key)
    if row.published_version is None:
        raise NotFound(f"flow {key!r} has no published version yet", app=app, flow=key)
    return version_row(session, app, key, row.published_version)


def flow_doc(row: Flow) -> dict[str, Any]:
    return {"app": row.app, "key": row.key, "name": row.draft.get("name"),
            "form": row.draft.get("form"), "published_version": row.published_version,
            "draft": row.draft, "updated_at": row.updated_at.isoformat()}


def version_doc(row: FlowVersion) -> dict[str, Any]:
    return {"version": row.version, "spec": row.spec,
            "published_at": row.published_at.isoformat(), "published_by": row.published_by}
