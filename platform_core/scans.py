"""Periodic scans over indexed due-time columns (SLA reminders and overdue marking, timer
nodes; later date-relative rules): a registry the engines fill at start-up, run by the
background loop on every tick.

A scan is ``scan(db, now) -> int`` (how many items it handled). It claims what it
handles in the database (a conditional update, ``SKIP LOCKED`` on PostgreSQL), so
several worker processes may run the same scan; it handles at most a batch per call and
is called again while it reports work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from platform_core.db import Database
from platform_core.registry import Registry

log = logging.getLogger("qiao.scans")
Scan = Callable[[Database, datetime], int]
SCANS: Registry[Scan] = Registry("periodic scan")


def run_scans(db: Database, now: datetime) -> int:
    """Every registered scan once; one failing scan does not stop the others."""
    done = 0
    for key, scan in SCANS.items():
        try:
            done += scan(db, now)
        except Exception:  # logged; the next tick tries again
            log.exception("scan %s failed", key)
    return done
