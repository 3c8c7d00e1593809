"""Set-up shared by the form engine's tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from engine_forms import forms, publishing, records
from platform_core.store import Actor

ADMIN = Actor(user_id=1, name="admin")


def form_with_records(db: Any, app: str, raw: dict[str, Any],
                      docs: list[dict[str, Any]]) -> list[int]:
    """A new app ``app`` with the form ``raw`` published and ``docs`` created in it, as
    the admin; the records' ids."""
    with db.write() as s:
        forms.create_app(s, key=app, name=app.upper())
        forms.create_form(s, app=app, raw=raw)
        publishing.publish(s, app=app, key=raw["key"], actor=ADMIN)
        pub = forms.published(s, app, raw["key"])
        return [records.create(s, pub, d, actor=ADMIN).id for d in docs]


def statements_sent(db: Any, work: Callable[[], Any], wanted: Callable[[str], bool]) -> int:
    """How many statements ``work`` sends that ``wanted`` picks (a cursor listener)."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        if wanted(statement):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        work()
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    return len(seen)
