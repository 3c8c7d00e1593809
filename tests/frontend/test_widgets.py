"""Every field type's widget round-trips its value, driven by the field-type registry.

A contract test (no browser) checks that every registered field type names a widget whose
macro exists and renders. Then, in a real browser, one test per registered type: an admin
opens a new ``item`` of app ``kit`` (one field of every type), puts a value into that
type's widget the way a person would (types, chooses, searches, adds a subtable row,
uploads a file, walks the address cascader) — or, for a computed type, reads what the
page shows — and saves; the stored value is the API value expected, the record page
shows the expected text, and the edit page shows the value in the widget again and
saving it unchanged keeps it. A type registered without a case in ``CASES`` fails.

The app, its users and its browser page are made once for the module (the per-test
reset of the ``db`` fixture would make every test rebuild them); each test writes its
own record, and the module empties the database when it is done.

What it found, fixed: a textarea was stored with the CRLF line breaks a browser posts
(``widgets._raw_text`` now stores LF, as the API does), and the record page folded a
textarea's lines into one (``values.Shown`` shows them with ``<br>``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select

from engine_forms import service
from engine_forms.fieldtypes import FIELD_TYPES
from engine_forms.fieldtypes import register_builtins as register_field_types
from engine_forms.forms import create_app, create_form, published, put_draft
from engine_forms.publishing import publish
from engine_forms.records import create as create_record
from engine_forms.service import Caller
from engine_forms.spec import FieldSpec
from frontend.web import TEMPLATES
from frontend.workspace import setup
from frontend.workspace.fields import FieldView
from frontend.workspace.widgets import WIDGETS
from frontend.workspace.widgets import register_builtins as register_widgets
from platform_core.security.models import User
from platform_core.security.principal import load_principal
from tests.conftest import _reset
from tests.frontend.conftest import SERVED, Web, add_user, path_of
from tests.security_setup import SYSTEM, add_department

register_field_types()
register_widgets()

FORMS = "/apps/kit/forms/item"
OPTIONS = [{"value": "a", "label": "甲"}, {"value": "b", "label": "乙"},
           {"value": "c", "label": "丙"}]
TAGS = [{"value": "urgent", "label": "紧急"}, {"value": "vip", "label": "重要"},
        {"value": "normal", "label": "常规"}]
PART = {"key": "part", "name": "部件", "title_field": "name", "fields": [
    {"key": "name", "label": "名称", "type": "text"},
    {"key": "weight", "label": "重量", "type": "money"},
    {"key": "item", "label": "物品", "type": "relation", "target": "item"}]}


# -- the cases: one per field type ------------------------------------------------------


@dataclass(frozen=True)
class Kit:
    """What the module's app holds besides the form: ids the cases expect."""

    user_id: int
    department_id: int
    part_id: int  # part 螺丝, weight 2.00


@dataclass(frozen=True)
class Case:
    """How one field type's widget is driven and what must come out of it.

    ``enter`` puts the value in (a computed type's ``enter`` checks what the new page
    shows instead) and returns whatever ``api`` needs (an uploaded file's id);
    ``api(kit, entered)`` is the stored value expected (a pattern: it must match);
    ``shown`` the record page's text of the field (``read_shown`` reads it otherwise);
    ``widget`` what ``read_widget`` reads from the edit page's widget; ``after_create``
    runs once the record exists (a rollup's source rows)."""

    field: dict[str, Any]
    enter: Callable[[Any, Kit], Any]
    api: Callable[[Kit, Any], Any]
    shown: Any
    read_widget: Callable[[Any, str], Any]
    widget: Any
    read_shown: Callable[[Any, str], Any] | None = None
    after_create: Callable[[Any, int], None] | None = None

    @property
    def key(self) -> str:
        return self.field["key"]


def input_value(page: Any, key: str) -> str:
    return page.input_value(f"#f-{key}")


def chosen(page: Any, key: str) -> list[str]:
    """The items a Tom Select shows as chosen (their labels, without the ✕ buttons)."""
    return page.locator(f"#row-{key} .ts-control .item").evaluate_all(
        "items => items.map(item => item.firstChild.textContent.trim())")


def output(page: Any, key: str) -> str:
    return page.inner_text(f"#out-{key}")


