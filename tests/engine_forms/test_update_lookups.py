"""An update looks a unique field up only when it changes the field's value.

A rule setting a customer's status used to look their mobile and ID number up again on
every update (a sixth of the dispatcher's time with the CRM's rules); a value the record
keeps cannot have become someone else's.
"""

from __future__ import annotations

import pytest

from engine_forms import forms, records
from engine_forms.validation import RecordInvalid
from tests.engine_forms.form_setup import ADMIN, form_with_records, statements_sent

TICKET = {"key": "ticket", "name": "工单", "fields": [
    {"key": "code", "label": "代码", "type": "text", "unique": True},
    {"key": "state", "label": "状态", "type": "text"}]}


def _lookups_of_code(db, work) -> int:
    """How many statements ``work`` sends that read the ``code`` field."""
    return statements_sent(db, work, lambda sql: sql.lstrip().upper().startswith("SELECT")
                           and "code" in sql)


def test_an_update_that_keeps_a_unique_value_does_not_look_it_up(db):
    first, _ = form_with_records(db, "ops", TICKET, [{"code": "A-1", "state": "new"},
                                                   {"code": "B-2", "state": "new"}])

    def update(payload: dict, version: int) -> None:
        with db.write() as s:
            records.update(s, forms.published(s, "ops", "ticket"), first, payload,
                           expected_version=version, actor=ADMIN)

    assert _lookups_of_code(db, lambda: update({"state": "open"}, 1)) == 0
    assert _lookups_of_code(db, lambda: update({"code": "A-9"}, 2)) == 1  # a new value
    with pytest.raises(RecordInvalid) as refused:  # and the look-up still refuses a used one
        update({"code": "B-2"}, 3)
    assert [p.code for p in refused.value.problems] == ["duplicate"]
