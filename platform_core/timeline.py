"""One timeline per record: the registry of its sources and the keyset paging they share.

Each engine registers its *sources* at start-up (``register_source``): a source turns one
table (record history, flow history, tasks, rule runs, attachments …) into timeline
entries. The lower layer never imports the engines; the records service in
``engine_forms.timeline`` decides whose records are asked about (the record and the
related records the viewer may read) and merges what the sources return.

The order of events for one page:

1. the caller hands every source the same :class:`Ask` — the subjects (the record and
   the readable related records), the cursor, the page size;
2. each source runs **one** statement ``… WHERE record_id IN (…) AND <after cursor>
   ORDER BY time DESC, id DESC LIMIT page + 1`` (:func:`keyset`) and returns entries;
3. the entries are merged newest first (:func:`merge`); the page is the first ``page``
   of them and the cursor is the position of its last entry.

The position of an entry is ``(time, source, id)``: time first, then the source's key
and the row's id break ties, so paging never repeats or skips an entry whatever the
clocks say. Sources are independent, so a page costs one statement per source however
long the history is.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.orm import Session

from platform_core.errors import InvalidInput
from platform_core.registry import Registry

# the kinds a viewer filters by (stable keys; their labels are the pages')
KINDS = ("changes", "flow", "tasks", "automation", "follow_ups", "attachments")


class BadCursor(InvalidInput):
    code = "bad_cursor"


@dataclass(frozen=True)
class Subject:
    """A record whose entries the timeline shows: the record itself, or a related record
    (one that links to it) with its title — only ever one the viewer may read.
    ``view`` is what the records service knows about reading it (form, field rights)."""

    id: int
    app: str
    form: str
    related: bool = False
    title: str | None = None
    view: Any = None


@dataclass(frozen=True)
class Position:
    """Where an entry stands: newest first by time, then source key, then row id."""

    at: datetime
    source: str
    id: int

    def key(self) -> tuple[datetime, str, int]:
        return (_utc(self.at), self.source, self.id)

    def encode(self) -> str:
        raw = json.dumps([_utc(self.at).isoformat(), self.source, self.id])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Position:
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            at, source, row = raw
            if not isinstance(source, str) or not isinstance(row, int):
                raise ValueError
            return cls(datetime.fromisoformat(at), source, row)
        except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
            raise BadCursor("cursor: not a cursor this timeline handed out",
                            field="cursor") from None


@dataclass
class Entry:
    """One line of a timeline. ``action`` is a stable key (``update``, ``step_entered``,
    ``notified`` …) the page words; ``name`` is what it is about (a step, a rule, a
    file); ``changes`` are ``{field, label, from, to}`` as the viewer may see them."""

    position: Position
    kind: str
    action: str
    subject: Subject
    actor_id: int | None = None
    name: str | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def at(self) -> datetime:
        return _utc(self.position.at)


@dataclass(frozen=True)
class Ask:
    """What every source is asked: these subjects' entries older than ``after``, at most
    ``limit`` of them (the caller asks for a page + 1 to know whether more follow)."""

    subjects: Sequence[Subject]
    limit: int
    after: Position | None = None
    now: datetime | None = None

    def ids(self) -> list[int]:
        return [s.id for s in self.subjects]

    def subject(self, record_id: int) -> Subject:
        return self.by_id()[record_id]

    def by_id(self) -> dict[int, Subject]:
        return {s.id: s for s in self.subjects}


@dataclass(frozen=True)
class Source:
    """A registered source: the kind its entries have and the function producing them."""

    kind: str
    fetch: Callable[[Session, Ask], list[Entry]]


SOURCES: Registry[Source] = Registry("timeline source")


def register_source(key: str, kind: str, fetch: Callable[[Session, Ask], list[Entry]]
                    ) -> None:
    """Add a source (idempotent: an engine's ``register_builtins`` may run twice)."""
    if kind not in KINDS:
        raise ValueError(f"timeline kind {kind!r} is not one of {', '.join(KINDS)}")
    if key not in SOURCES:
        SOURCES.register(key, Source(kind, fetch))


def keyset(stmt: Any, *, time_col: Any, id_col: Any, source: str, ask: Ask) -> Any:
    """``stmt`` limited to rows after ``ask.after`` in timeline order, newest first, at
    most ``ask.limit`` of them — the one statement a source runs per page."""
    after = ask.after
    if after is not None:
        at = _utc(after.at)
        if source < after.source:  # same time: this source comes after the cursor's
            stmt = stmt.where(time_col <= at)
        elif source == after.source:
            stmt = stmt.where(or_(time_col < at, and_(time_col == at, id_col < after.id)))
        else:
            stmt = stmt.where(time_col < at)
    return stmt.order_by(time_col.desc(), id_col.desc()).limit(ask.limit)


def merge(batches: Iterable[list[Entry]], limit: int) -> tuple[list[Entry], Position | None]:
    """The newest ``limit`` entries of all batches and the cursor to the rest (None when
    nothing is left). Each batch is one source's answer in timeline order."""
    entries = sorted((e for batch in batches for e in batch),
                     key=lambda e: e.position.key(), reverse=True)
    if len(entries) <= limit:
        return entries, None
    page = entries[:limit]
    return page, page[-1].position


def _utc(moment: datetime) -> datetime:
    """Aware UTC (SQLite hands timestamps back without their zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
