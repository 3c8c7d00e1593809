"""Frames: where a report's rows come from and how each of its fields reads in SQL.

A frame is a FROM clause, the conditions every row must meet (its app, form or flow; not
in the recycle bin) and a field view with the store's accessor interface — so the
store's filter compiler (``compile_filter``) compiles report filters, dashboard
parameters and the viewer's row scope straight onto it, and the report compiler groups
and aggregates through the same typed expressions.

- records of a form read the form's typed projection when the store keeps one that is
  current (a real table, ``platform_core.store.projection``), else the JSON documents;
- flow instances and tasks read their tables joined to the record they are about (so
  the record's fields are dimensions too, and the record's row scope applies);
- the audit log reads its table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, cast, func, literal_column
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from platform_core.models import Record
from platform_core.store.fields import SYSTEM_FIELDS, Accessor, FieldSet
from platform_core.store.kinds import KINDS, ValueKind, aware_datetime, json_text

# field display → how a dimension value is labelled
PEOPLE = {"user", "department"}
SYSTEM_LABELS = {"id": "编号", "row_version": "版本", "owner_id": "负责人",
                 "department_id": "部门", "created_by": "创建人", "updated_by": "修改人",
                 "created_at": "创建时间", "updated_at": "修改时间"}
SYSTEM_DISPLAY = {"owner_id": "user", "department_id": "department", "created_by": "user",
                  "updated_by": "user", "created_at": "timestamp",
                  "updated_at": "timestamp"}


class TimestampKind(ValueKind):
    """A real timestamp column: compared with aware datetimes (ISO text accepted)."""

    key = "timestamp"

    def to_storage(self, value: Any) -> datetime:
        return aware_datetime(value)


class IntegerKind(ValueKind):
    """A real integer column (ids, counters)."""

    key = "integer"

    def to_storage(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {type(value).__name__}")
        return value


class ColumnTextKind(ValueKind):
    """A real text column (status, node, action …)."""

    key, text_ops = "text", True

    def to_storage(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__}")
        return value


TIMESTAMP, INTEGER, TEXT = TimestampKind(), IntegerKind(), ColumnTextKind()


@dataclass(frozen=True)
class Column:
    """A field as reports see it: its value kind (``text number money date datetime
    timestamp boolean integer``), how its values are shown (``user``, ``department``,
    ``option``, ``boolean`` … or the kind) and its label."""

    key: str
    label: str
    kind: str
    display: str
    options: Mapping[str, str] = field(default_factory=dict)
    sealed: bool = False
    target: str | None = None  # a relation's form


class FrameFields:
    """The store's field-view interface (``accessor``) over explicit expressions, falling
    back to another view (the record's fields) for keys it does not have."""

    def __init__(self, app: str, form: str, own: Mapping[str, Accessor],
                 fallback: Any = None):
        self.app, self.form, self.own, self.fallback = app, form, own, fallback

    def accessor(self, key: str, dialect: str) -> Accessor:
        acc = self.own.get(key)
        if acc is not None:
            return acc
        if self.fallback is None:
            raise KeyError(key)
        return self.fallback.accessor(key, dialect)


@dataclass
class Frame:
    table: FromClause
    where: list[ColumnElement[bool]]
    fields: Any  # .accessor(key, dialect) → Accessor
    columns: dict[str, Column]
    money_fen: bool = False  # money accessors already read integer fen
    json_money: bool = True  # money accessors read the stored decimal text (JSON)
    scope_fields: Any = None  # the view row scopes compile onto (the record's)

    def column(self, key: str) -> Column:
        col = self.columns.get(key)
        if col is None:
            raise KeyError(key)
        return col

    def fen(self, key: str, dialect: str) -> ColumnElement[Any]:
        """A money field as exact integer fen (sums are then exact on both databases)."""
        acc = self.fields.accessor(key, dialect)
        if self.money_fen:
            return acc.expr
        text = json_text(Record.data, key, dialect)
        if dialect == "postgresql":
            return cast(cast(text, acc.expr.type) * 100, BigInteger())
        # canonical "1234.50": dropping the point gives the fen, exactly
        return cast(func.replace(text, literal_column("'.'"), literal_column("''")),
                    Integer())


def report_fields(pub: Any) -> FieldSet:
    """The store view reports read a form through (what its projection keeps)."""
    from engine_forms.forms import projected_fields

    return projected_fields(pub)


def record_columns(pub: Any) -> dict[str, Column]:
    """The columns of a published form: its system fields and its typed data fields."""
    cols = {}
    for key, (_column, system_kind, _nullable) in SYSTEM_FIELDS.items():
        kind = "timestamp" if system_kind == "timestamp" else "integer"
        cols[key] = Column(key, SYSTEM_LABELS[key], kind, SYSTEM_DISPLAY.get(key, kind))
    kinds = report_fields(pub).kinds
    for spec in pub.spec.fields:
        kind = kinds.get(spec.key)
        if kind is None:
            continue
        sealed = bool(spec.sensitive and spec.sensitive.encrypt)
        display = kind
        options: dict[str, str] = {}
        target = None
        if spec.type in PEOPLE:
            display = spec.type
        elif spec.type in ("select",):
            display = "option"
            options = {o["value"]: o.get("label", o["value"])
                       for o in spec.config.get("options", [])}
        elif spec.type == "relation":
            display, target = "relation", spec.config.get("target")
        cols[spec.key] = Column(spec.key, spec.label, kind, display, options, sealed, target)
    return cols


def _acc(name: str, expr: Any, kind: ValueKind, nullable: bool = True) -> Accessor:
    return Accessor(name, expr, kind, nullable, kind.text_ops)


def form_frame(session: Any, pub: Any) -> Frame:
    """The records of a published form: its typed projection if current, else JSON."""
    from engine_reports import fusion
    from platform_core.store.projection import projection_of

    columns, fields = record_columns(pub), report_fields(pub)
    proj = fusion.remember(("projection", pub.app, pub.spec.key, pub.version),
                           lambda: projection_of(session, fields))
    if proj is not None:
        return Frame(proj.table, [proj.table.c.deleted_at.is_(None)], proj.fields, columns,
                     money_fen=True, json_money=False, scope_fields=proj.fields)
    where = [Record.app == pub.app, Record.form == pub.spec.key, Record.deleted_at.is_(None)]
    return Frame(Record.__table__, where, fields, columns, scope_fields=fields)


def flow_frame(pub: Any, app: str, flow: str, of: str, spec: Any = None) -> Frame:
    """Instances (``flow_*`` fields) or tasks (``task_*`` fields) of a flow, each with
    the fields of the record it is about; a task's step is shown by its name in ``spec``
    (the flow's published version)."""
    from engine_flows.models import FlowRun, Task

    columns = record_columns(pub)
    if of == "instances":
        t = FlowRun.__table__
        own = {"flow_status": ("状态", TEXT, t.c.status, "text"),
               "flow_version": ("流程版本", INTEGER, t.c.version, "integer"),
               "flow_initiator": ("发起人", INTEGER, t.c.initiator_id, "user"),
               "flow_started_at": ("发起时间", TIMESTAMP, t.c.started_at, "timestamp"),
               "flow_ended_at": ("结束时间", TIMESTAMP, t.c.ended_at, "timestamp")}
        joined = t.join(Record.__table__, t.c.record_id == Record.id)
        where = [t.c.app == app, t.c.flow == flow, t.c.parent_step_id.is_(None)]
    else:
        t = Task.__table__
        own = {"task_node": ("步骤", TEXT, t.c.node_id, "text"),
               "task_kind": ("类型", TEXT, t.c.kind, "text"),
               "task_status": ("任务状态", TEXT, t.c.status, "text"),
               "task_assignee": ("处理人", INTEGER, t.c.assignee_id, "user"),
               "task_outcome": ("结果", TEXT, t.c.outcome, "text"),
               "task_created_at": ("创建时间", TIMESTAMP, t.c.created_at, "timestamp"),
               "task_due_at": ("到期时间", TIMESTAMP, t.c.due_at, "timestamp"),
               "task_completed_at": ("完成时间", TIMESTAMP, t.c.completed_at, "timestamp"),
               "task_overdue_at": ("逾期时间", TIMESTAMP, t.c.overdue_at, "timestamp")}
        joined = t.join(Record.__table__, t.c.record_id == Record.id)
        where = [t.c.app == app, t.c.flow == flow]
    where += [Record.app == app, Record.form == pub.spec.key, Record.deleted_at.is_(None)]
    accessors = {k: _acc(k, expr, kind) for k, (_l, kind, expr, _d) in own.items()}
    steps = {n.id: n.name or n.id for n in spec.nodes} if spec is not None else {}
    for key, (label, kind, _e, display) in own.items():
        columns[key] = Column(key, label, kind.key, display)
    if of != "instances" and steps:
        columns["task_node"] = Column("task_node", "步骤", TEXT.key, "option", options=steps)
    fields = FrameFields(app, pub.spec.key, accessors, report_fields(pub))
    return Frame(joined, where, fields, columns, scope_fields=pub.fields)


def audit_frame() -> Frame:
    from platform_core.security.models import AuditEntry

    t = AuditEntry.__table__
    own = {"id": ("编号", INTEGER, t.c.id, "integer"),
           "at": ("时间", TIMESTAMP, t.c.at, "timestamp"),
           "actor_id": ("操作人", INTEGER, t.c.actor_id, "user"),
           "actor_name": ("操作人姓名", TEXT, t.c.actor_name, "text"),
           "action": ("操作", TEXT, t.c.action, "text"),
           "target": ("对象", TEXT, t.c.target, "text"),
           "client": ("来源地址", TEXT, t.c.client, "text")}
    accessors = {k: _acc(k, expr, kind) for k, (_l, kind, expr, _d) in own.items()}
    columns = {k: Column(k, label, kind.key, display)
               for k, (label, kind, _e, display) in own.items()}
    return Frame(t, [], FrameFields("audit", "log", accessors), columns)


def value_kind(col: Column) -> ValueKind:
    if col.kind == "timestamp":
        return TIMESTAMP
    if col.kind == "integer":
        return INTEGER
    return KINDS.get(col.kind)

