"""A form's record view (``view``, issue 18) is part of its spec: checked with the rest of
the form (its own fields named, of the right type), kept by a save and an export, and
wrong in a way an admin is told precisely."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import templates_catalog
from engine_forms.spec import SpecError, load_form

CUSTOMER = Path(templates_catalog.__file__).parent / "bank_intermediary_crm/forms/customer.json"


def _customer() -> dict:
    return json.loads(CUSTOMER.read_text(encoding="utf-8"))


def _problems(view: dict) -> list[str]:
    raw = _customer() | {"view": view}
    with pytest.raises(SpecError) as err:
        load_form(raw)
    return err.value.problems


def test_the_crm_customer_view_loads_and_round_trips():
    raw = _customer()
    spec = load_form(raw)
    assert spec.view is not None
    assert [r.form for r in spec.view.related] == ["loan_case", "follow_up"]
    assert spec.view.header.status == "status" and spec.view.header.tags == "tags"
    assert spec.dump()["view"] == raw["view"]


@pytest.mark.parametrize(("view", "problem"), [
    ({"header": {"fields": ["nope"]}}, "view.header.fields[0]: 'nope' is not a field"),
    ({"header": {"tags": "name"}}, "view.header.tags: 'name' is a text field, not a "
                                   "multiselect"),
    ({"header": {"status": "tags"}}, "view.header.status: 'tags' is a multiselect field, "
                                     "not a select"),
    ({"cards": [{"field": "note"}]}, "view.cards[0]: 'note' is a textarea field, not a "
                                     "figure"),
    ({"actions": [{"type": "upload", "field": "name"}]}, "view.actions[0]: 'name' is a "
                                                          "text field, not an attachment"),
    ({"actions": [{"type": "upload"}]}, "view.actions[0]: upload needs 'field'"),
    ({"actions": [{"type": "create", "form": "follow_up"}]},
     "view.actions[0]: create needs 'form' and 'via'"),
    ({"related": [{"form": "follow_up", "via": "customer"}] * 2},
     "view.related: follow_up.customer is listed twice"),
])
def test_a_wrong_reference_is_named(view, problem):
    assert any(p.startswith(problem) for p in _problems(view))


@pytest.mark.parametrize("view", [
    {"colour": "red"},
    {"related": [{"form": "Follow Up", "via": "customer"}]},
    {"related": [{"form": "follow_up", "via": "customer", "limit": 500}]},
    {"related": [{"form": "follow_up", "via": "customer", "sort": "created_at; drop"}]},
    {"actions": [{"type": "launch_rocket"}]},
])
def test_a_malformed_view_is_refused_by_the_meta_schema(view):
    problems = _problems(copy.deepcopy(view))
    assert problems and all(p.startswith("/view") for p in problems)
