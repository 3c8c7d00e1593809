"""A projection's Table object is one per process, whichever thread asks first.

A dashboard runs its widgets in threads; under the load test two of them, asking for a
projection nobody had asked for yet, each made a Table object, and a statement took its
FROM from one and its columns from the other: ``FROM qp_x, qp_x`` — a 500 on PostgreSQL.
"""

from __future__ import annotations

import sys
import threading

from sqlalchemy import select

from platform_core.store.projection import ProjectedFields

THREADS = 16


def test_threads_asking_at_once_get_one_table_and_its_columns():
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over as often as possible
    try:
        for round_ in range(20):  # a new projection (a key never asked for) each round
            kinds = {f"f{i}": "text" for i in range(30)} | {"amount": "money"}
            fields = ProjectedFields("crm", f"race{round_}", kinds)
            start = threading.Barrier(THREADS)
            got: list[tuple[object, object]] = []

            def ask(fields: ProjectedFields = fields, start: threading.Barrier = start,
                    got: list = got) -> None:
                start.wait()
                column = fields.accessor("f7", "postgresql").expr
                got.append((fields.table("postgresql"), column))

            threads = [threading.Thread(target=ask) for _ in range(THREADS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            tables = {id(table) for table, _ in got}
            assert len(tables) == 1, f"round {round_}: {len(tables)} Table objects"
            table = got[0][0]
            assert all(column.table is table for _, column in got)
            sql = str(select(got[-1][1]).select_from(table))
            assert sql.count("qp_race") == 2, sql  # the column and one FROM, not two
    finally:
        sys.setswitchinterval(switch)
