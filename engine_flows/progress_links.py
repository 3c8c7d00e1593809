"""Customer progress links: a signed, expiring, revocable URL per record that opens a
phone page with where the record's flow stands — what the flow's ``public`` block
(``spec.PublicPage``) lists, and nothing else.

A token is ``<nonce>.<signature>``: the nonce is random and stored on the link's row, the
signature an HMAC-SHA256 of it under the installation's secret key. Both halves are
needed: without the secret no token can be made from the database, and without the row
(revoked, expired, deleted) a well-signed token opens nothing. Since the row keeps the
nonce, the URL of a live link can be shown again (the panel's "copy", a rule's message).

Opening a link (``open_link``), in order, in one transaction:

1. the client's throttle (``login_throttle`` rows, one window a minute): over the limit
   → ``THROTTLED`` (429), whatever the token;
2. the token's shape and signature (constant-time compare): a forged or garbled token
   → ``None`` (404) without looking anything up;
3. the link's throttle, then its row: unknown, revoked, expired, or its record deleted
   → ``None`` (404 — the same answer for each, so the page tells nothing);
4. the open is counted and audited (the link's id, never the token), then the page's
   content is built (``page_of``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine_flows.definitions import latest, list_flows
from engine_flows.models import FlowRun, FlowStep, ProgressLink
from engine_flows.runtime import spec_of
from engine_flows.spec import FlowSpec, PublicPage
from engine_forms.forms import published
from engine_forms.sealing import FieldCrypt
from platform_core.db import Database
from platform_core.errors import DomainError, InvalidInput, NotFound
from platform_core.models import Record
from platform_core.security import audit
from platform_core.security.auth import aware
from platform_core.security.models import LoginThrottle, User
from platform_core.store import Actor

TOKEN = re.compile(r"^([A-Za-z0-9_-]{24})\.([A-Za-z0-9_-]{22})$")
WINDOW = timedelta(minutes=1)
REUSE_MARGIN = timedelta(days=1)  # a rule reuses a live link that lives at least this long
THROTTLED = "throttled"
CUSTOMER = Actor(user_id=None, name="customer")  # who opens a link, as the audit log says


@dataclass(frozen=True)
class Site:
    """What signs tokens and builds URLs: the installation's secret and public base URL."""

    secret_key: bytes
    base_url: str

    def signature(self, nonce: str) -> str:
        mac = hmac.new(self.secret_key, b"qiao.progress-link\x00" + nonce.encode(),
                       hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def token(self, nonce: str) -> str:
        return f"{nonce}.{self.signature(nonce)}"

    def url(self, nonce: str) -> str:
        return f"{self.base_url.rstrip('/')}/p/{self.token(nonce)}"

    def nonce_of(self, token: str) -> str | None:
        """The nonce of a token this installation signed; None for anything else."""
        match = TOKEN.match(token or "")
        if match is None:
            return None
        nonce, sig = match.groups()
        return nonce if hmac.compare_digest(sig.encode(), self.signature(nonce).encode()) \
            else None


_SITE: list[Site | None] = [None]


def bind_site(secret_key: bytes, base_url: str) -> None:
    """The running installation's ``Site``, for rules rendering ``{{ progress_url }}``
    (set when the app is built: one installation per process)."""
    _SITE[0] = Site(secret_key, base_url)


def bound_site() -> Site:
    site = _SITE[0]
    if site is None:
        raise InvalidInput("progress links are not available in this process (no app)")
    return site


# -- which flow shows the page ---------------------------------------------------------------


def public_flow(session: Session, app: str, form: str) -> FlowSpec | None:
    """The first flow (by key) over ``form`` whose latest published version has a
    ``public`` block: the one a new link of the form's records shows."""
    for row in sorted(list_flows(session, app), key=lambda f: f.key):
        if row.published_version is None or row.draft.get("form") != form:
            continue
        spec = spec_of(session, app, row.key, latest(session, app, row.key).version)
        if spec.form == form and spec.public is not None:
            return spec
    return None


def _require_flow(session: Session, app: str, form: str) -> FlowSpec:
    spec = public_flow(session, app, form)
    if spec is None:
        raise InvalidInput(f"没有为表单 {form} 设置客户进度页的流程 / no flow over form "
                           f"{form} has a customer progress page (a 'public' block in "
                           "the flow definition)", field="flow")
    return spec


# -- staff: create, list, revoke --------------------------------------------------------------


def create_link(session: Session, *, app: str, form: str, record_id: int, actor: Actor,
                now: datetime, days: int | None = None, via: str = "page") -> ProgressLink:
    """A new link to record ``record_id`` (its rights are the caller's to check)."""
    spec = _require_flow(session, app, form)
    assert spec.public is not None
    days = days or spec.public.expires_days
    if not 1 <= days <= 366:
        raise InvalidInput("有效期为 1 到 366 天 / a link lives 1 to 366 days", field="days")
    link = ProgressLink(app=app, form=form, flow=spec.key, record_id=record_id,
                        nonce=secrets.token_urlsafe(18), via=via, created_by=actor.user_id,
                        created_at=now, expires_at=now + timedelta(days=days), open_count=0)
    session.add(link)
    session.flush()
    audit.append(session, actor=actor, action="progress_link.create",
                 target=f"progress_link:{link.id}",
                 detail={"record": f"{app}.{form}/{record_id}", "days": days, "via": via})
    return link


def live_link(session: Session, *, app: str, form: str, record_id: int, actor: Actor,
              now: datetime) -> ProgressLink:
    """The record's newest live link that lives at least another day, or a new one (a
    rule's message: one customer, one link, however many messages)."""
    found = session.execute(select(ProgressLink).where(
        ProgressLink.record_id == record_id, ProgressLink.app == app,
        ProgressLink.form == form, ProgressLink.revoked_at.is_(None))
        .order_by(ProgressLink.id.desc())).scalars()
    for link in found:
        if aware(link.expires_at) > now + REUSE_MARGIN:
            return link
    return create_link(session, app=app, form=form, record_id=record_id, actor=actor,
                       now=now, via="rule")


def links_of(session: Session, *, app: str, form: str, record_id: int) -> list[ProgressLink]:
    return list(session.execute(select(ProgressLink).where(
        ProgressLink.record_id == record_id, ProgressLink.app == app,
        ProgressLink.form == form).order_by(ProgressLink.id.desc())).scalars())


def link_of(session: Session, *, app: str, form: str, record_id: int,
            link_id: int) -> ProgressLink:
    link = session.get(ProgressLink, link_id)
    if link is None or (link.app, link.form, link.record_id) != (app, form, record_id):
        raise NotFound(f"progress link {link_id} does not exist", link_id=link_id)
    return link


def revoke(session: Session, link: ProgressLink, *, actor: Actor, now: datetime) -> None:
    """Revoke ``link`` (once; revoking again changes nothing)."""
    if link.revoked_at is None:
        link.revoked_at, link.revoked_by = now, actor.user_id
        audit.append(session, actor=actor, action="progress_link.revoke",
                     target=f"progress_link:{link.id}",
                     detail={"record": f"{link.app}.{link.form}/{link.record_id}"})


def status_of(link: ProgressLink, now: datetime) -> str:
    if link.revoked_at is not None:
        return "revoked"
    return "expired" if aware(link.expires_at) <= now else "live"


def link_doc(link: ProgressLink, site: Site, now: datetime) -> dict[str, Any]:
    """A link as staff and the API see it (the URL only while it can be opened)."""
    from engine_flows.instances import iso

    status = status_of(link, now)
    return {"id": link.id, "record_id": link.record_id, "flow": link.flow,
            "status": status, "url": site.url(link.nonce) if status == "live" else None,
            "via": link.via, "created_by": link.created_by, "created_at": iso(link.created_at),
            "expires_at": iso(link.expires_at), "revoked_at": iso(link.revoked_at),
            "revoked_by": link.revoked_by, "open_count": link.open_count,
            "last_opened_at": iso(link.last_opened_at)}


# -- the customer: opening a link --------------------------------------------------------------


def _over_limit(session: Session, key: str, limit: int, now: datetime) -> bool:
    """Count one hit of ``key`` in its one-minute window; True past ``limit``."""
    row = session.get(LoginThrottle, key)
    if row is None:
        try:
            with session.begin_nested():
                session.add(LoginThrottle(key=key, failures=1, window_start=now))
            return limit < 1
        except IntegrityError:  # another request made it first: count on it
            row = session.get(LoginThrottle, key)
            if row is None:
                return False
    if aware(row.window_start) + WINDOW <= now:
        row.failures, row.window_start = 1, now
    else:
        row.failures += 1
    return row.failures > limit


def open_link(db: Database, site: Site, token: str, *, client: str, now: datetime,
              per_minute: int, keyring: Any = None) -> dict[str, Any] | str | None:
    """The page of ``token`` (see the module docstring): its content, ``THROTTLED`` or
    None. The throttle's counts and the audit entry are committed whatever the answer."""
    with db.write() as session:
        if _over_limit(session, f"progress:client:{client}"[:100], per_minute, now):
            return THROTTLED
        nonce = site.nonce_of(token)
        if nonce is None:
            return None
        if _over_limit(session, f"progress:link:{nonce}", per_minute, now):
            return THROTTLED
        link = session.execute(select(ProgressLink).where(ProgressLink.nonce == nonce)
                               ).scalar_one_or_none()
        if link is None:
            return None
        record = session.get(Record, link.record_id)
        state = status_of(link, now)
        if state != "live" or record is None or record.deleted_at is not None:
            audit.append(session, actor=CUSTOMER, action="progress_link.refused",
                         target=f"progress_link:{link.id}",
                         detail={"reason": state if state != "live" else "deleted"},
                         client=client)
            return None
        link.open_count += 1
        link.last_opened_at = now
        audit.append(session, actor=CUSTOMER, action="progress_link.open",
                     target=f"progress_link:{link.id}", client=client)
        try:
            return page_of(session, link, record, keyring)
        except DomainError:  # the flow or form went away: nothing to show
            return None


def page_of(session: Session, link: ProgressLink, record: Record,
            keyring: Any = None) -> dict[str, Any]:
    """What the customer's page shows: the case number, the masked name, the steps
    passed and the current one in the flow's plain words, the documents still missing and
    the owner's contact — only what the flow's ``public`` block names."""
    run = session.execute(select(FlowRun).where(
        FlowRun.record_id == record.id, FlowRun.app == link.app, FlowRun.flow == link.flow)
        .order_by(FlowRun.id.desc()).limit(1)).scalar_one_or_none()
    spec = spec_of(session, link.app, link.flow, run.version) if run else None
    if spec is None or spec.public is None:
        spec = spec_of(session, link.app, link.flow,
                       latest(session, link.app, link.flow).version)
    page = spec.public
    if page is None:
        raise NotFound("the flow no longer has a progress page")
    pub = published(session, link.app, link.form)
    data = FieldCrypt(pub, keyring).open(record.data)
    title_field = page.title_field or pub.spec.title_field
    passed, current = _steps(session, run, page)
    return {"heading": page.title or spec.name,
            "case_no": _text(pub.spec.field(title_field), data.get(title_field))
            if title_field else None,
            "name": _masked_name(session, link.app, pub, data, page.name_field, keyring),
            "state": run.status if run else "not_started",
            "passed": passed, "current": current,
            "missing": _missing(data, page), "documents": page.documents is not None,
            "contact": _contact(session, record) if page.contact else None}


def _steps(session: Session, run: FlowRun | None, page: PublicPage
           ) -> tuple[list[str], str | None]:
    """The plain words of the steps passed (in order, each once) and of the current one;
    with no listed step active, the last one passed is where the record stands."""
    if run is None:
        return [], None
    rows = session.execute(select(FlowStep.node_id, FlowStep.status).where(
        FlowStep.run_id == run.id, FlowStep.status != "cancelled").order_by(FlowStep.id)).all()
    active = [page.steps[n] for n, status in rows if status == "active" and n in page.steps]
    passed: list[str] = []
    for node, status in rows:
        words = page.steps.get(node)
        if status == "done" and words and words not in active:
            if words in passed:
                passed.remove(words)  # visited again (sent back): it counts where it is now
            passed.append(words)
    if active:
        return passed, "、".join(dict.fromkeys(active))
    return (passed[:-1], passed[-1]) if passed else ([], None)


def _text(spec: Any, value: Any) -> str | None:
    if value in (None, ""):
        return None
    return spec.field_type.format(value, spec) if spec is not None else str(value)


def _masked_name(session: Session, app: str, pub: Any, data: dict[str, Any],
                 path: str | None, keyring: Any) -> str | None:
    """``name_field`` (or ``relation.field`` of the linked record), masked by its type."""
    if not path:
        return None
    head, _, tail = path.partition(".")
    spec, value = pub.spec.field(head), data.get(head)
    if tail and spec is not None and spec.type == "relation":
        target_id = value[0] if isinstance(value, list) and value else value
        other = session.get(Record, target_id) if isinstance(target_id, int) else None
        target = spec.config.get("target")
        if other is None or other.deleted_at is not None or (other.app, other.form) != (
                app, target):
            return None
        target_pub = published(session, app, target)
        spec = target_pub.spec.field(tail)
        value = FieldCrypt(target_pub, keyring).open(other.data).get(tail)
    if spec is None or value in (None, ""):
        return None
    return spec.field_type.mask(value, spec)


def _missing(data: dict[str, Any], page: PublicPage) -> list[str]:
    docs = page.documents
    if docs is None:
        return []
    rows = data.get(docs.field) or []
    return [str(row[docs.item]) for row in rows if isinstance(row, dict)
            and row.get(docs.item) not in (None, "") and row.get(docs.received) is not True]


def _contact(session: Session, record: Record) -> dict[str, str | None] | None:
    owner = session.get(User, record.owner_id) if record.owner_id else None
    if owner is None or owner.status != "active":
        return None
    return {"name": owner.display_name, "phone": owner.mobile}
