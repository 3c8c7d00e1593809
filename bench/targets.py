"""Shared by the benchmarks: scratch databases per kind, and small helpers.

Imported by the scripts in this folder (run as ``python bench/<name>.py``, which puts this
folder on ``sys.path``).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import shutil
import statistics
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from platform_core.db import Database
from platform_core.migrate import upgrade


def chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


def count_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


class Target:
    """One database kind: hands out fresh, migrated scratch databases and cleans up."""

    name = ""

    def fresh_url(self) -> str:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError

    def fresh(self) -> Database:
        """A new, empty database migrated exactly as the platform does it."""
        db = Database.from_url(self.fresh_url())
        upgrade(db.engine)
        return db

    def close(self) -> None:
        self.drop()


class SqliteTarget(Target):
    name = "sqlite"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qiao_bench_"))
        self.path = self.dir / "bench.db"

    def fresh_url(self) -> str:
        self.drop()
        return f"sqlite:///{self.path}"

    def drop(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresTarget(Target):
    name = "postgresql"

    def __init__(self, url: str, admin: Engine, scratch: str) -> None:
        self.scratch = scratch
        self.url = make_url(url).set(database=scratch)
        self.admin = admin

    @classmethod
    def connect(cls, url: str, scratch: str) -> PostgresTarget | str:
        """The target, or why PostgreSQL cannot be used."""
        try:
            admin = create_engine(make_url(url), isolation_level="AUTOCOMMIT",
                                  connect_args={"connect_timeout": 5})
            with admin.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        return cls(url, admin, scratch)

    def fresh_url(self) -> str:
        self.drop()
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.scratch}"'))
        return self.url.render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.scratch}" WITH (FORCE)'))

    def close(self) -> None:
        self.drop()
        self.admin.dispose()


DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:54329/qiao_test"


def choose_targets(db: str, pg_url: str, scratch: str) -> list[Target]:
    """The databases ``--db sqlite|postgresql|both`` names; SQLite alone (said so) when
    the PostgreSQL server cannot be reached."""
    targets: list[Target] = []
    if db in ("sqlite", "both"):
        targets.append(SqliteTarget())
    if db in ("postgresql", "both"):
        pg = PostgresTarget.connect(pg_url, scratch)
        if isinstance(pg, str):
            print(f"PostgreSQL unreachable at {make_url(pg_url).render_as_string()} "  # noqa: T201
                  f"({pg}): running SQLite only")
            if not any(t.name == "sqlite" for t in targets):
                targets.append(SqliteTarget())
        else:
            targets.append(pg)
    return targets


def profile_call(label: str, fn: Callable[[], Any], *, cumulative: int = 30) -> None:
    """Run ``fn`` under cProfile and print the top functions by own and total time. With
    ``QIAO_PROFILE_DUMP=/tmp/p_`` the stats are also saved (``/tmp/p_<first two words
    of label>.pstats``) for ``pstats`` to list callers and callees."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    if os.environ.get("QIAO_PROFILE_DUMP"):  # a path prefix: keep the raw stats too
        slug = "_".join(label.split()[:2]).replace("/", "_")
        prof.dump_stats(f"{os.environ['QIAO_PROFILE_DUMP']}{slug}.pstats")
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(cumulative)
    print(f"\n---- cProfile: {label} ----")  # noqa: T201
    print(out.getvalue())  # noqa: T201


class Medians:
    """Mixin for a measured metric with ``ours``/``baseline`` sample lists: medians, the
    ratio and the ``RESULT`` line every script prints."""

    ours: list[float]
    baseline: list[float]

    @property
    def ours_med(self) -> float:
        return statistics.median(self.ours)

    @property
    def base_med(self) -> float:
        return statistics.median(self.baseline)

    @property
    def ratio(self) -> float:
        return self.ours_med / self.base_med

    def result(self, metric: str, target: float, digits: int = 4) -> str:
        return (f"RESULT metric={metric} ours={self.ours_med:.{digits}f} "
                f"baseline={self.base_med:.{digits}f} ratio={self.ratio:.3f} target={target}")
