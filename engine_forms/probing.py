"""The one signal a write cannot hide: a unique value already used — and its limit.

A ``unique`` field must stay unique across the whole form, so a write whose value is
used answers "already used" even when the record holding it is outside the writer's
scope (a salesperson typing a mobile number a colleague's customer has). Everything else
about a record the writer may not read answers exactly like a record that does not exist
(relation values: ``engine_forms.records``; ids: ``service.load_scoped``); this one bit
cannot, so it is rationed instead:

- every unique conflict a user meets is audited as ``record.unique_conflict`` (target
  ``app.form``, detail: the fields, never the value), in a transaction of its own, since
  the refused write's own transaction rolls back;
- a user who met ``BUDGET`` conflicts in the last ``WINDOW`` is refused (429
  ``rate_limited``, ``Retry-After``) any write that sets a unique field, conflicting or
  not, until the oldest of them is ``WINDOW`` old — a refusal that came only for used
  values would answer the very question it guards. Refusals are audited as
  ``record.unique_conflict_refused``; they do not count against the budget.

The count is read from the audit log (index on action and time), so it is shared by
every process and survives restarts; conflicts of the current transaction not yet
audited count too (a bulk request of 1,000 items is not 1,000 free probes). Imports are
not rationed: an import reports each row whose value is used, which is what an import is
for; the ``import`` right is the gate (``docs/security.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine_forms.forms import Published
from engine_forms.records import DuplicateValue
from engine_forms.validation import RecordInvalid
from platform_core.db import afterwards
from platform_core.http import RateLimited
from platform_core.models import utcnow
from platform_core.security import audit
from platform_core.security.models import AuditEntry

BUDGET = 30
WINDOW = timedelta(minutes=10)
CONFLICT = "record.unique_conflict"
REFUSED = "record.unique_conflict_refused"
_PENDING = "qiao_unique_conflicts"  # session.info: conflicts of this transaction


def unique_keys(pub: Published, payloads: Iterable[Mapping[str, Any]]) -> list[str]:
    """The unique fields the payloads set (to a value)."""
    unique = [f.key for f in pub.spec.fields if f.unique]
    return [k for k in unique if any(p.get(k) is not None and p.get(k) != ""
                                     for p in payloads)]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check(session: Session, caller: Any, pub: Published, keys: list[str]) -> None:
    user_id = caller.principal.user_id
    since = utcnow() - WINDOW
    count, oldest = session.execute(
        select(func.count(AuditEntry.id), func.min(AuditEntry.at)).where(
            AuditEntry.action == CONFLICT, AuditEntry.at >= since,
            AuditEntry.actor_id == user_id)).one()
    if count + session.info.get(_PENDING, 0) < BUDGET:
        return
    wait = ((_aware(oldest) + WINDOW - utcnow()).total_seconds() if oldest is not None
            else WINDOW.total_seconds())
    target = f"{pub.app}.{pub.spec.key}"
    afterwards(session, lambda s: audit.append(
        s, actor=caller.principal.actor, action=REFUSED, target=target,
        detail={"fields": keys}, client=caller.client))
    raise RateLimited(f"{BUDGET} writes within {int(WINDOW.total_seconds() // 60)} minutes "
                      "met a value already used; writes that set a unique field "
                      "(" + ", ".join(keys) + ") wait", retry_after=wait)


def _met(session: Session, caller: Any, pub: Published, keys: list[str]) -> None:
    session.info[_PENDING] = session.info.get(_PENDING, 0) + 1
    target = f"{pub.app}.{pub.spec.key}"
    afterwards(session, lambda s: audit.append(
        s, actor=caller.principal.actor, action=CONFLICT, target=target,
        detail={"fields": sorted(keys)}, client=caller.client))


@contextmanager
def rationed(session: Session, caller: Any, pub: Published,
             payloads: Iterable[Mapping[str, Any]]) -> Iterator[None]:
    """Around one write (or one all-or-nothing batch) of ``caller`` that may set unique
    fields: refused with 429 when their budget is spent; a unique conflict it raises is
    audited and counted. A write by no user (the system, a flow, a rule) is not
    rationed."""
    keys = unique_keys(pub, payloads)
    if not keys or caller.principal.user_id is None:
        yield
        return
    _check(session, caller, pub, keys)
    try:
        yield
    except DuplicateValue as exc:
        _met(session, caller, pub, [exc.extra.get("field") or keys[0]])
        raise
    except RecordInvalid as exc:
        used = sorted({p.field for p in exc.problems if p.code == "duplicate"})
        if used:
            _met(session, caller, pub, used)
        raise
