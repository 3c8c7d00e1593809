"""No input is a server error: arbitrary JSON in every query parameter of the generated
per-app OpenAPI documents, and in the bodies of the report and dashboard endpoints.

The apps: ``kit`` (a form with every field type, tests/engine_forms/test_schemathesis.py)
and the CRM template (reports, dashboards, flows, rules). Every GET operation of their
documents is called with values drawn for each of its query parameters — JSON of every
shape (wrong types at every position, deep nesting, numbers past 64 bits, NaN and
Infinity, lone surrogates, NUL), filter-shaped JSON built around the form's real fields
and operators with junk where a value goes, comma lists of field names, raw text — and
path parameters seeded with things that exist; and in every parameter, every run, the
worst cases (``WORST``: JSON nested 3,000 deep, a 5,000-digit number, an operator that
is a list). Report and dashboard specs are posted and
put both as junk and as the real specs with one part replaced by junk.

Any answer of 500 or more, and any exception the app raises, is a failure; each distinct
one is reported once with the request that caused it. Hypothesis is derandomized: the
same requests on every run. ``QIAO_FUZZ_EXAMPLES`` (per operation, default 6) runs more.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import traceback
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from platform_core.app import create_app
from platform_core.settings import load_settings
from platform_core.store.query import OPS
from templates_catalog.bundle import template
from templates_catalog.install import install
from tests.engine_forms.forms_setup import ok
from tests.engine_forms.test_schemathesis import make_kit
from tests.security_setup import SYSTEM, client_as

EXAMPLES = int(os.environ.get("QIAO_FUZZ_EXAMPLES", "6"))
SPECIAL = ["", " ", "null", "[]", "{}", "1e999", "-1e999", "NaN", "Infinity", "1" * 5000,
           "[" * 3000 + "]" * 3000, '{"a":' * 3000 + "1" + "}" * 3000, "\"\\ud800\"",
           "\"\\u0000\"", "-", ",", "-,", ",,-id", "id,-id", "a" * 300, "∞", "客户"]

WORST = ["[" * 3000 + "]" * 3000, "1" * 5000, '{"field": "id", "op": ["eq"], "value": 1}']
scalars = (st.none() | st.booleans() | st.integers()
           | st.integers(min_value=-(10**30), max_value=10**30)
           | st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**300, 0, -1, 1.5, 1e308, -0.0])
           | st.floats() | st.text(max_size=20)
           | st.sampled_from(["\ud800", "a\x00b", "2026-01-01", "2026-13-45", "1.005",
                             "13800001234", "x" * 2000, "eq", "in", "id", "-id"]))
junk = st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                    | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)


def filters(fields: list[str]) -> st.SearchStrategy[Any]:
    """Filter-shaped JSON: real fields and operators, junk in every position."""
    field = st.sampled_from(fields) | junk
    op = st.sampled_from(sorted(OPS)) | junk
    value = junk | st.lists(scalars, max_size=3)
    leaf = st.fixed_dictionaries({"field": field, "op": op}, optional={"value": value,
                                                                      "extra": junk})
    return st.recursive(leaf | junk, lambda c: (
        st.dictionaries(st.sampled_from(["and", "or", "not"]), c | st.lists(c, max_size=3),
                        min_size=1, max_size=2)
        | st.fixed_dictionaries({"not": c})
        | st.fixed_dictionaries({"and": st.lists(c, max_size=3)})), max_leaves=10)


def sorts(fields: list[str]) -> st.SearchStrategy[str]:
    key = st.sampled_from(fields) | st.text(max_size=6)
    return st.lists(st.tuples(st.booleans(), key), max_size=10).map(
        lambda keys: ",".join(("-" if d else "") + k for d, k in keys))


def values(fields: list[str]) -> st.SearchStrategy[str]:
    """What a query parameter's value may be."""
    return (junk.map(json.dumps) | filters(fields).map(json.dumps) | sorts(fields)
            | st.text(max_size=30) | st.sampled_from(SPECIAL)
            | st.integers().map(str))


