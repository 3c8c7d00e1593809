"""The import page in a real browser, on the CRM template, as a clerk on her first day: a
messy workbook (a merged title row, headers such as 客户姓名/手机号, an amount in 万, a
bad ID number, 女士 for 女) is uploaded from the customer list; the columns are matched
to their fields, one is matched by hand; the check lists the bad row with its column and
reason and gives the file back with a problem column; the valid rows are imported with
the progress shown until done; the list shows the new customers; the revert removes them.
Every step is photographed at 1280 and 375 px (``/tmp/import-shots``)."""

from __future__ import annotations

import threading
from pathlib import Path

import xlsxwriter
from python_calamine import CalamineWorkbook

from engine_forms.imports import runner
from templates_catalog.bundle import template
from templates_catalog.install import install
from tests.frontend.conftest import add_user, alert, path_of
from tests.security_setup import SYSTEM

SHOTS = Path("/tmp/import-shots")
LIST = "/apps/crm/forms/customer"
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _id(body: str) -> str:
    """An 18-digit ID number with its right check digit (``body``: the first 17)."""
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True))
                                % 11]


BAD_ID = _id("11010519800101123")[:-1] + ("1" if _id("11010519800101123")[-1] != "1"
                                          else "2")
ROWS = [  # 客户姓名, 手机号, 身份证号, 性别, 月收入, 居住地
    ["导入张三", "138 0013 8001", _id("11010519800101121"), "男", "1.5万", "北京"],
    ["导入李四", "+86 139-0013-9002", _id("11010519800101122"), "女士", "8,000", "上海"],
    ["导入王五", "13700137003", BAD_ID, "男", "2万", "深圳"],
    ["导入赵六", "13600136004", _id("11010519800101124"), "女", "12000元", "广州"],
    ["导入钱七", "13500135005", _id("11010519800101125"), "保密", "9000", "杭州"],
]


def _messy(path: Path) -> Path:
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("客户台账")
    sheet.merge_range(0, 0, 0, 5, "2023年客户台账（销售一部）")
    sheet.write_row(1, 0, ["客户姓名", "手机号", "身份证号", "性别", "月收入", "居住地"])
    for i, row in enumerate(ROWS, start=2):
        sheet.write_row(i, 0, row)
    book.close()
    return path


class Worker:
    """The background import worker of ``qiao serve``, as a thread over the test database."""

    def __init__(self, db, keyring):
        self.db, self.keyring, self.stop = db, keyring, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            if not runner.run_next(self.db, "page-test", keyring=self.keyring):
                self.stop.wait(0.1)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def _shoot(web, page, name: str) -> None:
    """The page as it is now, at 1280 px and again on a 375 px phone."""
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-1280.png"), full_page=True)
    phone = web.page(width=375, height=800)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(path_of(page))
    width = phone.evaluate("document.documentElement.scrollWidth")
    phone.screenshot(path=str(SHOTS / f"{name}-375.png"), full_page=True)
    phone.close()
    assert width <= 375, f"{name} is {width} px wide on a phone"


def _drop(page, path: Path) -> None:
    """Drag ``path`` from the desktop onto the upload box."""
    import base64

    content = base64.b64encode(path.read_bytes()).decode()
    dropped = page.evaluate_handle(
        """([name, content]) => {
            const bytes = Uint8Array.from(atob(content), c => c.charCodeAt(0));
            const moved = new DataTransfer();
            moved.items.add(new File([bytes], name));
            return moved;
        }""", [path.name, content])
    page.dispatch_event("#import-drop", "dragover", {"dataTransfer": dropped})
    page.dispatch_event("#import-drop", "drop", {"dataTransfer": dropped})


def _finished(page) -> None:
    """Wait until the batch page stops polling (the page reloads once the batch ends)."""
    page.wait_for_selector("#counts", timeout=30_000)


