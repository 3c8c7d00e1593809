"""One read for all the widgets of one dashboard page load.

The dashboard page fetches each widget on its own (``static/reports.js``), so that each
draws as it arrives. Run one by one, the widgets scan the same rows once each: at
1,000,000 records the 20-widget benchmark dashboard costs 3 s of database time that way
and 0.4 s fused (``engine_reports/fusion.py``: statements over the same rows shared).

So the page gives its widgets a token of this load (``load=…`` in their URLs). The first
widget request of a load reads the whole dashboard, fused and in parallel
(``service.dashboard_data_parallel``); the others of the same load — same user, same
dashboard version, same parameters — wait for that read and take their entry from it.
A reload is a new load and reads afresh: nothing is served from an earlier load. A load
is kept a minute (its widgets arrive within it), at most ``SIZE`` loads per process; a
widget request without a token, or whose load is gone, reads its widget alone, as
before. Several web processes each read a load once at most.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

KEEP_SECONDS = 60.0
WAIT_SECONDS = 120.0  # a widget waits this long for its load's read, then reads alone
SIZE = 256


def new_load() -> str:
    """A token for one page load."""
    return secrets.token_urlsafe(9)


@dataclass
class _Load:
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class PageLoads:
    """Single flight per key: the first caller computes, the others of the same key wait
    for its result. ``get`` gives None when the computation failed or took too long:
    the caller then does its own part alone."""

    def __init__(self, keep: float = KEEP_SECONDS, size: int = SIZE):
        self.keep, self.size = keep, size
        self._lock = threading.Lock()
        self._loads: dict[Hashable, _Load] = {}
        self.computed = 0  # reads made (for tests and metrics)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any | None:
        now = time.monotonic()
        with self._lock:
            self._forget(now)
            load = self._loads.get(key)
            mine = load is None
            if mine:
                load = self._loads[key] = _Load(now)
        if mine:
            try:
                load.result = compute()
                self.computed += 1
            except Exception as exc:  # the waiters read alone (and meet it themselves)
                load.error = exc
            finally:
                load.done.set()
        elif not load.done.wait(WAIT_SECONDS):
            return None
        return None if load.error is not None else load.result

    def _forget(self, now: float) -> None:
        """Drop the loads older than ``keep`` (and the oldest past ``size``)."""
        old = [k for k, v in self._loads.items() if now - v.started > self.keep]
        for k in old:
            del self._loads[k]
        while len(self._loads) >= self.size:
            del self._loads[next(iter(self._loads))]


LOADS = PageLoads()