def mutated(doc: Any) -> st.SearchStrategy[Any]:
    """``doc`` with one part (a key's value or a list item, at any depth) replaced by junk,
    or a key added or removed."""
    spots: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        spots.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(doc, ())

    def apply(path: tuple[Any, ...], new: Any, drop: bool) -> Any:
        out = copy.deepcopy(doc)
        if not path:
            return new
        parent = out
        for step in path[:-1]:
            parent = parent[step]
        if drop and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = new
        return out

    return st.builds(apply, st.sampled_from(spots), junk, st.booleans())


# -- the apps, their operations ----------------------------------------------------------


@pytest.fixture
def world(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path, api_rate_per_minute=1_000_000,
                                   background_jobs=False), db=db)
    admin = client_as(app, db, "admin")
    make_kit(admin)
    crm = template("bank_intermediary_crm")
    with db.write() as s:
        install(s, crm, actor=SYSTEM, key="crm", template="bank_intermediary_crm")
    customer = ok(admin.post("/api/v1/apps/crm/forms/customer/records",
                             json={"name": "张三", "mobile": "13800001234"}), 201)
    ok(admin.post("/api/v1/apps/crm/forms/loan_case/records",
                  json={"customer": customer["id"], "amount": "1200000.00",
                        "loan_type": "mortgage"}), 201)
    ok(admin.post("/api/v1/apps/crm/forms/follow_up/records", json={
        "customer": customer["id"], "method": "phone", "summary": "首访",
        "follow_date": "2026-01-05"}), 201)
    raising = TestClient(app, raise_server_exceptions=True)
    raising.headers["Authorization"] = admin.headers["Authorization"]
    return raising, admin, crm


def seeds(admin: Any, key: str, crm: Any) -> dict[str, list[str]]:
    """Values of path parameters that name something that exists."""
    out: dict[str, list[str]] = {"report": [], "dashboard": [], "flow": [], "key": []}
    for form in ok(admin.get(f"/api/v1/apps/{key}/openapi.json"))["info"]["x-qiao-forms"]:
        items = ok(admin.get(f"/api/v1/apps/{key}/forms/{form}/records"))["items"]
        out[f"record_id@{form}"] = [str(items[0]["id"])] if items else ["1"]
    if key == "crm":
        out["report"] = sorted(crm.reports)
        out["dashboard"] = sorted(crm.dashboards)
        out["flow"] = sorted(crm.flows)
        out["key"] = sorted(crm.rules)
    return out


def concrete(path: str, found: dict[str, list[str]]) -> list[str]:
    """``path`` with its placeholders filled by seeds (every report, the form's record…)."""
    paths = [path]
    for name in re.findall(r"{(\w+)}", path):
        form = path.split("/forms/")[1].split("/")[0] if "/forms/" in path else ""
        options = found.get(f"{name}@{form}") or found.get(name) or ["1"]
        paths = [p.replace("{" + name + "}", v, 1) for p in paths for v in options]
    return paths


def form_fields(doc: dict[str, Any], path: str) -> list[str]:
    if "/forms/" not in path:
        return ["id", "-id", "stage", "customer"]
    form = path.split("/forms/")[1].split("/")[0]
    schema = doc["components"]["schemas"].get(f"{form}.Data", {})
    return ["id", "created_at", "owner_id", *schema.get("properties", {})]


def get_operations(doc: dict[str, Any], found: dict[str, list[str]]
                   ) -> list[tuple[str, list[str], list[str]]]:
    """(concrete path, its query parameters, the form's fields) per GET operation."""
    params = doc["components"].get("parameters", {})
    out = []
    for path, ops in sorted(doc["paths"].items()):
        op = ops.get("get")
        if op is None:
            continue
        names = []
        for p in op.get("parameters", ()):
            p = params[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
            if p.get("in") == "query":
                names.append(p["name"])
        for real in concrete(path, found):
            out.append((real, names, form_fields(doc, path)))
    return out


def call(client: TestClient, method: str, url: str, failures: dict[str, str],
         label: str, **kwargs: Any) -> None:
    try:
        answer = client.request(method, url, **kwargs)
    except httpx.InvalidURL:  # the client would not send it (a URL past 64 KiB)
        return
    except Exception as exc:  # noqa: BLE001 - the app raised: a server error
        where = traceback.extract_tb(exc.__traceback__)[-1]
        failures.setdefault(f"{label}: {type(exc).__name__} at {where.filename}:"
                            f"{where.lineno}", f"{exc!s:.300}\n{method} {url} {kwargs!r:.600}")
        return
    if answer.status_code >= 500:
        failures.setdefault(f"{label}: {answer.status_code}",
                            f"{answer.text[:300]}\n{method} {url} {kwargs!r:.600}")


FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate])


