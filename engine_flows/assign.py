"""Assignment strategies: who gets a step's task (``Assignee.strategy``).

Each strategy is a small class in ``STRATEGIES`` with ``check`` (publish time: the roles,
users and fields it names exist) and ``resolve`` (run time: user ids, in order — the
signers of a sequential approval come in this order). Only active users are ever chosen.
A strategy that finds nobody returns ``[]``; the step then gets an unassigned task that a
flow manager reassigns (``task.unassigned`` event), rather than a stuck flow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine_flows.models import AssignmentCursor, Task
from engine_flows.spec import Assignee
from platform_core.models import Record
from platform_core.registry import Registry
from platform_core.security.models import Department, Role, User, UserRole

USER_FIELD_TYPES = ("user",)


@dataclass(frozen=True)
class Situation:
    """What a strategy may look at: the record, who started the run, the pool's name.

    The record is read when a strategy first looks at it (``source``): ``users``,
    ``role`` and ``initiator`` never do, and a step handed to named people costs no
    read of the record."""

    source: Callable[[], tuple[Record, Mapping[str, Any]]]  # the record, its data opened
    initiator_id: int | None
    pool: str  # "app.flow.node": round-robin state is kept per pool

    @classmethod
    def of(cls, record: Record, data: Mapping[str, Any], *, initiator_id: int | None,
           pool: str) -> Situation:
        """A situation over a record already at hand."""
        return cls(source=lambda: (record, data), initiator_id=initiator_id, pool=pool)

    @cached_property
    def _loaded(self) -> tuple[Record, Mapping[str, Any]]:
        return self.source()

    @property
    def record(self) -> Record:
        return self._loaded[0]

    @property
    def data(self) -> Mapping[str, Any]:
        """The record's data, opened (decrypted)."""
        return self._loaded[1]


class Strategy:
    """One way of choosing assignees."""

    key: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()  # settings that must be present

    def check(self, session: Session, spec: Assignee, form: Any) -> list[str]:
        problems = [f"assignee strategy {self.key} needs {k!r}" for k in self.needs
                    if not getattr(spec, k)]
        if spec.role and not session.execute(select(Role.id).where(
                Role.key == spec.role)).first():
            problems.append(f"role {spec.role!r} does not exist")
        for key in (spec.field, spec.by_field):
            if key and key != "owner" and form.field(key) is None:
                problems.append(f"field {key!r} is not a field of form {form.key}")
        return problems

    def resolve(self, session: Session, spec: Assignee, situation: Situation) -> list[int]:
        raise NotImplementedError


def _active(stmt: Any) -> Any:
    return stmt.where(User.status == "active")


# built once, on the table (Core, no ORM layer): a user task names its assignees at every
# step it is entered
_USERS = User.__table__.c
_ACTIVE_BY_NAME = select(_USERS.username, _USERS.id).where(
    _USERS.username.in_(bindparam("names", expanding=True)), _USERS.status == "active")


def role_members(session: Session, role: str, department_ids: list[int] | None = None
                 ) -> list[int]:
    stmt = _active(select(User.id).join(UserRole, UserRole.user_id == User.id)
                   .join(Role, Role.id == UserRole.role_id).where(Role.key == role))
    if department_ids is not None:
        stmt = stmt.where(User.department_id.in_(department_ids))
    return list(session.execute(stmt.order_by(User.id)).scalars())


class Users(Strategy):
    key, needs = "users", ("users",)

    def check(self, session: Session, spec: Assignee, form: Any) -> list[str]:
        known = set(session.execute(select(User.username).where(
            User.username.in_(spec.users))).scalars())
        return super().check(session, spec, form) + [
            f"user {u!r} does not exist" for u in spec.users if u not in known]

    def resolve(self, session: Session, spec: Assignee, situation: Situation) -> list[int]:
        ids = dict(session.connection().execute(_ACTIVE_BY_NAME,
                                                {"names": list(spec.users)}).all())
        return [ids[u] for u in spec.users if u in ids]


class RoleMembers(Strategy):
    key, needs = "role", ("role",)

    def resolve(self, session: Session, spec: Assignee, situation: Situation) -> list[int]:
        return role_members(session, spec.role or "")


class DepartmentRole(Strategy):
    key, needs = "department_role", ("role",)

    def resolve(self, session: Session, spec: Assignee, situation: Situation) -> list[int]:
        dept = situation.record.department_id
        return role_members(session, spec.role or "", [dept]) if dept else []


class FieldUser(Strategy):
    key, needs = "field", ("field",)

    def check(self, session: Session, spec: Assignee, form: Any) -> list[str]:
        problems = super().check(session, spec, form)
        field = form.field(spec.field) if spec.field and spec.field != "owner" else None
        if field is not None and field.type not in USER_FIELD_TYPES:
            problems.append(f"field {spec.field!r} is a {field.type} field, not a user field")
        return problems

    def resolve(self, session: Session, spec: Assignee, situation: Situation) -> list[int]:
        value = (situation.record.owner_id if spec.field == "owner"
                 else situation.data.get(spec.field or ""))
        if not isinstance(value, int) or isinstance(value, bool):
            return []
        return list(session.execute(_active(select(User.id).where(User.id == value)))
                    .scalars())


class Initiator(Strategy):
    key = "initiator"

    def resolve(self, session: Session, spec: Assignee, situation: Situation) -> list[int]:
        if situation.initiator_id is None:
            return []
        return list(session.execute(_active(select(User.id).where(
            User.id == situation.initiator_id))).scalars())


