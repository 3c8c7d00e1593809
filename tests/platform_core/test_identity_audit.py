"""Identity basics (passwords, users, first admin) and the hash-chained audit log."""

from __future__ import annotations

import pytest
from argon2 import extract_parameters
from sqlalchemy import delete, select, update

from platform_core.errors import Conflict, InvalidInput, NotFound
from platform_core.security import audit
from platform_core.security.models import AuditEntry, User
from platform_core.security.passwords import (
    WeakPassword,
    check_policy,
    decoy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from platform_core.security.users import (
    create_user,
    disable_user,
    ensure_admin,
    get_user,
    reset_password,
)
from platform_core.store import Actor

ADMIN = Actor(user_id=1, name="admin")


@pytest.mark.parametrize(("password", "problem"), [
    ("short1", "at least 10 characters"),
    ("abcdefghijkl", "mix at least two"),
    ("zhangsan2024!", "must not contain the username"),
    ("password123", "too common"),
])
def test_weak_passwords_are_refused_with_the_reason(password, problem):
    with pytest.raises(WeakPassword, match=problem):
        check_policy(password, username="zhangsan")


def test_argon2id_hash_verifies_and_never_stores_the_password():
    stored = hash_password("贷款Broker-2024")
    assert stored.startswith("$argon2id$") and "贷款Broker-2024" not in stored
    assert verify_password(stored, "贷款Broker-2024")
    assert not verify_password(stored, "贷款Broker-2025")
    assert not verify_password("not a hash", "x")


def test_the_unknown_user_decoy_costs_a_real_verification_and_matches_nothing():
    """Sign-in verifies an unknown user's password against a decoy so that both cost the
    same: it must carry a real hash's parameters (memory, time, lanes, lengths)."""
    decoy, real = decoy_hash(), hash_password("贷款Broker-2024")
    assert extract_parameters(decoy) == extract_parameters(real)
    assert not needs_rehash(decoy)
    assert not verify_password(decoy, "贷款Broker-2024") and not verify_password(decoy, "")
    assert decoy != decoy_hash()


def test_first_admin_once_with_one_time_or_given_password(db):
    with db.write() as s:
        one_time = ensure_admin(s, password=None)
        assert one_time and len(one_time) == 16
        admin = get_user(s, "admin")
        assert verify_password(admin.password_hash, one_time) and admin.must_change_password
        assert ensure_admin(s, password=None) is None  # users exist: nothing happens


def test_users_add_reset_disable_and_errors(db):
    with db.write() as s:
        ensure_admin(s, password="Broker-Passw0rd!")
        user, one_time = create_user(s, username="zhangsan", display_name="张三",
                                     password=None, actor=ADMIN, roles=("admin",))
        assert one_time and user.must_change_password
    with pytest.raises(Conflict, match="already exists"), db.write() as s:
        create_user(s, username="zhangsan", display_name="x", password=None, actor=ADMIN)
    with pytest.raises(InvalidInput, match="username"), db.write() as s:
        create_user(s, username="Zhang San", display_name="x", password=None, actor=ADMIN)
    with pytest.raises(InvalidInput, match="role 'boss' does not exist"), db.write() as s:
        create_user(s, username="lisi", display_name="李四", password=None, actor=ADMIN,
                    roles=("boss",))
    with db.write() as s:
        new = reset_password(s, username="zhangsan", actor=ADMIN)
        disable_user(s, username="zhangsan", actor=ADMIN)
    with db.read() as s:
        user = get_user(s, "zhangsan")
        assert verify_password(user.password_hash, new) and user.status == "disabled"
        assert s.execute(select(User).where(User.username == "lisi")).first() is None
        actions = list(s.execute(select(AuditEntry.action).order_by(AuditEntry.id)).scalars())
    assert actions == ["user.create", "user.create", "user.reset_password", "user.disable"]
    with pytest.raises(NotFound), db.write() as s:
        disable_user(s, username="nobody", actor=ADMIN)


def _entries(db, n: int) -> list[int]:
    with db.write() as s:
        return [audit.append(s, actor=ADMIN, action="record.update", target=f"record:{i}",
                             detail={"field": "amount", "old": "1.00", "new": f"{i}.00"}).id
                for i in range(n)]


def test_an_intact_chain_verifies(db):
    _entries(db, 5)
    with db.read() as s:
        assert audit.verify(s, batch=2) == (5, None)


def test_editing_one_row_is_detected_and_named(db):
    ids = _entries(db, 5)
    with db.write() as s:
        s.execute(update(AuditEntry).where(AuditEntry.id == ids[2])
                  .values(detail={"field": "amount", "old": "1.00", "new": "999.00"}))
    with db.read() as s:
        checked, broken = audit.verify(s)
    assert checked == 2 and broken.entry_id == ids[2]
    assert broken.reason == "its content was changed"


def test_deleting_one_row_is_detected_at_the_next(db):
    ids = _entries(db, 5)
    with db.write() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.id == ids[1]))
    with db.read() as s:
        _, broken = audit.verify(s)
    assert broken.entry_id == ids[2] and "changed or deleted" in broken.reason


def test_an_audit_entry_rolls_back_with_its_action(db):
    with pytest.raises(RuntimeError), db.write() as s:
        audit.append(s, actor=ADMIN, action="export", detail={"rows": 10})
        raise RuntimeError("export failed")
    with db.read() as s:
        assert audit.verify(s) == (0, None)
