"""A rate limit shared by every process on the database (sign-ins per client, requests
per API token), so ``qiao serve --workers N`` and several machines do not multiply it.

Fixed windows of ``per_seconds`` aligned on the epoch: a key may be hit ``limit`` times
per window; past that → the seconds until the window ends (``Retry-After``).

Order of a hit: the process's own allowance for the key in this window is spent first
(no database work) → when it is used up, one atomic upsert on ``rate_windows`` (``INSERT
… ON CONFLICT (key) DO UPDATE … RETURNING hits``, the same statement on SQLite and
PostgreSQL) claims the next share of the window's budget: ``share`` hits (1/20 of the
limit, at least 1), or what is left of it → nothing left: refused, and the process
remembers the key is spent until the window ends, so a flood of refused requests costs
no database work either. Rows of ended windows are pruned (at most once a window per
process, in the claim's transaction).

Why shares: the per-token limit guards every API request, and one write per read would
take SQLite's write lock on every request. The price: at most ``share − 1`` hits per
process may stay unspent when the budget runs out elsewhere, so under load a key may be
refused a little before ``limit`` (never after it). A sign-in limit below 40 a minute has
a share of 1: exact.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy import case, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from platform_core.db import Database
from platform_core.security.models import RateWindow

SPENT = -1  # the allowance of a key whose window's budget is used up


class SharedRateLimiter:
    """``limit`` hits per key and fixed window of ``per_seconds``, counted in the
    database (``rate_windows``) by all processes together. Thread-safe."""

    def __init__(self, db: Database, limit: int, per_seconds: float, *,
                 share: int | None = None, clock: Callable[[], float] = time.time,
                 max_keys: int = 100_000):
        if limit < 1 or per_seconds <= 0 or max_keys < 1 or (share is not None and share < 1):
            raise ValueError("limit, per_seconds, share and max_keys must be positive")
        self.db, self.limit, self.per_seconds = db, limit, per_seconds
        self.share = min(limit, share or max(1, limit // 20))
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (window end, hits this process may still make in it, or SPENT)
        self._allowance: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._pruned_until = 0

    def hit(self, key: str) -> float | None:
        """Count one hit of ``key``: None if allowed, else the seconds until it would be."""
        now = self._clock()
        end = int((math.floor(now / self.per_seconds) + 1) * self.per_seconds)
        key = key[:200]
        with self._lock:
            window, left = self._allowance.get(key, (0, 0))
            if window == end and left > 0:
                self._keep(key, end, left - 1)
                return None
            if window == end and left == SPENT:
                return end - now
        granted = self._claim(key, end, now)
        with self._lock:
            window, left = self._allowance.get(key, (0, 0))
            spare = left if window == end and left > 0 else 0  # another thread's claim
            if granted == 0 and spare == 0:
                self._keep(key, end, SPENT)
                return end - now
            self._keep(key, end, granted + spare - 1)
            return None

    def _keep(self, key: str, end: int, left: int) -> None:
        self._allowance.pop(key, None)
        self._allowance[key] = (end, left)
        while len(self._allowance) > self.max_keys:  # forgetting errs toward asking again
            self._allowance.popitem(last=False)

    def _claim(self, key: str, end: int, now: float) -> int:
        """Add a share to the key's count in this window; how much of it is within the
        limit."""
        dialect = postgresql if self.db.dialect == "postgresql" else sqlite
        want = self.share
        stmt = dialect.insert(RateWindow).values(key=key, window_end=end, hits=want)
        stmt = stmt.on_conflict_do_update(index_elements=[RateWindow.key], set_={
            "hits": case((RateWindow.window_end == end, RateWindow.hits + want), else_=want),
            "window_end": end}).returning(RateWindow.hits)
        with self.db.write() as session:
            hits = session.execute(stmt).scalar_one()
        if now >= self._pruned_until:
            self._pruned_until = end
            self._prune(now)
        before = hits - want
        return max(0, min(want, self.limit - before))

    def _prune(self, now: float) -> None:
        """Delete the ended windows, in a transaction of its own that waits for no row:
        pruning in the claim's transaction, two processes each holding the row it had
        just counted and then deleting the other's deadlocked on PostgreSQL (a 500 in
        the load test at 100 staff). Rows another transaction holds are left for the
        next prune (``SKIP LOCKED``; SQLite has one writer and nothing to skip)."""
        ended = select(RateWindow.key).where(RateWindow.window_end <= now)
        if self.db.dialect == "postgresql":
            ended = ended.with_for_update(skip_locked=True)
        with self.db.write() as session:
            session.execute(delete(RateWindow).where(RateWindow.key.in_(ended.scalar_subquery())))


__all__ = ["SharedRateLimiter"]