def pick(page: Any, key: str, text: str) -> None:
    """Open the field's Tom Select, type ``text`` and click the option it finds.

    Paced as a person is: typing starts once the list is open (Tom Select empties its
    search box as it takes the focus) and, for a record picker, its first options came;
    the click waits for the list filtered by all of the text, and for a picker for the
    answer to that search (a refresh or an answer due after the click opens the list
    again, over the page)."""
    wrapper = f"#row-{key} .ts-wrapper"
    remote = page.get_attribute(f"#f-{key}", "data-remote")
    page.click(f"{wrapper} .ts-control")
    page.locator(f"{wrapper}.dropdown-active" + (".preloaded:not(.loading)" if remote
                                                 else "")).wait_for()
    if remote:
        with page.expect_response(lambda r: f"?q={quote(text)}" in r.url):
            page.keyboard.type(text)
        page.locator(f"{wrapper}:not(.loading)").wait_for()
    else:
        page.keyboard.type(text)
    option = page.locator(f"{wrapper} .ts-dropdown").get_by_role("option", name=text,
                                                                 exact=True)
    option.locator(".highlight", has_text=text).wait_for()
    option.click()
    page.keyboard.press("Escape")


def typed(key: str, text: str) -> Callable[[Any, Kit], None]:
    return lambda page, _kit: page.fill(f"#f-{key}", text)


def chose(key: str, label: str) -> Callable[[Any, Kit], None]:
    return lambda page, _kit: page.select_option(f"#f-{key}", label=label)


def value(v: Any) -> Callable[[Kit, Any], Any]:
    return lambda _kit, _entered: v


def enter_tags(page: Any, _kit: Kit) -> None:
    pick(page, "tags", "重要")
    pick(page, "tags", "紧急")


def enter_address(page: Any, _kit: Kit) -> None:
    page.select_option("#f-addr", "浙江省")
    page.wait_for_selector("#f-addr-city option:text-is('杭州市')", state="attached")
    page.select_option("#f-addr-city", "杭州市")
    page.wait_for_selector("#f-addr-district option:text-is('西湖区')", state="attached")
    page.select_option("#f-addr-district", "西湖区")
    page.fill("#f-addr-detail", "文三路 1 号")


def read_address(page: Any, _key: str) -> list[str]:
    return [page.input_value(s) for s in ("#f-addr", "#f-addr-city", "#f-addr-district",
                                          "#f-addr-detail")]


def enter_lines(page: Any, _kit: Kit) -> None:
    """Three rows added and filled; the second removed, the last moved up."""
    for name, done, day in (("垫片", "是", "2024-03-01"), ("多余", "否", ""),
                            ("螺母", "否", "")):
        page.click("#row-lines [data-add-row]")
        row = page.locator("#row-lines tbody tr").last
        row.locator("[name$=':name']").fill(name)
        row.locator("select[name$=':done']").select_option(label=done)
        if day:
            row.locator("[name$=':on']").fill(day)
    rows = page.locator("#row-lines tbody tr")
    rows.nth(1).get_by_role("button", name="删除此行").click()
    rows.nth(1).get_by_role("button", name="上移").click()


def read_lines(page: Any, _key: str) -> list[list[str]]:
    rows = page.locator("#row-lines tbody tr")
    return [[rows.nth(i).locator(f"[name$=':{c}']").input_value()
             for c in ("name", "done", "on")] for i in range(rows.count())]


def shown_lines(page: Any, _key: str) -> list[str]:
    return page.locator("[data-field=lines] td").all_inner_texts()


FILE = {"name": "报价单.pdf", "mimeType": "application/pdf",
        "buffer": b"%PDF-1.4\n% a quotation\n%%EOF\n"}


def enter_files(page: Any, _kit: Kit) -> int:
    page.set_input_files("#f-files", [FILE])
    uploaded = page.locator("#row-files li[data-file] input[name='f:files']")
    uploaded.wait_for(state="attached")
    return int(uploaded.input_value())


def read_files(page: Any, _key: str) -> list[str]:
    return page.locator("#row-files li[data-file] a").all_inner_texts()


def shows_nothing_yet(key: str) -> Callable[[Any, Kit], None]:
    """A computed field with nothing to compute from on a new record (an auto number is
    given on save, a rollup has no rows linking to a record not yet saved)."""
    def check(page: Any, _kit: Kit) -> None:
        assert output(page, key) == "—"
    return check


def enter_amount_for_size(page: Any, _kit: Kit) -> None:
    page.fill("#f-amount", "1,500")
    page.wait_for_selector("#out-size:text-is('大')")  # the live check computes it


