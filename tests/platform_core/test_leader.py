"""One scheduler leads among worker processes: on PostgreSQL an advisory lock on a
connection of the leader's own, taken over when the leader's connection goes; on SQLite
the one process leads."""

from __future__ import annotations

from platform_core.leader import Leadership


def test_one_leader_at_a_time_and_the_next_takes_over(db):
    first, second = Leadership(db), Leadership(db)
    try:
        assert first.held()
        if db.dialect == "postgresql":
            assert not second.held()  # the lock is the first one's
            assert first.held()  # and stays theirs, tick after tick
            first.release()  # the leader stops (or its connection drops)
            assert second.held()
            assert not first.held()
        else:
            assert second.held()  # SQLite: one process, it leads
    finally:
        first.release()
        second.release()
