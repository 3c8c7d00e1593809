"""Who runs the scans: one scheduler leads among all worker processes.

On PostgreSQL the leader holds a session-level advisory lock on a connection of its own
(``pg_try_advisory_lock``): the first process to take it leads until it stops or its
connection drops, and the others try again on their next tick — so a dead leader's place
is taken within a tick. On SQLite there is one process (``qiao serve``), which leads.
The scans are also safe to run twice (each firing is claimed in the database); leading
only keeps several processes from doing the same work.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from sqlalchemy import text

from platform_core.db import Database

log = logging.getLogger("qiao.leader")
LOCK_KEY = 0x5141494F  # "QIAO"
_leaders: weakref.WeakSet[Leadership] = weakref.WeakSet()  # this process's, for /metrics


def leading() -> bool:
    """Whether a Leadership of this process holds the lead now (as last checked)."""
    return any(each._conn is not None or each.db.dialect != "postgresql"
               for each in _leaders)


class Leadership:
    """Whether this process leads (``held``), taking the lead when it is free."""

    def __init__(self, db: Database):
        self.db = db
        self._conn: Any = None
        _leaders.add(self)

    def held(self) -> bool:
        if self.db.dialect != "postgresql":
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:  # the connection (and with it the lock) is gone
                log.warning("lost the scheduler lead: its connection dropped")
                self.release()
        conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar():
            self._conn = conn
            log.info("this process now leads the scheduler")
            return True
        conn.close()
        return False

    def release(self) -> None:
        if self._conn is not None:
            try:  # the connection goes back to the pool: the lock must not go with it
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                self._conn.close()
            except Exception:  # noqa: BLE001 - broken: drop it, which ends the session
                self._conn.invalidate()
            self._conn = None