def enter_part_for_lookup(page: Any, _kit: Kit) -> None:
    pick(page, "part", "螺丝")
    page.wait_for_selector("#out-part_weight:text-is('¥2.00')")


def add_parts(db: Any, item_id: int) -> None:
    with db.write() as s:
        pub = published(s, "kit", "part")
        for name, weight in (("垫圈甲", "1.25"), ("垫圈乙", "2.25")):
            create_record(s, pub, {"name": name, "weight": weight, "item": item_id},
                          actor=SYSTEM)


CODE = re.compile(r"IT-\d{4}")

CASES: dict[str, Case] = {
    "text": Case({"key": "title", "label": "名称", "type": "text", "max_length": 50},
                 typed("title", "螺丝刀"), value("螺丝刀"), "螺丝刀", input_value, "螺丝刀"),
    "textarea": Case({"key": "notes", "label": "备注", "type": "textarea"},
                     typed("notes", "第一行\n第二行"), value("第一行\n第二行"), "第一行\n第二行",
                     input_value, "第一行\n第二行"),
    "number": Case({"key": "qty", "label": "数量", "type": "number"},
                   typed("qty", "1234.5"), value(1234.5), "1,234.5", input_value, "1234.5"),
    "money": Case({"key": "amount", "label": "金额", "type": "money"},
                  typed("amount", "¥1,500"), value("1500.00"), "¥1,500.00", input_value,
                  "1500.00"),
    "percent": Case({"key": "rate", "label": "税率", "type": "percent"},
                    typed("rate", "4.35"), value(4.35), "4.35%", input_value, "4.35"),
    "date": Case({"key": "day", "label": "日期", "type": "date"},
                 typed("day", "2024-02-29"), value("2024-02-29"), "2024-02-29", input_value,
                 "2024-02-29"),
    "datetime": Case({"key": "at", "label": "时间", "type": "datetime"},
                     typed("at", "2024-02-29T09:30"), value("2024-02-29T01:30:00Z"),
                     "2024-02-29 09:30", input_value, "2024-02-29T09:30"),
    "boolean": Case({"key": "ok", "label": "合格", "type": "boolean"},
                    chose("ok", "是"), value(True), "是", input_value, "true"),
    "select": Case({"key": "kind", "label": "类别", "type": "select", "options": OPTIONS},
                   chose("kind", "乙"), value("b"), "乙", input_value, "b"),
    "multiselect": Case({"key": "tags", "label": "标签", "type": "multiselect",
                         "options": TAGS},
                        enter_tags, value(["urgent", "vip"]), "紧急 重要", chosen,
                        ["紧急", "重要"]),
    "phone": Case({"key": "tel", "label": "电话", "type": "phone", "accept": "mobile"},
                  typed("tel", "138 0013 8000"), value("13800138000"), "13800138000",
                  input_value, "13800138000"),
    "email": Case({"key": "mail", "label": "邮箱", "type": "email"},
                  typed("mail", "Li.Lei@Example.cn"), value("li.lei@example.cn"),
                  "li.lei@example.cn", input_value, "li.lei@example.cn"),
    "id_card": Case({"key": "idc", "label": "身份证", "type": "id_card"},
                    typed("idc", "11010519491231002x"), value("11010519491231002X"),
                    "11010519491231002X", input_value, "11010519491231002X"),
    "address": Case({"key": "addr", "label": "地址", "type": "address"},
                    enter_address,
                    value({"province": "浙江省", "city": "杭州市", "district": "西湖区",
                           "detail": "文三路 1 号"}),
                    "浙江省 杭州市 西湖区 文三路 1 号", read_address,
                    ["浙江省", "杭州市", "西湖区", "文三路 1 号"]),
    "user": Case({"key": "who", "label": "负责人", "type": "user"},
                 lambda page, _kit: pick(page, "who", "Zhang.San"),
                 lambda kit, _e: kit.user_id, "Zhang.San", chosen, ["Zhang.San"]),
    "department": Case({"key": "dept", "label": "部门", "type": "department"},
                       lambda page, _kit: pick(page, "dept", "销售部"),
                       lambda kit, _e: kit.department_id, "销售部", chosen, ["销售部"]),
    "relation": Case({"key": "part", "label": "部件", "type": "relation", "target": "part"},
                     lambda page, _kit: pick(page, "part", "螺丝"),
                     lambda kit, _e: kit.part_id, "螺丝", chosen, ["螺丝"]),
    "subtable": Case({"key": "lines", "label": "明细", "type": "subtable", "fields": [
                         {"key": "name", "label": "名称", "type": "text"},
                         {"key": "done", "label": "完成", "type": "boolean"},
                         {"key": "on", "label": "日期", "type": "date"}]},
                     enter_lines,
                     value([{"name": "螺母", "done": False},
                            {"name": "垫片", "done": True, "on": "2024-03-01"}]),
                     ["螺母", "否", "", "垫片", "是", "2024-03-01"], read_lines,
                     [["螺母", "false", ""], ["垫片", "true", "2024-03-01"]],
                     read_shown=shown_lines),
    "attachment": Case({"key": "files", "label": "附件", "type": "attachment",
                        "max_files": 3, "accept": [".pdf", "image/*"]},
                       enter_files, lambda _kit, file_id: [file_id], "报价单.pdf",
                       read_files, ["报价单.pdf"]),
    "auto_number": Case({"key": "code", "label": "编号", "type": "auto_number",
                         "pattern": "IT-{0000}"},
                        shows_nothing_yet("code"), value(CODE), CODE, output, CODE),
    "formula": Case({"key": "size", "label": "规模", "type": "formula",
                     "expression": 'IF(amount >= 1000, "大", "小")'},
                    enter_amount_for_size, value("大"), "大", output, "大"),
    "lookup": Case({"key": "part_weight", "label": "部件重量", "type": "lookup",
                    "relation": "part", "field": "weight"},
                   enter_part_for_lookup, value("2.00"), "¥2.00", output, "¥2.00"),
    "rollup": Case({"key": "total_weight", "label": "总重", "type": "rollup",
                    "source": "part", "via": "item", "aggregate": "sum", "field": "weight"},
                   shows_nothing_yet("total_weight"), value("3.50"), "¥3.50", output, "¥3.50",
                   after_create=add_parts),
}

