"""Counting the SQL statements a piece of work sends (cursor listeners), for the tests
that hold statement counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event


def statements_of(db: Any, work: Callable[[], Any]) -> list[str]:
    """The statements ``work`` sends through ``db``'s engine, in order."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        work()
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    return seen


def statements_sent(db: Any, work: Callable[[], Any], wanted: Callable[[str], bool]) -> int:
    """How many statements ``work`` sends that ``wanted`` picks."""
    return sum(1 for statement in statements_of(db, work) if wanted(statement))
