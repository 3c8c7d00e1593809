"""Property: whatever roles a user holds, the list API returns exactly the rows and fields
a plain reading of the permission rules allows (on SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_forms import fieldtypes, forms, records
from engine_forms.service import Caller, FieldNotPermitted, check_query, list_page
from platform_core.errors import QueryError
from platform_core.expressions import register_builtins as register_functions
from platform_core.security.permissions import ACTIONS, FIELD_LEVELS, SCOPES, combine
from platform_core.security.principal import Principal
from platform_core.store import Actor
from tests.security_setup import add_department

ITEM = {"key": "item", "name": "条目", "fields": [
    {"key": "a", "label": "A", "type": "text"},
    {"key": "b", "label": "B", "type": "number"},
    {"key": "c", "label": "C", "type": "text", "sensitive": {"mask": True}}]}
RANK = {level: i for i, level in enumerate(FIELD_LEVELS)}
fieldtypes.register_builtins()  # as the app factory does; the spec meta-schema needs them
register_functions()


@pytest.fixture
def world(db):
    hq = add_department(db, "HQ")
    north = add_department(db, "North", hq)
    south = add_department(db, "South", hq)
    north_east = add_department(db, "NE", north)
    depts = {"hq": hq, "north": north, "south": south, "ne": north_east}
    with db.write() as s:
        forms.create_app(s, key="t", name="T")
        forms.create_form(s, app="t", raw=ITEM)
        from engine_forms.publishing import publish

        publish(s, app="t", key="item", actor=Actor(None))
        pub = forms.published(s, "t", "item")
        rows = []
        for i in range(24):
            owner = 1 + i % 4
            dept = list(depts.values())[i % 4 if i % 5 else (i // 5) % 4]
            rec = records.create(s, pub, {"a": f"x{i}", "b": i, "c": f"secret{i}"},
                                 actor=Actor(owner, dept, f"u{owner}"))
            rows.append((rec.id, owner, dept, i))
    paths = {hq: [hq, north, south, north_east], north: [north, north_east],
             south: [south], north_east: [north_east]}
    return db, depts, rows, paths


scope = st.one_of(st.sampled_from(SCOPES),
                  st.integers(0, 23).map(lambda k: {"filter": {"field": "b", "op": "gte",
                                                               "value": k}}))
entry = st.fixed_dictionaries(
    {"actions": st.lists(st.sampled_from(ACTIONS), unique=True, max_size=4)
     .map(lambda a: sorted({*a, "read"})), "scope": scope},
    optional={"fields": st.dictionaries(st.sampled_from(["a", "b", "c"]),
                                        st.sampled_from(FIELD_LEVELS), max_size=3),
              "default_field": st.sampled_from(FIELD_LEVELS)})
key = st.sampled_from(["t.item", "t.*", "*"])
roles = st.lists(st.dictionaries(key, entry, min_size=1, max_size=2), min_size=1, max_size=3)


def expected_rows(perms: list[dict[str, Any]], user: int, dept: int, rows, paths) -> set[int]:
    seen = set()
    for p in perms:
        forms_ = p["forms"]
        e = forms_.get("t.item") or forms_.get("t.*") or forms_.get("*")
        if not e or "read" not in e["actions"]:
            continue
        sc = e.get("scope", "own")
        for rid, owner, rdept, b in rows:
            if (sc == "all" or (sc == "own" and owner == user)
                    or (sc == "department" and rdept == dept)
                    or (sc == "department_tree" and rdept in paths[dept])
                    or (isinstance(sc, dict) and b >= sc["filter"]["value"])):
                seen.add(rid)
    return seen


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(roles=roles, user=st.integers(1, 4), where=st.sampled_from(["hq", "north", "south",
                                                                     "ne"]))
def test_rows_and_fields_match_the_rules(world, roles, user, where):
    db, depts, rows, paths = world
    perms = [{"forms": r} for r in roles]
    principal = Principal(user_id=user, username=f"u{user}", display_name="u",
                          department_id=depts[where], roles=(), role_perms=tuple(perms),
                          via="token")
    access = combine(perms, "t", "item")
    caller = Caller(principal, access, keyring=None)
    with db.read() as s:
        pub = forms.published(s, "t", "item")
        items, _ = list_page(s, caller, pub, filter=None, sort=None, cursor=None, limit=1000,
                             fields=None, deleted="exclude")
    assert {d["id"] for d in items} == expected_rows(perms, user, depts[where], rows, paths)
    for doc in items:
        for field in ("a", "b", "c"):
            levels = []
            for p in perms:
                e = p["forms"].get("t.item") or p["forms"].get("t.*") or p["forms"].get("*")
                if e and "read" in e["actions"]:
                    levels.append((e.get("fields") or {}).get(
                        field, e.get("default_field", "write")))
            top = max(levels, key=RANK.__getitem__)
            assert (field in doc["data"]) == (top != "hidden")
            if top == "masked" and doc["data"].get(field) not in (None, ""):
                assert "*" in str(doc["data"][field])  # a masked level always masks
        if "c" in doc["data"]:
            masked = not access.allows("unmask") or access.level("c") == "masked"
            assert doc["data"]["c"].startswith("s*") == masked
    with db.read() as s:
        pub = forms.published(s, "t", "item")
        for field in ("a", "b", "c"):
            try:
                check_query(pub, access, filter=None, sort=[field], fields=None)
                sortable = True
            except (QueryError, FieldNotPermitted):  # masked / hidden (not permitted)
                sortable = False
            assert sortable == (access.readable(field) and access.level(field) != "masked"
                                and not (field == "c" and not access.allows("unmask")))