LINKED = ("relation", "lookup", "rollup")  # need form part, which needs form item first


def item_form(types: list[str]) -> dict[str, Any]:
    return {"key": "item", "name": "物品", "title_field": "title",
            "fields": [CASES[t].field for t in sorted(CASES) if t in types]}


# -- the contract: every registered type has a widget -----------------------------------


def test_every_field_type_has_a_widget_whose_macro_renders():
    setup.install()  # the template globals the macros use (address lists, China time)
    macros = TEMPLATES.env.get_template("widgets/inputs.html").module
    missing = sorted(set(FIELD_TYPES) - set(WIDGETS))
    assert not missing, f"field types without a widget in WIDGETS: {missing}"
    for key in sorted(FIELD_TYPES):
        widget = WIDGETS.get(key)
        assert callable(getattr(macros, widget.macro, None)), \
            f"{key}: widget macro {widget.macro!r} is not in widgets/inputs.html"
        if key not in CASES:
            continue  # its browser test fails, asking for a case
        spec = FieldSpec.model_validate(CASES[key].field)
        view = FieldView(spec=spec, macro=widget.macro, value=None, text="",
                         editable=not widget.readonly, required=False)
        if key == "subtable":
            view.columns = [FieldView(spec=FieldSpec.model_validate(c), macro=WIDGETS.get(
                c["type"]).macro, value=None, text="", editable=True, required=False)
                for c in spec.config["fields"]]
        html = str(macros.widget(view, f"f:{spec.key}", f"f-{spec.key}"))
        expected = "<output" if widget.readonly else f'name="f:{spec.key}'
        assert expected in html, f"{key}: the widget renders no {expected}: {html}"


# -- the round trips in a browser -------------------------------------------------------


@dataclass
class World:
    web: Web
    page: Any
    kit: Kit


