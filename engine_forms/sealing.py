"""Fields flagged ``sensitive.encrypt``: sealed before they reach the store, opened when
presented.

A sealed value is ``{"$enc": "<key id>:<AES-256-GCM ciphertext>", "bi": "<blind
index>"}`` (``platform_core.security.crypto``), bound to ``app.form.field`` so it cannot
be moved to another field. The store's SQL sees only the blind index (value kind
``sealed``): exact-match filters are rewritten to compare blind indexes, and a unique
encrypted field is enforced on the blind index too. Sorting or range filters on an
encrypted field are refused — the order of ciphertexts means nothing.

Reading is forgiving, writing is not. A value no key of the keyring opens (a restore
without its keys, a tampered byte) is *unavailable* where records are shown: ``shown``
gives it as None and names its field, so the API answers ``null`` with the field listed
under ``_unavailable`` and a page shows a marker, while the rest of the record and of
the page stays readable; the problem is logged once per field and key, not per row. A
write (``open``) still refuses, so an unchanged value is never replaced by a blank.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from engine_forms.forms import Published
from platform_core.errors import QueryError
from platform_core.security.crypto import Keyring, UndecryptableValue, is_sealed, key_id

log = logging.getLogger("qiao.security")
_reported: set[tuple[str, str]] = set()  # (context, key id) already logged by this process


class Unavailable(str):
    """What a page is handed for a value no key opens: an empty string (so a widget shows
    nothing) that ``frontend``'s ``Shown.text`` recognises to show its marker."""

    __slots__ = ()


UNAVAILABLE = Unavailable("")


def _report(context: str, sealed: Any, exc: UndecryptableValue) -> None:
    """Log an unopenable value once per field and key, however many rows hold one."""
    try:
        kid = key_id(sealed)
    except UndecryptableValue:
        kid = "?"
    if (context, kid) in _reported:
        return
    _reported.add((context, kid))
    log.warning("values of %s sealed under key %s cannot be opened (%s); they show as "
                "unavailable — see `qiao keys status`", context, kid, exc.detail)

EXACT_OPS = frozenset({"eq", "ne", "in", "not_in", "is_empty", "is_not_empty"})


def encrypted_keys(pub: Published) -> frozenset[str]:
    return frozenset(f.key for f in pub.spec.fields if f.sensitive and f.sensitive.encrypt)


