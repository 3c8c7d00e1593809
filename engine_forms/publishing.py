"""``publish``: turn a form's draft into its next immutable version.

Order of events: validate the draft against the app (relation targets) → diff from the
current version → (dry run: report what converting the existing records would do, write
nothing) → record the version → drop indexes of fields no longer indexed or whose kind
changed, create the declared ones (a unique index over duplicate data refuses the
publish) → queue a record migration when existing records need converting. All in the
caller's transaction; the migration itself runs afterwards in batches (the publishing
request's process starts it; ``send_migrations`` takes over one whose process died).
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine_forms.expr import compile_form
from engine_forms.forms import (
    Published,
    _resolver,
    get_form,
    load_for_publish,
    projected_fields,
    published,
    record_version,
    version_row,
)
from engine_forms.models import FormMigration
from engine_forms.records import env_for
from engine_forms.spec import SpecError
from engine_forms.versions import (
    claim_migration,
    count_pending,
    diff_specs,
    dry_run,
    impact,
    migration_worker,
    needs_migration,
    run_claimed,
)
from platform_core.store import Actor, drop_index, ensure_index, indexes_of
from platform_core.store.projection import ensure_projection, has_projection


def _sync_indexes(session: Session, pub: Published) -> None:
    wanted = {(f.key, False) for f in pub.spec.fields if f.indexed}
    # a unique field also gets the plain index: it is looked up by value (duplicate checks,
    # upserts), and a unique index limited to one form cannot serve a query with the form
    # as a bound parameter
    wanted |= {(f.key, u) for f in pub.spec.fields if f.unique for u in (True, False)}
    for index in indexes_of(session, pub.app, pub.spec.key):
        if (index.field, index.unique) not in wanted or \
                pub.compiled.kinds.get(index.field) != index.kind:
            drop_index(session, index.name)
    for key, unique in sorted(wanted):
        try:
            with session.begin_nested():
                ensure_index(session, pub.fields, key, unique=unique)
        except IntegrityError:
            raise SpecError([f"{key!r}: existing records have duplicate values, so the field "
                             "cannot be made unique; clean them up first"]) from None


def migration_chain(session: Session, app: str, form: str, from_version: int,
                    to_version: int) -> list[tuple[Any, Any]]:
    """(changes, compiled form) of each version after ``from_version`` up to ``to_version``."""
    chain = []
    for version in range(from_version + 1, to_version + 1):
        pub = published(session, app, form, version)
        chain.append((version_row(session, app, form, version).changes, pub.compiled))
    return chain


def publish(session: Session, *, app: str, key: str, actor: Actor,
            dry: bool = False) -> dict[str, Any]:
    """Publish the draft of ``app``/``key`` (or, ``dry``, only report what would happen)."""
    form = get_form(session, app, key)
    spec = load_for_publish(session, app, form.draft)
    old = published(session, app, key) if form.published_version else None
    changes = diff_specs(old.spec if old else None, spec)
    next_version = (form.published_version or 0) + 1
    pending = count_pending(session, app, key, next_version) if old else 0
    convert = bool(pending) and needs_migration(changes)
    if dry:
        compiled = compile_form(spec, _resolver(session, app, {key: spec}))

        def load(s: Session, a: str, f: str, start: int, _end: int) -> list[Any]:
            return [*migration_chain(s, a, f, start, next_version - 1), (changes, compiled)]

        report = (dry_run(session, app=app, form=key, version=next_version, load=load)
                  if convert else
                  {"records": pending, "would_convert": 0, "would_fail": 0, "failures": []})
        report["impact"] = impact(session, app=app, form=key, version=next_version,
                                  changes=changes, old=old.spec, new=compiled,
                                  env=env_for(session)) if old else []
        return {"dry_run": True, "version": next_version, "changes": changes,
                "migration": report}
    row = record_version(session, app=app, form=form, spec=spec, changes=changes, actor=actor)
    pub = published(session, app, key, row.version)
    _sync_indexes(session, pub)
    if has_projection(session, app, key):  # kept for reports: follow the new fields
        ensure_projection(session, projected_fields(pub))
    job = None
    if convert:
        job = FormMigration(app=app, form=key, from_version=old.version,
                            to_version=row.version, total=pending, failures=[],
                            actor=asdict(actor))
        session.add(job)
        session.flush()
    return {"dry_run": False, "version": row.version, "changes": changes,
            "migration": None if job is None else {"id": job.id, "status": job.status,
                                                   "total": job.total}}


# -- in the background ----------------------------------------------------------------------

_running: dict[str, threading.Thread] = {}
_lock = threading.Lock()


def send_migrations(ctx: Any, client: Any, now: Any, worker: str) -> int:  # noqa: ARG001
    """The background tick's entry (``platform_core.scans.SENDERS``: ``forms.migrations``):
    when this process runs no migration, claim an unfinished one nobody runs — queued by a
    publish whose process stopped, or interrupted with its lease run out — and continue it
    after its cursor on a thread of its own; 1 when it started one. So a start of
    ``qiao serve`` or ``qiao worker`` resumes what a crash left."""
    with _lock:
        thread = _running.get("migration")
        if thread is not None and thread.is_alive():
            return 0
        me = migration_worker()
        job_id = claim_migration(ctx.db, me)
        if job_id is None:
            return 0
        thread = threading.Thread(target=run_claimed, args=(ctx.db, job_id, me),
                                  kwargs={"load": migration_chain},
                                  name=f"qiao-form-migration-{job_id}", daemon=True)
        _running["migration"] = thread
        thread.start()
        return 1