def test_a_clerk_imports_a_messy_workbook_checks_it_and_takes_it_back(web, db, tmp_path,
                                                                       server_keyring):
    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    add_user(db, "wen.yuan")  # an administrator: the CRM's clerk role may import products only
    page = web.signed_in("wen.yuan")
    page.goto(LIST)
    page.click("#import")
    assert path_of(page) == f"{LIST}/import"
    assert "100 MB" in page.inner_text("#import-form")
    _shoot(web, page, "1-upload")

    # 1. upload: the file dropped on the box goes at once; the title row is skipped
    _drop(page, _messy(tmp_path / "客户台账.xlsx"))
    page.wait_for_url("**/import/map?*")
    assert page.input_value("#header-row") == "2"
    assert "导入张三" in page.inner_text("#import-sample")

    # 2. the columns: suggested from synonyms, one matched by hand
    suggested = {i: page.input_value(f"#f-col-{i}") for i in range(6)}
    assert suggested == {0: "name", 1: "mobile", 2: "id_no", 3: "gender",
                         4: "monthly_income", 5: ""}, suggested
    gender = page.locator("#col-3 .value-map")
    assert gender.locator("tr", has_text="女士").locator("select").input_value() == "female"
    unknown = gender.locator("tr.unknown")  # 保密 is no option: marked, left empty
    assert unknown.count() == 1 and "保密" in unknown.inner_text()
    assert unknown.locator("select").input_value() == ""
    assert "1" in page.inner_text("#col-3 .badge.bad")
    with page.expect_response(lambda r: r.url.endswith("/import/map")):
        page.select_option("#f-col-5", "city")
    assert page.input_value("#f-col-5") == "city"
    _shoot(web, page, "2-map")

    # 3–4. options and the check (a dry run: nothing written)
    page.fill("#batch", "销售一部 2023 台账")
    page.click("#check")
    page.wait_for_url("**/imports/*")
    assert "排队中" in page.inner_text("#import-progress")  # no worker has taken it yet
    _shoot(web, page, "4-queued")
    with Worker(db, server_keyring):
        _finished(page)  # the polled progress reloads the page once the batch is done
        assert page.inner_text("#n-problems") == "1"
        bad = page.locator("#problem-list tbody tr")
        assert bad.count() == 1
        text = bad.inner_text()
        assert "5" in text and "C" in text and BAD_ID in text and "身份证" in text, text
        assert "导入张三" in page.inner_text("#preview")
        _shoot(web, page, "4-check")
        with page.expect_download() as download:
            page.click("#problem-file")
        fixed = tmp_path / "问题.xlsx"
        download.value.save_as(str(fixed))
        rows = CalamineWorkbook.from_path(str(fixed)).get_sheet_by_index(0).to_python()
        header = next(r for r in rows if "客户姓名" in r)
        problem_col = len(header) - 1
        assert "问题" in str(header[problem_col])
        flagged = [r for r in rows if len(r) > problem_col and r[problem_col]
                   and r is not header]
        assert [r[0] for r in flagged] == ["导入王五"]
        page.click("#remap")  # back to the columns: as they were checked
        assert page.input_value("#f-col-5") == "city"
        assert page.input_value("#batch") == "销售一部 2023 台账"
        page.go_back()

    # 5. import the valid rows; the progress runs to the end
    checked = page.url
    page.check("#run-form input[name=atomic][value='0']")
    page.click("#run")
    page.wait_for_url(lambda url: url != checked and "/imports/" in url)
    page.wait_for_selector("#import-progress progress")
    with Worker(db, server_keyring):
        _finished(page)
        assert page.inner_text("#n-created") == "4"
        assert page.inner_text("#n-failed") == "1"
        _shoot(web, page, "5-imported")

    page.click("#to-list")
    listed = page.inner_text("main")
    assert "导入张三" in listed and "导入赵六" in listed and "导入王五" not in listed
    page.go_back()
    page.click("#revert")
    page.wait_for_selector("#revert-report")
    assert not alert(page)
    assert "4" in page.inner_text("#revert-report")
    _shoot(web, page, "6-reverted")
    page.goto(LIST)
    assert "导入张三" not in page.inner_text("main")

    # 6. the history lists both batches
    page.goto(f"{LIST}/import")
    history = page.inner_text("#import-history")
    assert history.count("销售一部 2023 台账") == 2, history
    _shoot(web, page, "7-history")