def _build(db: Any) -> Kit:
    add_user(db, "admin.kit")
    add_user(db, "zhang.san")
    department_id = add_department(db, "销售部")
    others = [t for t in CASES if t not in LINKED]
    with db.write() as s:
        create_app(s, key="kit", name="测试应用")
        create_form(s, app="kit", raw=item_form(others))
        publish(s, app="kit", key="item", actor=SYSTEM)
        create_form(s, app="kit", raw=PART)
        publish(s, app="kit", key="part", actor=SYSTEM)
        put_draft(s, app="kit", key="item", raw=item_form(list(CASES)))
        publish(s, app="kit", key="item", actor=SYSTEM)
        pub = published(s, "kit", "part")
        screw = create_record(s, pub, {"name": "螺丝", "weight": "2.00"}, actor=SYSTEM)
        create_record(s, pub, {"name": "螺母", "weight": "1.50"}, actor=SYSTEM)
        user_id = s.execute(select(User.id).where(User.username == "zhang.san")).scalar_one()
    return Kit(user_id=user_id, department_id=department_id, part_id=screw.id)


@pytest.fixture(scope="module")
def world(browser: Any, server: str, _migrated: Any) -> Iterator[World]:
    """App ``kit`` and an admin signed in, for the whole module; the database emptied
    afterwards (as the ``db`` fixture does after each test)."""
    try:
        kit = _build(_migrated)
        web = Web(browser, server)
        yield World(web, web.signed_in("admin.kit"), kit)
        for context in web.contexts:
            context.close()
    finally:
        _reset(_migrated)


@pytest.fixture
def signed_in(world: World) -> Iterator[World]:
    """The module's page; a test fails if its pages reported a CSP violation or error."""
    world.web.reports.clear()
    yield world
    assert not world.web.reports, "the pages reported CSP violations or script errors: " \
        + "; ".join(world.web.reports)


def stored(db: Any, record_id: int, key: str) -> tuple[Any, int]:
    """The field's value as the API gives it (read as the admin), and the row version."""
    with db.read() as s:
        user = s.execute(select(User).where(User.username == "admin.kit")).scalar_one()
        principal = load_principal(s, user, via="test")
        caller = Caller(principal, principal.access("kit", "item"), SERVED["keyring"])
        doc = service.read_one(s, caller, published(s, "kit", "item"), record_id)
    return doc["data"].get(key), doc["row_version"]


def same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, re.Pattern):
        return isinstance(actual, str) and expected.fullmatch(actual) is not None
    return expected == actual


def saved(page: Any) -> int:
    """Wait for the record page a save leads to; the record's id."""
    page.wait_for_url(re.compile(r"/records/\d+\?msg=record_saved$"))
    return int(re.search(r"/records/(\d+)", path_of(page))[1])


@pytest.mark.parametrize("type_key", sorted(FIELD_TYPES))
def test_the_widget_round_trips_its_value(type_key, signed_in, _migrated):
    case = CASES.get(type_key)
    if case is None:
        pytest.fail(f"field type {type_key!r} has no case in tests/frontend/test_widgets.py "
                    "CASES: say how its widget is driven and what it must store and show")
    page, kit, key = signed_in.page, signed_in.kit, case.key
    page.goto(f"{FORMS}/new")
    if WIDGETS.get(type_key).readonly:
        assert page.locator(f"#row-{key} [name^='f:{key}']").count() == 0, \
            "a computed field has an input"
    entered = case.enter(page, kit)
    page.click("#save")
    record_id = saved(page)
    if case.after_create:
        case.after_create(_migrated, record_id)
        page.reload()
    expected = case.api(kit, entered)
    value, version = stored(_migrated, record_id, key)
    assert same(expected, value), f"stored {value!r}, expected {expected!r}"
    read_shown = case.read_shown or (lambda p, k: p.inner_text(f"[data-field={k}]"))
    shown = read_shown(page, key)
    want = value if isinstance(case.shown, re.Pattern) else case.shown
    assert shown == want, f"the record page shows {shown!r}, expected {want!r}"

    # Saved unchanged twice: as a person does (the page sends only what differs from
    # its snapshot), then without the snapshot, so that every field is sent as its
    # widget posts it and what the widget shows is what is written back.
    for whole in (False, True):
        page.goto(f"{FORMS}/records/{record_id}/edit")
        in_widget = case.read_widget(page, key)
        assert same(value if isinstance(case.widget, re.Pattern) else case.widget,
                    in_widget), f"the edit page's widget shows {in_widget!r}"
        if whole:
            page.locator("input[name=_orig]").evaluate("snapshot => snapshot.remove()")
        page.click("#save")
        assert saved(page) == record_id
        again, version_after = stored(_migrated, record_id, key)
        assert again == value, f"saved unchanged, the value became {again!r}"
        assert version_after == version, "a save without changes wrote a new version"
        assert read_shown(page, key) == want