@dataclass(frozen=True)
class FieldCrypt:
    """Seal/open one form's encrypted fields with the installation's keyring."""

    pub: Published
    keyring: Keyring | None

    @cached_property
    def keys(self) -> frozenset[str]:
        return encrypted_keys(self.pub)

    def _context(self, key: str) -> str:
        return f"{self.pub.app}.{self.pub.spec.key}.{key}"

    def _ring(self) -> Keyring:
        if self.keyring is None:
            raise RuntimeError(f"form {self.pub.spec.key} has encrypted fields: pass a keyring")
        return self.keyring

    def seal(self, data: Mapping[str, Any], previous: Mapping[str, Any] | None = None
             ) -> dict[str, Any]:
        """``data`` with encrypted fields sealed; an unchanged value keeps its previous
        ciphertext (so history shows no change where there was none)."""
        keys = self.keys
        if not keys:
            return dict(data)
        out = dict(data)
        for key in keys:
            value = out.get(key)
            if value is None or is_sealed(value):
                continue
            old = (previous or {}).get(key)
            if is_sealed(old) and self.open_value(key, old) == value:
                out[key] = old
            else:
                out[key] = self._ring().seal(value, context=self._context(key))
        return out

    def open_value(self, key: str, value: Any) -> Any:
        if not is_sealed(value):
            return value
        return self._ring().unseal(value, context=self._context(key))

    def shown(self, data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``data`` opened for reading, and the fields whose value no key opens (given as
        None, logged once): one bad value does not take the record or its page down."""
        out, unavailable = {}, []
        for key, value in data.items():
            try:
                out[key] = self.open_value(key, value)
            except UndecryptableValue as exc:
                _report(self._context(key), value, exc)
                out[key] = None
                unavailable.append(key)
        return out, unavailable

    def shown_diff(self, diff: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """A history diff opened for reading like ``shown``: each side that does not open
        is None, and its field is named."""
        out, unavailable = {}, []
        for key, pair in diff.items():
            if not isinstance(pair, list):
                out[key] = pair
                continue
            sides = []
            for value in pair:
                try:
                    sides.append(self.open_value(key, value))
                except UndecryptableValue as exc:
                    _report(self._context(key), value, exc)
                    sides.append(None)
                    if key not in unavailable:
                        unavailable.append(key)
            out[key] = sides
        return out, unavailable

    def open(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` with every sealed value opened (also of a field whose ``encrypt`` flag
        was just turned off and whose values are not yet opened in the database)."""
        return {k: self.open_value(k, v) for k, v in data.items()}

    def open_diff(self, diff: Mapping[str, Any]) -> dict[str, Any]:
        """A history diff ``{field: [old, new]}`` with sealed values opened."""
        return {k: [self.open_value(k, v) for v in pair] if isinstance(pair, list) else pair
                for k, pair in diff.items()}

    def blind_filter(self, node: Any) -> Any:
        """Rewrite filter leaves on encrypted fields to compare blind indexes."""
        keys = self.keys
        if not keys or node is None:
            return node
        return self._rewrite(node, keys, "filter")

    def _rewrite(self, node: Any, keys: frozenset[str], path: str) -> Any:
        if not isinstance(node, dict):
            return node
        if "and" in node or "or" in node:
            op = "and" if "and" in node else "or"
            if not isinstance(node[op], list):
                return node  # malformed: the store's validation names the problem
            return {**node, op: [self._rewrite(n, keys, f"{path}.{op}[{i}]")
                                 for i, n in enumerate(node[op])]}
        if "not" in node:
            return {"not": self._rewrite(node["not"], keys, f"{path}.not")}
        key = node.get("field")
        if key not in keys or "value" not in node:
            if key in keys and node.get("op") not in EXACT_OPS:
                raise QueryError(f"{key} is encrypted: only exact matches (eq, ne, in, "
                                 "not_in, is_empty) are possible", path=path)
            return node
        op = node.get("op")
        if op not in EXACT_OPS:
            raise QueryError(f"{key} is encrypted: only exact matches (eq, ne, in, not_in, "
                             "is_empty) are possible", path=path)
        field = self.pub.spec.field(key)
        values = node["value"] if isinstance(node["value"], list) else [node["value"]]
        blinded = []
        for value in values:
            try:
                value = field.field_type.coerce(value, field)
            except ValueError:
                pass  # an uncoercible value simply matches nothing
            blinded.append(self._ring().blind(value, context=self._context(key)))
        return node | {"value": blinded if isinstance(node["value"], list) else blinded[0]}


def seal_existing(db: Any, keyring: Keyring, app: str, form: str, *, batch: int = 500) -> int:
    """After a version changes which fields are encrypted: seal the values stored in
    clear before a field was flagged ``encrypt``, and open those of a field no longer
    flagged — in records, their history and outbox events, in batches, without a new row
    version. Returns how many documents changed; running it again finds nothing to do."""
    from sqlalchemy import select

    from engine_forms.forms import published
    from platform_core.models import OutboxEvent, Record, RecordHistory

    with db.read() as session:
        keys = encrypted_keys(published(session, app, form))

    def context(key: str) -> str:
        return f"{app}.{form}.{key}"

    def convert(key: str, value: Any) -> Any:
        if value is None:
            return None
        if key in keys:
            return value if is_sealed(value) else keyring.seal(value, context=context(key))
        return keyring.unseal(value, context=context(key)) if is_sealed(value) else value

    def seal_doc(doc: dict[str, Any], pairs: bool) -> dict[str, Any] | None:
        out = {k: [convert(k, x) for x in v] if pairs and isinstance(v, list) else
               v if pairs else convert(k, v) for k, v in doc.items()}
        return out if out != doc else None

    def outbox_doc(payload: dict[str, Any], _pairs: bool) -> dict[str, Any] | None:
        changes = payload.get("changes")
        new = seal_doc(changes, True) if isinstance(changes, dict) else None
        return None if new is None else payload | {"changes": new}

    places = [
        (Record, "data", seal_doc, False,
         select(Record).where(Record.app == app, Record.form == form)),
        (RecordHistory, "diff", seal_doc, True, select(RecordHistory).join(
            Record, Record.id == RecordHistory.record_id).where(Record.app == app,
                                                                Record.form == form)),
        (OutboxEvent, "payload", outbox_doc, True,
         select(OutboxEvent).where(OutboxEvent.app == app, OutboxEvent.form == form)),
    ]
    changed = 0
    for model, column, sealer, pairs, base in places:
        after = 0
        while True:
            with db.write() as session:
                rows = list(session.execute(base.where(model.id > after).order_by(model.id)
                                            .limit(batch)).scalars())
                for row in rows:
                    new = sealer(getattr(row, column) or {}, pairs)
                    if new is not None:
                        setattr(row, column, new)
                        changed += 1
            if len(rows) < batch:
                break
            after = rows[-1].id
    return changed
