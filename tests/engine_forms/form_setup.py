"""Set-up shared by the form engine's tests."""

from __future__ import annotations

from typing import Any

from engine_forms import forms, publishing, records
from platform_core.store import Actor
from tests.statements import statements_sent  # noqa: F401 - the form tests' helper

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


