"""The crash test's short run (PostgreSQL only): real ``qiao serve`` ×2 and ``qiao
worker`` under a mixed workload, a few SIGKILLs, then nothing lost or doubled, every event
delivered, every rule effect once, no orphaned task, the audit chain intact
(``tests.chaos``). ``QIAO_CHAOS_KILLS=20`` makes it the long run."""

from __future__ import annotations

import os

import pytest

from tests.chaos.run import describe, run
from tests.conftest import PG_URL, scratch_database

KILLS = int(os.environ.get("QIAO_CHAOS_KILLS", "3"))
SEED = int(os.environ.get("QIAO_CHAOS_SEED", "22"))


@pytest.mark.skipif(not PG_URL, reason="the crash test runs Qiao as in production: on "
                                       "PostgreSQL (QIAO_TEST_DATABASE_URL)")
def test_killed_processes_lose_and_double_nothing(tmp_path):
    with scratch_database(PG_URL, f"chaos_{os.getpid()}") as url:
        report, figures = run(url, tmp_path, kills=KILLS, seed=SEED, say=print)
    lines = describe(report, figures)
    print("\n".join(lines))  # noqa: T201 - the figures, with -s
    assert sum(figures.kills.values()) == KILLS
    assert report.figures["events_checked"] > 0 and report.figures["operations"] > 0
    assert not report.problems, "\n".join(lines)
