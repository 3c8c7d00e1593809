"""Apps and forms: drafts, published versions, and the loaded spec a record write uses.

A form is edited as a draft (``put_draft``); ``publish`` validates it against the app
(relation targets must exist), records an immutable ``FormVersion`` with the diff from
the previous version, creates the indexes it declares and (if records exist) queues a
record migration (``engine_forms.versions``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session

from engine_forms.expr import CompiledForm, ExpressionProblems, compile_form
from engine_forms.models import App, Form, FormVersion
from engine_forms.spec import FormSpec, SpecError, load_form, shape_problems
from platform_core.db import dumps
from platform_core.errors import Conflict, InvalidInput, NotFound
from platform_core.models import utcnow
from platform_core.store import Actor, FieldSet
from platform_core.store.kinds import check_key


@dataclass(frozen=True)
class Published:
    """One published version of a form, compiled, with its store ``FieldSet``."""

    app: str
    version: int
    spec: FormSpec
    compiled: CompiledForm
    fields: FieldSet


def projected_fields(pub: Published) -> FieldSet:
    """The fields a typed projection of the form keeps (``platform_core.store.projection``):
    its typed fields plus its single relations (the linked record's id, a number), so
    reports group loans by their customer."""
    kinds = dict(pub.fields.kinds)
    for spec in pub.spec.fields:
        if spec.type == "relation" and not spec.config.get("multiple"):
            kinds[spec.key] = "number"
    return FieldSet(pub.app, pub.spec.key, kinds)


def create_app(session: Session, *, key: str, name: str, description: str | None = None) -> App:
    try:
        check_key(key)
    except ValueError as exc:
        raise InvalidInput(f"key: {exc}", field="key") from None
    if session.get(App, key) is not None:
        raise Conflict(f"app {key!r} already exists", app=key)
    app = App(key=key, name=name, description=description)
    session.add(app)
    session.flush()
    return app


def get_app(session: Session, key: str) -> App:
    app = session.get(App, key)
    if app is None:
        raise NotFound(f"app {key!r} does not exist", app=key)
    return app


def list_apps(session: Session) -> list[App]:
    return list(session.execute(select(App).order_by(App.key)).scalars())


def get_form(session: Session, app: str, key: str) -> Form:
    form = session.execute(select(Form).where(Form.app == app, Form.key == key)
                           ).scalar_one_or_none()
    if form is None:
        get_app(session, app)
        raise NotFound(f"form {key!r} does not exist in app {app!r}", app=app, form=key)
    return form


def list_forms(session: Session, app: str) -> list[Form]:
    get_app(session, app)
    return list(session.execute(select(Form).where(Form.app == app).order_by(Form.key))
                .scalars())


def _resolver(session: Session, app: str, pending: dict[str, FormSpec] | None = None) -> Any:
    def resolve(key: str) -> FormSpec | None:
        if pending and key in pending:
            return pending[key]
        try:
            return published(session, app, key).spec
        except NotFound:
            return None
    return resolve


def resolver(session: Session, app: str) -> Any:
    """``key → FormSpec | None``: the published forms of ``app``, for expression schemas
    that follow relations (``customer.mobile``)."""
    return _resolver(session, app)


def _target_problems(session: Session, app: str, spec: FormSpec) -> list[str]:
    resolve = _resolver(session, app, {spec.key: spec})
    return [f"{field.key!r}: relation target form {field.config['target']!r} is not "
            f"published in app {app!r}" for field in spec.fields
            if field.type == "relation" and resolve(field.config["target"]) is None]


def _load(session: Session, app: str, raw: Any) -> FormSpec:
    spec = load_form(raw)
    problems = _target_problems(session, app, spec)
    if not problems:
        try:
            compile_form(spec, _resolver(session, app, {spec.key: spec}))
        except ValueError as exc:
            problems = str(exc).splitlines()
    if problems:
        raise SpecError(problems)
    return spec


def check_draft(session: Session, app: str, raw: Any) -> list[dict[str, Any]]:
    """Every problem publishing ``raw`` would meet, each with the field it belongs to (when
    one does) and, for an expression, which one and the column: what the designer shows
    beside the box while the admin types. The same checks as a save and a publish."""
    spec, texts = shape_problems(raw)
    if spec is not None and not texts:
        texts = _target_problems(session, app, spec)
    items = [_located(t, raw) for t in texts]
    if spec is not None and not items:
        try:
            compile_form(spec, _resolver(session, app, {spec.key: spec}))
        except ExpressionProblems as exc:
            items = exc.items
        except ValueError as exc:  # a cycle of formulas
            items = [_located(str(exc), raw)]
    return items


def _located(text: str, raw: Any) -> dict[str, Any]:
    """A problem's text with the field it names: ``/fields/3: …`` or ``'key': …``."""
    field = None
    if m := re.match(r"/fields/(\d+)", text):
        fields = raw.get("fields") if isinstance(raw, dict) else None
        index = int(m.group(1))
        if isinstance(fields, list) and index < len(fields) and isinstance(fields[index], dict):
            field = fields[index].get("key")
    elif m := re.match(r"'([a-z][a-z0-9_]*)'", text):
        field = m.group(1)
    return {"field": field, "attr": None, "column": None, "message_zh": text,
            "message_en": text, "text": text}


def create_form(session: Session, *, app: str, raw: Any) -> Form:
    """Save a new form's first draft (validated as far as a draft can be)."""
    get_app(session, app)
    spec = load_form(raw)
    if session.execute(select(Form.id).where(Form.app == app, Form.key == spec.key)).first():
        raise Conflict(f"form {spec.key!r} already exists in app {app!r}", form=spec.key)
    form = Form(app=app, key=spec.key, draft=spec.dump())
    session.add(form)
    session.flush()
    _forget_stamps(session)
    return form


def put_draft(session: Session, *, app: str, key: str, raw: Any) -> Form:
    form = get_form(session, app, key)
    spec = load_form(raw)
    if spec.key != key:
        raise InvalidInput(f"key: a form's key cannot change ({key!r} → {spec.key!r})",
                           field="key")
    form.draft = spec.dump()
    form.updated_at = utcnow()
    session.flush()
    return form


def versions(session: Session, app: str, key: str) -> list[FormVersion]:
    get_form(session, app, key)
    stmt = select(FormVersion).where(FormVersion.app == app, FormVersion.form == key)
    return list(session.execute(stmt.order_by(FormVersion.version)).scalars())


def version_row(session: Session, app: str, key: str, version: int) -> FormVersion:
    row = session.execute(select(FormVersion).where(
        FormVersion.app == app, FormVersion.form == key, FormVersion.version == version)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"form {key!r} has no version {version}", app=app, form=key)
    return row


def published(session: Session, app: str, key: str, version: int | None = None) -> Published:
    """The published version (latest by default) of a form, compiled and cached.

    The common case costs one query: the app's forms with their published versions and
    publishing times, which identify the compiled form and the relation targets it was
    compiled against (published versions never change). Anything else takes the full
    path below and fills the cache.
    """
    stamps = _stamps(session, app)
    if version is None:
        if key not in stamps:
            get_form(session, app, key)  # raises the right NotFound
        if stamps[key][0] is None:
            raise NotFound(f"form {key!r} of app {app!r} has no published version yet",
                           app=app, form=key)
        version = stamps[key][0]
    targets = _TARGET_KEYS.get((app, key, version))
    if targets is not None and stamps.get(key, (None,))[0] == version:
        hit = _PUBLISHED.get((app, key, stamps[key], tuple(stamps.get(t) for t in targets)))
        if hit is not None:
            return hit
    row = version_row(session, app, key, version)
    result = _compiled(app, version, dumps(row.spec), _targets(session, app, key, row.spec))
    if stamps.get(key, (None,))[0] == version:
        keys = tuple(sorted({f["target"] for f in row.spec.get("fields", ())
                             if f.get("type") == "relation" and f.get("target") != key}))
        _TARGET_KEYS[(app, key, version)] = keys
        if len(_PUBLISHED) > 1024:
            _PUBLISHED.clear()
        _PUBLISHED[(app, key, stamps[key], tuple(stamps.get(t) for t in keys))] = result
    return result


# (app, form, version) → its relation targets; (app, form, stamp, targets' stamps) → the
# compiled form. A stamp is (published version, published at): unique per publication.
_TARGET_KEYS: dict[tuple[str, str, int], tuple[str, ...]] = {}
_PUBLISHED: dict[tuple[Any, ...], Published] = {}


def _stamps(session: Session, app: str) -> dict[str, tuple[int | None, Any]]:
    """Each form of the app: (published version, published at), read once per
    transaction: a request reads several forms (the one it writes, the ones its
    relations, lookups and rollups reach), and a save validated against one publication
    is what one user action should see. A form created or published in the transaction
    drops what was read (``_forget_stamps``), and so does the transaction's end."""
    cached = session.info.get(_STAMPS_KEY)
    if cached is None:
        cached = session.info[_STAMPS_KEY] = {}
    found = cached.get(app)
    if found is None:
        found = cached[app] = _read_stamps(session, app)
    return found


_STAMPS_KEY = "form_stamps"


def _forget_stamps(session: Session) -> None:
    session.info.pop(_STAMPS_KEY, None)


@event.listens_for(Session, "after_transaction_end")
def _stamps_end_with_the_transaction(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost: a session used again reads afresh
        session.info.pop(_STAMPS_KEY, None)


def _read_stamps(session: Session, app: str) -> dict[str, tuple[int | None, Any]]:
    rows = session.execute(_STAMPS, {"stamps_app": app}).all()
    return {r.key: (r.published_version, r.published_at) for r in rows}


# built once (every write of a record runs it; building it cost as much as running it)
_STAMPS = (select(Form.key, Form.published_version, FormVersion.published_at)
           .outerjoin(FormVersion, (FormVersion.app == Form.app)
                      & (FormVersion.form == Form.key)
                      & (FormVersion.version == Form.published_version))
           .where(Form.app == bindparam("stamps_app")))


def _targets(session: Session, app: str, key: str, spec: dict[str, Any]
             ) -> tuple[tuple[str, str], ...]:
    """The published specs (as JSON) of the forms this one's relations point at: part of
    the cache key, so a change of a target form recompiles ``customer.city`` formulas."""
    keys = sorted({f["target"] for f in spec.get("fields", ())
                   if f.get("type") == "relation" and f.get("target") != key})
    found = []
    for target in keys:
        form = session.execute(select(Form).where(Form.app == app, Form.key == target)
                               ).scalar_one_or_none()
        if form is not None and form.published_version is not None:
            found.append((target, dumps(version_row(session, app, target,
                                                    form.published_version).spec)))
    return tuple(found)


@lru_cache(maxsize=256)
def _compiled(app: str, version: int, spec_json: str,
              targets: tuple[tuple[str, str], ...]) -> Published:
    spec = FormSpec.model_validate_json(spec_json)
    others = {k: FormSpec.model_validate_json(v) for k, v in targets}
    others[spec.key] = spec
    compiled = compile_form(spec, others.get)
    # The store sees an encrypted field only through its blind index (engine_forms.sealing).
    kinds = {k: "sealed" if (f := spec.field(k)) and f.sensitive and f.sensitive.encrypt
             else kind for k, kind in compiled.kinds.items()}
    # A single relation filters and sorts as the linked record's id (a number); one to
    # many records filters by the ids it holds (record_links).
    kinds |= {f.key: "number" for f in spec.fields
              if f.type == "relation" and not f.config.get("multiple")}
    links = frozenset(f.key for f in spec.fields
                      if f.type == "relation" and f.config.get("multiple"))
    return Published(app, version, spec, compiled, FieldSet(app, spec.key, kinds, links))


def record_version(session: Session, *, app: str, form: Form, spec: FormSpec,
                   changes: dict[str, Any], actor: Actor) -> FormVersion:
    version = (form.published_version or 0) + 1
    row = FormVersion(app=app, form=form.key, version=version, spec=spec.dump(),
                      changes=changes, published_by=actor.user_id)
    session.add(row)
    form.published_version = version
    form.updated_at = utcnow()
    session.flush()
    _forget_stamps(session)
    return row


load_for_publish = _load