def test_mistakes_are_told_on_the_page_and_a_mapping_is_kept_for_the_next_file(
        web, db, tmp_path, server_keyring):
    from tests.frontend.test_workspace import _create

    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    add_user(db, "wen.yuan")
    _create(db, server_keyring, "wen.yuan", "customer",
            {"name": "钱七", "mobile": "13800138000", "city": "北京"})
    page = web.signed_in("wen.yuan")
    page.goto(f"{LIST}/import")
    pdf = tmp_path / "说明.pdf"
    pdf.write_bytes(b"%PDF-1.4 not a sheet")
    page.set_input_files("#file", str(pdf))
    page.wait_for_selector("#import-problem")
    assert "xlsx" in alert(page) and path_of(page) == f"{LIST}/import"
    page.goto(f"{LIST}/import/map?file=gone.xlsx&name=x.xlsx")
    assert "重新上传" in alert(page)
    broken = tmp_path / "坏.xlsx"
    broken.write_bytes(b"not a zip at all")
    with page.expect_navigation():  # from the page that told the last mistake
        page.set_input_files("#file", str(broken))
    assert "无法读取" in alert(page)

    sheet = tmp_path / "更新.csv"
    sheet.write_bytes("手机,姓名,城市,备注\n13800138000,钱七,杭州,搬家了\n".encode("gbk"))
    page.goto(f"{LIST}/import")
    page.set_input_files("#file", str(sheet))
    page.wait_for_url("**/import/map?*")
    assert "gb18030" in page.inner_text("#import-file")  # an old system's GBK file
    with page.expect_response(lambda r: r.url.endswith("/import/map")):
        page.select_option("#f-col-3", "")  # the note is not imported
    page.check("input[name=mode][value=upsert]")
    page.click("#check")  # no key chosen
    assert "唯一字段" in alert(page)
    with page.expect_response(lambda r: r.url.endswith("/import/map")):
        page.select_option("#f-col-2", "name")  # two columns into 姓名
    page.click("#check")
    assert "对应关系有问题" in alert(page) and "two columns" in alert(page)
    with page.expect_response(lambda r: r.url.endswith("/import/map")):
        page.select_option("#f-col-2", "city")
    page.fill("#mapping-name", "老系统客户")
    page.click("#save-mapping")
    page.wait_for_url("**mapping=*")

    # the next file of that shape: the saved mapping, then an update by mobile
    page.goto(f"{LIST}/import")
    page.set_input_files("#file", str(sheet))
    page.wait_for_url("**/import/map?*")
    assert page.input_value("#f-col-3") == "note"  # suggested again…
    page.select_option("#load-mapping", "老系统客户")
    page.wait_for_url("**mapping=*")
    assert page.input_value("#f-col-3") == ""  # … and as saved
    page.check("input[name=mode][value=upsert]")
    page.select_option("#key", "mobile")
    with Worker(db, server_keyring):
        page.click("#import-now")
        _finished(page)
    assert page.inner_text("#n-updated") == "1" and page.inner_text("#n-created") == "0"
    batch = path_of(page)
    page.goto(LIST)
    assert "杭州" in page.inner_text("main")

    # edited after the import: the revert leaves the record alone and says so
    _edit(db, server_keyring, "wen.yuan", "13800138000", {"city": "宁波"})
    page.goto(batch)
    page.click("#revert")
    page.wait_for_selector("#revert-skipped")
    assert "#" in page.inner_text("#revert-skipped")
    page.goto(LIST)
    assert "宁波" in page.inner_text("main")


