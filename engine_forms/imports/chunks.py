"""One chunk of an import, in the caller's transaction: rows → records.

Order of events: read and coerce the rows (``RowReader``: a row with a problem is left
out) → per unique field the chunk fills, find the values already used, by one query per
1,000 values (encrypted fields through their blind index) and those seen earlier in the
file → by mode: ``insert`` reports a used value as a problem; ``skip`` skips a row whose
key is used; ``upsert`` updates the record holding the key (inside the caller's update
row scope), remembering the stored values it replaces → create the new records with one
``create_many`` (a row it refuses is reported and the rest created again) → the preview
(the first rows as the caller sees them once stored).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_forms import records as handler
from engine_forms.forms import Published, published
from engine_forms.imports.mapping import Mapping, RowReader
from engine_forms.imports.reading import column_letter
from engine_forms.models import ImportBatch
from engine_forms.service import Caller, narrowed, scoped_query, view
from engine_forms.validation import RecordInvalid
from platform_core.db import FreshStatistics
from platform_core.errors import Conflict
from platform_core.security.permissions import ACTIONS, Forbidden
from platform_core.security.principal import Principal, load_principal
from platform_core.store import Query, query_records

PREVIEW_ROWS = 20
SLICE = 1000  # the store's list queries take at most 1,000 values


@dataclass
class Result:
    """What one chunk did (rows = how many rows of the file it consumed)."""

    rows: int
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    import_rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    preview: list[dict[str, Any]] | None = None


def system_principal() -> Principal:
    """The command line without ``--as``: every right, acting as the system."""
    return Principal(user_id=None, username="qiao cli", display_name="qiao cli",  # type: ignore[arg-type]
                     department_id=None, roles=("admin",), via="session",
                     role_perms=({"admin": True, "forms": {"*": {
                         "actions": list(ACTIONS), "scope": "all"}}},))


def caller_for(session: Session, batch: ImportBatch, keyring: Any) -> Caller:
    """The batch's importer with their rights as they are now."""
    from platform_core.security.models import User

    if batch.user_id is None:
        principal = system_principal()
    else:
        user = session.get(User, batch.user_id)
        if user is None or user.status != "active":
            raise Forbidden(f"the importer (user {batch.user_id}) is no longer active")
        principal = load_principal(session, user, via="session")
    return Caller(principal, principal.access(batch.app, batch.form), keyring,
                  client="import")


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict | list) \
        else value


