"""A relation to many records filters by the ids it holds: ``eq``/``in`` — it links to
that record / one of those, ``ne``/``not_in`` — it does not, ``is_empty`` — it links to
none; ordering operators and sorting by it are refused by name. (Relations to one record:
tests/templates_catalog/test_relation_queries.py.)"""

from __future__ import annotations

import json

import pytest

from platform_core.app import create_app
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import ok
from tests.engine_forms.test_schemathesis import make_kit
from tests.security_setup import client_as

FORMS = "/api/v1/apps/kit/forms"
PARTS = f"{FORMS}/part/records"


@pytest.fixture
def world(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path, api_rate_per_minute=1_000_000,
                                   background_jobs=False), db=db)
    admin = client_as(app, db, "admin")
    make_kit(admin)  # one item, one part without others
    first = ok(admin.get(PARTS))["items"][0]["id"]
    item = {t: ok(admin.post(f"{FORMS}/item/records", json={"title": t, "ok": True}),
                  201)["id"] for t in ("A", "B")}

    def part(others: list[int]) -> int:
        return ok(admin.post(PARTS, json={"item": item["A"], "others": others}), 201)["id"]

    parts = {"none": first, "a": part([item["A"]]), "ab": part([item["A"], item["B"]]),
             "empty": part([])}
    return admin, item, parts


def matching(admin, op: str, value=None) -> set[int]:
    leaf = {"field": "others", "op": op} | ({} if value is None else {"value": value})
    return {r["id"] for r in ok(admin.get(PARTS, params={"filter": json.dumps(leaf)}))["items"]}


def test_a_relation_to_many_records_filters_by_the_ids_it_holds(world):
    admin, item, p = world
    assert matching(admin, "eq", item["A"]) == {p["a"], p["ab"]}
    assert matching(admin, "eq", item["B"]) == {p["ab"]}
    assert matching(admin, "in", [item["B"], 999]) == {p["ab"]}
    assert matching(admin, "ne", item["B"]) == {p["none"], p["a"], p["empty"]}
    assert matching(admin, "not_in", [item["A"]]) == {p["none"], p["empty"]}
    assert matching(admin, "is_empty") == {p["none"], p["empty"]}
    assert matching(admin, "is_not_empty") == {p["a"], p["ab"]}
    inside = {"not": {"field": "others", "op": "eq", "value": item["A"]}}
    assert {r["id"] for r in ok(admin.get(PARTS, params={
        "filter": json.dumps(inside)}))["items"]} == {p["none"], p["empty"]}


@pytest.mark.parametrize(("params", "path", "words"), [
    ({"filter": {"field": "others", "op": "gt", "value": 1}}, "filter.op", "relation to many"),
    ({"filter": {"field": "others", "op": "eq", "value": "x"}}, "filter.value", "record id"),
    ({"sort": "others"}, "sort[0]", "cannot be sorted by"),
])
def test_what_does_not_apply_to_it_is_refused_by_name(world, params, path, words):
    admin, _item, _p = world
    params = {k: json.dumps(v) if k == "filter" else v for k, v in params.items()}
    refused = admin.get(PARTS, params=params)
    assert refused.status_code == 422, refused.text
    assert refused.json()["path"] == path and words in refused.json()["detail"]


def test_the_list_pages_filter_builder_offers_it(db, world):
    from starlette.datastructures import QueryParams

    from engine_forms.forms import published
    from frontend.workspace.filters import conditions, filter_of, filterable
    from platform_core.security.permissions import FormAccess

    admin, item, p = world
    access = FormAccess("kit", "part", {"read": ("all",)}, (({}, "write"),))
    with db.read() as s:
        pub = published(s, "kit", "part")
    assert "others" in [f.key for f in filterable(pub, access)]
    chosen = conditions(QueryParams(f"c0.f=others&c0.o=is&c0.v={item['B']}"), pub, access)
    where = filter_of(chosen, "and")
    assert where == {"field": "others", "op": "eq", "value": item["B"]}
    assert {r["id"] for r in ok(admin.get(PARTS, params={
        "filter": json.dumps(where)}))["items"]} == {p["ab"]}


def test_editing_a_record_keeps_its_links_and_changing_a_relation_moves_them(world, db):
    """An update re-writes the link rows (what rollups, the 360° page and reverse look-ups
    read) only for the relations it changes; the others stay exactly as they were."""
    from platform_core.store import links_from

    admin, item, p = world

    def links(part: int) -> dict[str, list[int]]:
        with db.read() as s:
            return {f: links_from(s, part, f) for f in ("item", "others")}

    assert links(p["ab"]) == {"item": [item["A"]], "others": [item["A"], item["B"]]}
    row = ok(admin.get(f"{PARTS}/{p['ab']}"))
    row = ok(admin.patch(f"{PARTS}/{p['ab']}", json={"weight": "3.50"},
                         headers={"If-Match": str(row["row_version"])}))
    assert links(p["ab"]) == {"item": [item["A"]], "others": [item["A"], item["B"]]}
    ok(admin.patch(f"{PARTS}/{p['ab']}", json={"item": item["B"], "others": [item["B"]]},
                   headers={"If-Match": str(row["row_version"])}))
    assert links(p["ab"]) == {"item": [item["B"]], "others": [item["B"]]}
    assert matching(admin, "eq", item["A"]) == {p["a"]}