def _edit(db, keyring, username: str, mobile: str, data: dict) -> None:
    """A later change of the customer with ``mobile``, by ``username`` (as the API would)."""
    from sqlalchemy import select

    from engine_forms import service
    from engine_forms.forms import published
    from engine_forms.service import Caller
    from platform_core.security.models import User
    from platform_core.security.principal import load_principal

    with db.write() as s:
        user = s.execute(select(User).where(User.username == username)).scalar_one()
        principal = load_principal(s, user, via="test")
        caller = Caller(principal, principal.access("crm", "customer"), keyring)
        pub = published(s, "crm", "customer")
        docs, _next = service.list_page(s, caller, pub, filter={
            "field": "mobile", "op": "eq", "value": mobile}, sort=None, cursor=None,
            limit=1, fields=None, deleted="exclude")
        service.update(s, caller, pub, docs[0]["id"], data,
                       expected_version=docs[0]["row_version"])


def test_an_english_page_imports_loans_finding_their_customers_by_mobile(
        web, db, tmp_path, server_keyring):
    from tests.frontend.test_workspace import _create

    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    add_user(db, "wen.yuan")
    _create(db, server_keyring, "wen.yuan", "customer",
            {"name": "孙八", "mobile": "13900001111"})
    loans = tmp_path / "loans.csv"
    loans.write_text("客户手机,贷款类型,申请金额\n+86 139 0000 1111,经营贷,50万\n",
                     encoding="utf-8-sig")
    page = web.page(locale="en-US")
    web.sign_in(page, "wen.yuan")
    page.goto("/apps/crm/forms/loan_case/import")
    assert "Upload a spreadsheet" in page.inner_text("#import-form")
    page.set_input_files("#file", str(loans))
    page.wait_for_url("**/import/map?*")
    assert page.input_value("#f-col-0") == "customer"
    assert page.input_value("#by-0") == "mobile"  # found by the customer's mobile
    assert "Find the linked record by" in page.inner_text("#col-0")
    _shoot(web, page, "8-loans-en")
    with Worker(db, server_keyring):
        page.click("#import-now")
        _finished(page)
    assert page.inner_text("#n-created") == "1", page.inner_text("main")
    assert "孙八" in page.inner_text("#preview")


def test_many_problems_are_paged_and_none_is_written(web, db, tmp_path, server_keyring):
    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    add_user(db, "wen.yuan")
    rows = "".join(f"客户{i},123{i}\n" for i in range(120))  # no mobile is valid …
    rows += "好客户甲,13800000001\n好客户乙,13800000002\n"  # … but these two
    sheet = tmp_path / "坏手机.csv"
    sheet.write_text("姓名,手机\n" + rows, encoding="utf-8")
    page = web.signed_in("wen.yuan")
    page.goto(f"{LIST}/import")
    page.set_input_files("#file", str(sheet))
    page.wait_for_url("**/import/map?*")
    page.click("#check")  # no worker takes it: cancelled while it waits
    page.click("#cancel")
    assert page.inner_text("#batch-status .badge") == "已取消"
    page.go_back()
    page.go_back()
    page.wait_for_url("**/import/map?*")
    with Worker(db, server_keyring):
        page.click("#import-now")  # all or nothing
        _finished(page)
    assert page.inner_text("#n-problems") == "120"
    assert page.inner_text("#n-created") == "0"
    assert "1 / 3" in page.inner_text("#problems .pager")
    first = page.locator("#problem-list tbody tr").first.inner_text()
    assert first.split()[0] == "2"  # the file's own row number
    page.click("#next-page")
    assert "?page=2" in path_of(page)
    assert page.locator("#problem-list tbody tr").count() == 50
    assert page.locator("#problem-list tbody tr").first.inner_text().split()[0] == "52"
    assert page.locator("#revert").count() == 0  # nothing to revert
    _shoot(web, page, "9-refused")
    page.goto(LIST)
    assert "好客户甲" not in page.inner_text("main")

    # the way on: import the valid rows of the same file
    page.go_back()
    assert "全部通过才导入" in alert(page)
    refused = page.url
    page.click("#run")
    page.wait_for_url(lambda url: url != refused and "/imports/" in url)
    with Worker(db, server_keyring):
        _finished(page)
    assert page.inner_text("#n-created") == "2" and page.inner_text("#n-failed") == "120"
