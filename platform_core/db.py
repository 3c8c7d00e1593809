"""Engines and sessions. One user action = one ``Database.write()`` block = one transaction.

SQLite runs in WAL mode with foreign keys and a busy timeout; a write transaction starts
with ``BEGIN IMMEDIATE`` so a read-then-write never fails half-way on a lock upgrade.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Engine,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

_BEGIN_OPTION = "qiao_sqlite_begin"
WRITE_QUEUE_SECONDS = 30.0  # how long a SQLite write waits for this process's other writers
log = logging.getLogger(__name__)

_orjson_loads: Callable[[str | bytes], Any] | None
try:
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - optional speed-up
    _orjson_loads = None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)


def dumps(value: Any) -> str:
    """The one JSON encoder of the store (Decimal → canonical string, UTF-8 kept); made
    once, not per document as ``json.dumps`` with options does."""
    return _ENCODER.encode(value)


# orjson reads an integer outside [-2**63, 2**64) as a float; every such float has a
# magnitude of at least 2**63, so only a document holding one is read again by json.
_BIG = float(2**63)
_CONTAINERS = (dict, list)


def _suspect(value: Any) -> bool:
    """Whether a document decoded by orjson may differ from what json.loads returns."""
    kind = type(value)
    if kind is float:
        return not -_BIG < value < _BIG
    if kind is not dict and kind is not list:
        return False
    items = value.values() if kind is dict else value
    kinds = set(map(type, items))
    if float in kinds and any(type(x) is float and not -_BIG < x < _BIG for x in items):
        return True
    if dict in kinds or list in kinds:
        return any(_suspect(x) for x in items if type(x) in _CONTAINERS)
    return False


def loads(text: str | bytes) -> Any:
    """The one JSON decoder of the store: what ``json.loads`` returns, faster.

    orjson when it is installed; ``json.loads`` for what orjson refuses (NaN, lone
    surrogates, …) or may read differently (integers beyond 64 bits).
    """
    if _orjson_loads is None:
        return json.loads(text)
    try:
        value = _orjson_loads(text)
    except ValueError:  # orjson.JSONDecodeError, also for an input of another type
        return json.loads(text)
    return json.loads(text) if _suspect(value) else value


# bytes → b"0" for a digit, b" " otherwise: an integer orjson may misread has 19+ digits.
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_NUMBER = b"0" * 19


def loads_many(texts: Sequence[Any]) -> list[Any]:
    """``[loads(t) for t in texts]``, a None staying None: a column of JSON documents.

    For a column of UTF-8 bytes, one pass over all of them shows that none has a number
    orjson could read differently (no run of 19 digits): the common page is checked at
    once instead of document by document.
    """
    if _orjson_loads is not None:
        try:
            docs = list(map(_orjson_loads, texts))
        except ValueError:  # a None, or a document that only json.loads reads
            pass
        else:
            try:
                exact = _LONG_NUMBER not in b"".join(texts).translate(_DIGITS)
            except TypeError:  # not all bytes
                exact = False
            if exact:
                return docs
            return [json.loads(t) if _suspect(d) else d for t, d in zip(texts, docs, strict=True)]
    return [None if text is None else loads(text) for text in texts]


def make_engine(url: str, *, busy_timeout_ms: int = 5000, **kwargs: Any) -> Engine:
    """Create an engine with Qiao's per-dialect settings applied on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, json_serializer=dumps, json_deserializer=loads, **kwargs)
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    return create_engine(url, json_serializer=dumps, json_deserializer=loads,
                         pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
        statement = f"BEGIN {mode}".strip()
        # Straight to the driver: every read pays this, and it needs none of SQLAlchemy's
        # per-statement work; a failure (a busy database) is wrapped as SQLAlchemy would.
        dbapi_conn = conn.connection.dbapi_connection
        try:
            dbapi_conn.execute(statement)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(statement, None, exc, sqlite3.Error,
                                      dialect=conn.dialect) from exc


_AFTERWARDS = "qiao_afterwards"


def afterwards(session: Session, work: Callable[[Session], None]) -> None:
    """Run ``work`` in a write transaction of its own once ``session``'s ``write()`` block
    has ended — committed or rolled back. For what must be recorded about a write even
    when it is refused (the audit entry of a refusal the rollback would take with it).
    Outside a ``write()`` block, ``work`` runs at once in ``session``."""
    later = session.info.get(_AFTERWARDS)
    if later is None:
        work(session)
    else:
        later.append(work)


def insert_now(session: Session, obj: Any) -> Any:
    """Write the row of a new mapped object at once, with one prepared INSERT, and keep
    ``obj`` in ``session`` as persistent, its id set: what ``session.add`` plus
    ``session.flush`` give for an object whose id is needed straight away (an event
    naming it, a row pointing at it), without the unit of work's flush, which costs
    several times the INSERT itself. Columns left unset take their Python default first,
    so that nothing about ``obj`` is unknown (read back) afterwards; ``obj`` must have no
    related objects waiting to be written with it."""
    table = type(obj).__table__
    values = {}
    for column in table.columns:
        if column.primary_key:
            continue
        key = column.key
        if key not in obj.__dict__ and column.default is not None:
            default = column.default.arg  # type: ignore[attr-defined]
            setattr(obj, key, default(None) if callable(default) else default)
        elif key not in obj.__dict__ and column.server_default is not None:
            raise TypeError(f"insert_now: set {table.name}.{key}, whose default is the "
                            "database's (it would be unknown here)")
        values[key] = obj.__dict__.get(key)
    (pk,) = table.primary_key.columns
    obj_id = session.connection().execute(_prepared_insert(table), values).inserted_primary_key[0]
    setattr(obj, pk.key, obj_id)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


def adopt(session: Session, cls: Any, row: Mapping[str, Any]) -> Any:
    """The persistent ``cls`` object of a row a Core statement answered (an UPDATE …
    RETURNING every column), as ``populate_existing`` would leave it: the session's copy
    brought up to date, else a new one in the session — without the ORM's statement and
    loading machinery, which costs more than the statement itself on SQLite."""
    (pk,) = cls.__table__.primary_key.columns
    held = session.identity_map.get(session.identity_key(cls, row[pk.key]))
    if held is not None:
        for key, value in row.items():
            set_committed_value(held, key, value)
        return held
    obj = cls(**row)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


@lru_cache(maxsize=64)
def _prepared_insert(table: Any) -> Any:
    return insert(table)


def allocate_ids(session: Session, table: Any, n: int) -> list[int]:
    """Ids for ``n`` new rows of ``table`` (its one integer primary key), taken before the
    insert, so that rows pointing at them can be written in the same executemany and no
    INSERT … RETURNING (one round trip per row) is needed.

    PostgreSQL draws them from the column's sequence. SQLite continues after the highest
    id: safe because ``Database.write()`` holds the write lock (``BEGIN IMMEDIATE``); in
    a deferred transaction a concurrent writer makes the insert fail, never mix rows up.
    """
    if n < 1:
        return []
    (pk,) = table.primary_key.columns
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        rows = conn.execute(text(f"SELECT nextval(pg_get_serial_sequence('{table.name}', "
                                 f"'{pk.name}')) FROM generate_series(1, :n)"), {"n": n})
        return [r[0] for r in rows]
    start = conn.execute(select(func.coalesce(func.max(pk), 0))).scalar_one() + 1
    return list(range(start, start + n))


def one_of(column: Any, dialect: str, name: str = "ids") -> Any:
    """``column IN (:name…)`` for a statement built once and run with a list of ids.

    PostgreSQL gets the list as one array parameter (``column = ANY(:name)``): the same
    SQL text however long the list, which psycopg converts once and the server prepares,
    where an ``IN`` list of a hundred parameters is rendered, converted and parsed anew
    each time (a tenth of the outbox dispatcher's time with the CRM's rules). SQLite
    expands the list into ``IN`` (it has no arrays)."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(BigInteger())))
    return column.in_(bindparam(name, expanding=True))


class FreshStatistics:
    """Keeps PostgreSQL's statistics of ``records`` in step with a bulk load in one
    process: ``ANALYZE records`` once the load has written ``first`` rows, then each
    time what it wrote has doubled (about a dozen times for a million rows, each a
    sample of 30,000 rows: a fraction of a second).

    The planner picks indexes from these statistics, and autovacuum refreshes them a
    minute or more after a table has grown. A fresh install's first import of 100,000
    customers met that: with the statistics of an almost empty table, the look-up of
    existing mobile numbers chose another unique index and filtered every customer,
    0.44 s per chunk by 50,000 rows, and the import took 68 s instead of 17. ANALYZE runs
    in the load's own transaction and counts the rows it has written so far. SQLite's
    planner prefers an index without statistics; it is left alone there."""

    def __init__(self, first: int = 2000):
        self.next_at = first
        self.written = 0

    def wrote(self, session: Session, rows: int) -> bool:
        """Count ``rows`` more; whether the statistics were refreshed now."""
        self.written += rows
        if self.written < self.next_at or session.get_bind().dialect.name != "postgresql":
            return False
        session.execute(text("ANALYZE records"))
        self.next_at = 2 * self.written
        return True


class Database:
    """An engine plus the two ways to use it: ``read()`` and ``write()`` sessions."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._sessions = sessionmaker(expire_on_commit=False)
        # Re-entrant: a write opened inside another on the same thread meets SQLite's own
        # lock (and its busy error) exactly as before, rather than a deadlock here.
        self._writers = threading.RLock() if self.dialect == "sqlite" else None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        return cls(make_engine(url, **kwargs))

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: commits at the end of the block, rolls back on any error.
        Work handed to ``afterwards`` runs once it has ended, in a transaction of its own."""
        later: list[Callable[[Session], None]] = []
        queued = self._writers is not None
        if queued and not self._writers.acquire(timeout=WRITE_QUEUE_SECONDS):
            raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError(
                "database is locked (this process's other writers held it "
                f"{WRITE_QUEUE_SECONDS:.0f} s)"))
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
                with self._sessions(bind=conn) as session, session.begin():
                    session.info[_AFTERWARDS] = later
                    yield session
        finally:
            if queued:
                self._writers.release()
            for work in later:
                try:
                    with self.write() as session:
                        work(session)
                except Exception:  # never hides the block's own outcome
                    log.exception("work after a write failed")

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work. Objects it returned stay readable afterwards (closing
        detaches, it doesn't expire).

        On PostgreSQL it is a ``READ ONLY`` transaction (a write in it is an error) that
        ends with COMMIT. psycopg forgets every statement it has prepared on the connection
        at each ROLLBACK (and sends ``DEALLOCATE ALL``), so reads that ended by rolling
        back had the server parse and plan each statement of each request anew: 0.26 ms
        against 0.15 ms for a small query (measured). A block that raises still rolls
        back. On SQLite closing rolls back, as before (nothing is prepared across
        transactions there)."""
        if self.dialect != "postgresql":
            with self._sessions(bind=self.engine) as session:
                session.info["read_only"] = True  # lets lookups of metadata be kept per block
                yield session
            return
        with self.engine.connect() as conn, self.read_on(conn) as session:
            yield session

    @contextmanager
    def read_on(self, conn: Connection) -> Iterator[Session]:
        """``read()`` on a connection the caller holds (a benchmark's); the connection is
        as it was afterwards."""
        if self.dialect != "postgresql":
            with self._sessions(bind=conn) as session:
                session.info["read_only"] = True
                yield session
            return
        conn.execution_options(postgresql_readonly=True)
        try:
            with self._sessions(bind=conn) as session:
                session.info["read_only"] = True
                yield session
                session.commit()  # nothing to keep: it keeps the prepared statements
        finally:
            if not conn.invalidated:  # a lost connection: its error is the one to see
                conn.execution_options(postgresql_readonly=False)

    @contextmanager
    def read_one(self) -> Iterator[Session]:
        """``read()`` for a block that runs one statement (a token's lookup on every API
        request): a statement sees one snapshot by itself, so PostgreSQL runs it outside
        a transaction — without the BEGIN and ROLLBACK round trips around it. SQLite's
        are calls within the process; it reads as ``read()`` does."""
        if self.dialect != "postgresql":
            with self.read() as session:
                yield session
            return
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            with self._sessions(bind=conn) as session:
                session.info["read_only"] = True
                yield session

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            conn.commit()  # not a ROLLBACK, which drops the driver's prepared statements

    def dispose(self) -> None:
        self.engine.dispose()