def fuzz_get(client: TestClient, path: str, names: list[str], fields: list[str],
             failures: dict[str, str]) -> None:
    """GET ``path`` with values drawn for some of its query parameters ``names``."""
    label = f"GET {re.sub(r'/[0-9]+(?=/|$)', '/{id}', path)}"
    for name in names:  # the worst cases, in every parameter, every run
        for raw in WORST:
            call(client, "GET", path, failures, label, params={name: raw})

    @FUZZ
    @given(data=st.data())
    def run(data: Any) -> None:
        chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
        query = {n: data.draw(values(fields), label=n) for n in chosen}
        call(client, "GET", path, failures, label, params=query)

    run()


def fuzz_body(client: TestClient, kind: str, key: str, spec: Any,
              failures: dict[str, str]) -> None:
    """POST a new ``kind`` (report, dashboard) or PUT ``key`` with a broken body; run it."""
    base = "/api/v1/apps/crm"

    @FUZZ
    @given(body=mutated(spec) | junk, put=st.booleans())
    def run(body: Any, put: bool) -> None:
        if put:
            call(client, "PUT", f"{base}/{kind}/{key}", failures, f"PUT {kind}/{{key}}",
                 json=body)
        else:
            call(client, "POST", f"{base}/{kind}", failures, f"POST {kind}", json=body)
        call(client, "GET", f"{base}/{kind}/{key}/data", failures,
             f"GET {kind}/{{key}}/data after a write")

    run()


def test_no_query_parameter_or_report_body_is_a_server_error(world, caplog):
    client, admin, crm = world
    caplog.set_level(logging.CRITICAL, logger="qiao.http")
    failures: dict[str, str] = {}
    for key in ("kit", "crm"):
        doc = ok(admin.get(f"/api/v1/apps/{key}/openapi.json"))
        for path, names, fields in get_operations(doc, seeds(admin, key, crm)):
            if names:
                fuzz_get(client, path, names, fields, failures)
    for kind in ("reports", "dashboards"):
        for key, spec in sorted(getattr(crm, kind).items()):
            fuzz_body(client, kind, key, spec, failures)
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in sorted(failures.items()))


# -- what it found, kept fixed ------------------------------------------------------------


@pytest.mark.parametrize("where", ["records", "export"])
def test_an_operator_that_is_a_list_is_a_named_422(world, where):
    _client, admin, _crm = world
    bad = {"not": {"field": "id", "op": ["null", "null"], "value": 0}}
    answer = admin.get(f"/api/v1/apps/crm/forms/loan_case/{where}",
                       params={"filter": json.dumps(bad)})
    assert answer.status_code == 422, answer.text
    assert "operator" in answer.json()["detail"]


@pytest.mark.parametrize("raw", ["[" * 3000 + "]" * 3000, "1" * 5000, '"\\ud800"'])
def test_json_nested_too_deep_or_too_long_is_a_named_422(world, raw):
    _client, admin, crm = world
    report = sorted(crm.reports)[0]
    answers = {
        "filter": admin.get("/api/v1/apps/crm/forms/loan_case/records",
                            params={"filter": raw}),
        "count": admin.get("/api/v1/apps/crm/forms/loan_case/records/count",
                           params={"filter": raw}),
        "params": admin.get(f"/api/v1/apps/crm/reports/{report}/data", params={"params": raw}),
        "keys": admin.get(f"/api/v1/apps/crm/reports/{report}/drill", params={"keys": raw}),
    }
    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(answers, 422)