class InitiatorManager(Strategy):
    """The manager of the initiator's department; for the manager themself (or a
    department without one), the nearest manager above."""

    key = "initiator_manager"

    def resolve(self, session: Session, spec: Assignee, situation: Situation) -> list[int]:
        user = session.get(User, situation.initiator_id) if situation.initiator_id else None
        dept = session.get(Department, user.department_id) if user and user.department_id \
            else None
        ids = [int(p) for p in dept.path.strip("/").split("/")] if dept else []
        managers = dict(session.execute(select(Department.id, Department.manager_id).where(
            Department.id.in_(ids))).all())
        for dept_id in reversed(ids):
            manager = managers.get(dept_id)
            if manager and manager != situation.initiator_id:
                found = session.execute(_active(select(User.id).where(User.id == manager))
                                        ).scalars().first()
                if found:
                    return [found]
        return []


class _Pool(Strategy):
    """Members of ``role``, narrowed by ``by_field`` to a team (a department, named by the
    record's field value or by ``teams[value]``), and then one of them."""

    needs = ("role",)

    def pool(self, session: Session, spec: Assignee, situation: Situation) -> list[int]:
        if not spec.by_field:
            return role_members(session, spec.role or "")
        value = situation.data.get(spec.by_field)
        team = spec.teams.get(str(value), str(value)) if value is not None else None
        if team is None:
            return []
        dept_ids = list(session.execute(select(Department.id).where(
            Department.name == team)).scalars())
        return role_members(session, spec.role or "", dept_ids) if dept_ids else []


class RoundRobin(_Pool):
    key = "round_robin"

    def resolve(self, session: Session, spec: Assignee, situation: Situation) -> list[int]:
        members = self.pool(session, spec, situation)
        if not members:
            return []
        pool = f"{situation.pool}:{spec.role}:{spec.by_field or ''}:" \
               f"{situation.data.get(spec.by_field) if spec.by_field else ''}"[:255]
        cursor = _locked_cursor(session, pool)
        after = [m for m in members if m > cursor.last_user_id]
        chosen = (after or members)[0]
        cursor.last_user_id = chosen
        session.flush()
        return [chosen]


def _locked_cursor(session: Session, pool: str) -> AssignmentCursor:
    """The pool's cursor row, created if missing and locked for this transaction. Created
    with ``ON CONFLICT DO NOTHING``: two runs starting at once on a new pool would
    otherwise both insert it and one would fail on the primary key."""
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(
        AssignmentCursor)
    session.execute(insert.values(pool=pool, last_user_id=0).on_conflict_do_nothing(
        index_elements=["pool"]))
    return session.execute(select(AssignmentCursor).where(AssignmentCursor.pool == pool)
                           .with_for_update().execution_options(populate_existing=True)
                           ).scalar_one()


class LeastLoaded(_Pool):
    """Whoever of the pool has the fewest open tasks (ties: the lowest id). The count is
    taken under the role's lock (its cursor row, ``FOR UPDATE`` on PostgreSQL; SQLite's
    writer lock serialises anyway), held until the choosing transaction commits its task:
    two runs starting at once cannot both count before either has added its task, so they
    do not pick the same person."""

    key = "least_loaded"

    def resolve(self, session: Session, spec: Assignee, situation: Situation) -> list[int]:
        members = self.pool(session, spec, situation)
        if not members:
            return []
        _locked_cursor(session, f"least_loaded:{spec.role}"[:255])
        load = dict(session.execute(select(Task.assignee_id, func.count()).where(
            Task.status == "open", Task.assignee_id.in_(members))
            .group_by(Task.assignee_id)).all())
        return [min(members, key=lambda m: (load.get(m, 0), m))]


class Mapping_(Strategy):
    key, needs = "mapping", ("field",)

    def check(self, session: Session, spec: Assignee, form: Any) -> list[str]:
        problems = super().check(session, spec, form)
        if not spec.map and spec.default is None:
            problems.append("assignee strategy mapping needs 'map' or 'default'")
        for value, inner in [*spec.map.items(), ("default", spec.default)]:
            if inner is not None:
                problems += [f"map[{value}]: {p}" for p in check_assignee(session, inner,
                                                                           form)]
        return problems

    def resolve(self, session: Session, spec: Assignee, situation: Situation) -> list[int]:
        value = situation.data.get(spec.field or "")
        inner = spec.map.get(str(value)) if value is not None else None
        inner = inner or spec.default
        return resolve_assignees(session, inner, situation) if inner else []


STRATEGIES: Registry[Strategy] = Registry("assignee strategy")


def register_builtins() -> None:
    for cls in (Users, RoleMembers, DepartmentRole, FieldUser, Initiator, InitiatorManager,
                RoundRobin, LeastLoaded, Mapping_):
        if cls.key not in STRATEGIES:
            STRATEGIES.register(cls.key, cls())


def check_assignee(session: Session, spec: Assignee, form: Any) -> list[str]:
    return STRATEGIES.get(spec.strategy).check(session, spec, form)


def resolve_assignees(session: Session, spec: Assignee, situation: Situation) -> list[int]:
    ids = STRATEGIES.get(spec.strategy).resolve(session, spec, situation)
    return list(dict.fromkeys(ids))  # each once, in order