class Job:
    """A batch's compiled parts (form, importer, row reader, mode), built once per run."""

    def __init__(self, session: Session, batch: ImportBatch, keyring: Any):
        self.pub: Published = published(session, batch.app, batch.form)
        self.caller = narrowed(session, caller_for(session, batch, keyring), self.pub)
        self.mapping = Mapping.model_validate(batch.mapping)
        self.reader = RowReader(session, self.caller, self.pub, self.mapping)
        self.mode: str = batch.options.get("mode", "insert")
        self.key: str | None = batch.options.get("key")
        self.crypt = self.caller.crypt(self.pub)
        mapped = {c.field: c for c in self.mapping.columns if c.field}
        self.where = {k: (column_letter(c.column), c.header) for k, c in mapped.items()}
        self.uniques = [f.key for f in self.pub.spec.fields if f.unique and f.key in mapped]
        self.seen: dict[str, dict[Any, int]] = {u: {} for u in self.uniques}
        self.statistics = FreshStatistics()  # the look-ups of unique values plan on them

    @classmethod
    def build(cls, session: Session, batch: ImportBatch, keyring: Any) -> Job:
        return cls(session, batch, keyring)

    def cancel_requested(self, db: Any, batch_id: int) -> bool:
        """Read in a session of its own (an atomic run's transaction cannot see it)."""
        with db.read() as s:
            return bool(s.execute(select(ImportBatch.cancel_requested).where(
                ImportBatch.id == batch_id)).scalar_one())

    def problem(self, row: int, key: str | None, value: Any, zh: str, en: str
                ) -> dict[str, Any]:
        letter, header = self.where.get(key, (None, None)) if key else (None, None)
        spec = self.pub.spec.field(key) if key else None
        label = spec.label if spec is not None else key
        return {"row": row, "column": letter, "header": header, "field": key,
                "value": None if value is None else str(value),
                "reason": f"{label}: {zh}" if label else zh,
                "reason_en": f"{key}: {en}" if key else en}

    def stated(self, row: int, key: str | None, value: Any, zh: str, en: str
               ) -> dict[str, Any]:
        """A problem whose reason already names its field (the validator's)."""
        return self.problem(row, key, value, "", "") | {"reason": zh, "reason_en": en}

    # -- the chunk ----------------------------------------------------------------------

    def chunk(self, s: Session, rows: list[tuple[int, list[Any]]], *,
              preview: bool) -> Result:
        self.reader.session = s  # relation look-ups run in this chunk's transaction
        result = Result(rows=len(rows))
        bad: dict[int, list[dict[str, Any]]] = {}
        good: list[tuple[int, dict[str, Any]]] = []
        for number, payload, problems in self.reader.read(rows):
            if payload is None:
                bad[number] = problems
            else:
                good.append((number, payload))
        creates, updates = self._sort(s, good, bad, result)
        written = self._update(s, updates, bad, result) + self._create(s, creates, bad, result)
        self.statistics.wrote(s, len(written))
        written.sort()
        result.failed = len(bad)
        result.problems = [p for n in sorted(bad) for p in bad[n]]
        if preview and written:
            result.preview = self._preview(s, written[:PREVIEW_ROWS])
        return result

    def _existing(self, s: Session, key: str, values: set[Any]) -> dict[Any, Any]:
        """Stored value (opened) → live record, for ``values`` of a unique field."""
        found: dict[Any, Any] = {}
        ordered = sorted(values, key=str)
        for i in range(0, len(ordered), SLICE):
            part = ordered[i: i + SLICE]
            flt = self.crypt.blind_filter({"field": key, "op": "in", "value": part})
            # sorted by the field itself: the planner then seeks the field's unique index
            # per value; the default newest-first order made it walk every record of the
            # form for each chunk, so a large import slowed down as it went
            page = query_records(s, Query(self.pub.fields, filter=flt, sort=[key],
                                          limit=len(part)))
            for rec in page.records:
                found[_hashable(self.crypt.open_value(key, rec.data.get(key)))] = rec
        return found

    def _sort(self, s: Session, good: list[tuple[int, dict[str, Any]]],
              bad: dict[int, list[dict[str, Any]]], result: Result
              ) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, dict[str, Any], Any]]]:
        """Rows to create and rows to update (with their record), by mode; duplicates
        reported or skipped."""
        found = {u: self._existing(s, u, {_hashable(p[u]) for _, p in good
                                          if p.get(u) is not None}) for u in self.uniques}
        creates, updates = [], []
        for number, payload in good:
            target, outcome = None, None
            for u in self.uniques:
                if payload.get(u) is None:
                    continue
                value = _hashable(payload[u])
                first, rec = self.seen[u].get(value), found[u].get(value)
                if u == self.key and self.mode == "skip" and (first or rec) is not None:
                    outcome = "skip"
                elif first is not None:
                    outcome = self.problem(number, u, payload[u], f"与第 {first} 行重复",
                                           f"the same value as row {first}")
                elif rec is not None and u == self.key and self.mode == "upsert":
                    target = rec
                    continue
                elif rec is not None and (target is None or rec.id != target.id):
                    outcome = self.problem(number, u, payload[u], "该值已被另一条记录使用",
                                           "this value is already used by another record")
                else:
                    continue
                break
            if outcome == "skip":
                result.skipped += 1
                continue
            if outcome is not None:
                bad[number] = [outcome]
                continue
            for u in self.uniques:
                if payload.get(u) is not None:
                    self.seen[u][_hashable(payload[u])] = number
            if target is None:
                creates.append((number, payload))
            else:
                updates.append((number, payload, target))
        return creates, updates

    def _updatable(self, s: Session, ids: list[int]) -> set[int]:
        allowed: set[int] = set()
        for i in range(0, len(ids), SLICE):
            part = ids[i: i + SLICE]
            flt = scoped_query(s, self.caller, "update",
                               {"field": "id", "op": "in", "value": part})
            page = query_records(s, Query(self.pub.fields, filter=flt, limit=len(part)))
            allowed |= {r.id for r in page.records}
        return allowed

    def _update(self, s: Session, updates: list[tuple[int, dict[str, Any], Any]],
                bad: dict[int, list[dict[str, Any]]], result: Result
                ) -> list[tuple[int, int, str]]:
        """Upsert's updates, one by one through the records handler (its validation,
        uniqueness and links); the stored values they replace are kept for a revert."""
        written = []
        allowed = self._updatable(s, [rec.id for _, _, rec in updates]) if updates else set()
        actor = self.caller.principal.actor
        for number, payload, rec in updates:
            if rec.id not in allowed:
                bad[number] = [self.problem(number, self.key, payload.get(self.key),
                                            "已有这条记录，但不在你可修改的范围内",
                                            "the record exists but you may not update it")]
                continue
            try:
                new = handler.update(s, self.pub, rec.id, payload,
                                     expected_version=rec.row_version, actor=actor,
                                     crypt=self.crypt, reader=self.caller.principal)
            except RecordInvalid as exc:
                bad[number] = [self.stated(number, p.field, payload.get(p.field), p.zh, p.en)
                               for p in exc.problems]
                continue
            except Conflict as exc:
                bad[number] = [self.problem(number, getattr(exc, "extra", {}).get("field"),
                                            None, exc.detail, exc.detail)]
                continue
            if new.row_version == rec.row_version:  # nothing changed
                result.skipped += 1
                continue
            result.updated += 1
            result.import_rows.append({
                "row": number, "record_id": rec.id, "action": "updated",
                "before": {k: rec.data.get(k) for k in payload},
                "version_after": new.row_version})
            written.append((number, rec.id, "updated"))
        return written

    def _create(self, s: Session, creates: list[tuple[int, dict[str, Any]]],
                bad: dict[int, list[dict[str, Any]]], result: Result
                ) -> list[tuple[int, int, str]]:
        """One ``create_many`` for the chunk; rows it refuses are reported and the rest
        created (validation writes nothing, so the retry starts clean)."""
        pending = creates
        actor = self.caller.principal.actor
        while pending:
            try:
                ids = handler.create_many(s, self.pub, [p for _, p in pending], actor=actor,
                                          crypt=self.crypt, reader=self.caller.principal)
            except handler.BulkInvalid as exc:
                refused = set()
                for e in exc.extra["errors"]:
                    number, payload = pending[e["index"]]
                    refused.add(e["index"])
                    bad.setdefault(number, []).append(self.stated(
                        number, e.get("field"), payload.get(e.get("field") or ""),
                        e["message"], e["message_en"]))
                pending = [item for i, item in enumerate(pending) if i not in refused]
                continue
            result.created += len(ids)
            result.import_rows += [{"row": n, "record_id": rid, "action": "created",
                                    "before": None, "version_after": 1}
                                   for (n, _), rid in zip(pending, ids, strict=True)]
            return [(n, rid, "created") for (n, _), rid in zip(pending, ids, strict=True)]
        return []

    def _preview(self, s: Session, written: list[tuple[int, int, str]]) -> list[dict[str, Any]]:
        ids = [rid for _, rid, _ in written]
        page = query_records(s, Query(self.pub.fields, filter={
            "field": "id", "op": "in", "value": ids}, limit=len(ids)))
        docs = {d["id"]: d for d in view(s, self.caller, self.pub, page.records)}
        return [{"row": n, "action": action, "id": rid, "data": docs[rid]["data"]}
                for n, rid, action in written if rid in docs]


__all__ = ["Job", "Result", "caller_for", "system_principal"]
