"""Reading messy files: the header found under a merged title and a note, a two-row header
joined, any sheet by name or number, GBK and UTF-8-BOM CSVs, exact file row numbers,
clear refusals; the problem file is the original with a "问题 / problem" column; and a
200,000-row file read as a stream (time and peak memory printed)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import date, datetime
from pathlib import Path

import pytest
from python_calamine import CalamineWorkbook

from engine_forms.importing import ImportError_
from engine_forms.imports.problems_file import PROBLEM_HEADER, problem_workbook
from engine_forms.imports.reading import column_letter, detect_encoding, open_table
from tests.data import make_messy as messy

ROOT = Path(__file__).resolve().parents[3]


def test_column_letters():
    assert [column_letter(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702, 16383)] == [
        "A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA", "XFD"]


def test_the_header_is_found_under_a_merged_title_and_a_two_row_header_is_joined(tmp_path):
    path = messy.customers_xlsx(tmp_path / "台账.xlsx")
    table = open_table(path, sheet="客户")
    assert table.sheets == ["说明", "客户"] and table.sheet == "客户"
    assert table.header_row == 4 and table.encoding is None
    assert table.header == ["序号", "客户姓名", "联系方式/手机", "联系方式/微信", "身份证号码",
                            "性别", "月收入", "来源", "备注（选填）"]
    rows = list(table.rows())
    # the blank row (file row 11) is skipped; numbers are the file's own
    assert [n for n, _cells in rows] == [6, 7, 8, 9, 10, 12]
    assert rows[0][1][:3] == [1.0, "张三", "+86 138 0000 1234"]
    assert table.sample(2) == rows[:2] and table.count() == 6
    assert open_table(path, sheet=1).header == table.header  # by number (0-based)
    assert open_table(path).sheet == "说明"  # the first sheet unless told


def test_a_chosen_header_row_wins(tmp_path):
    path = messy.customers_xlsx(tmp_path / "台账.xlsx")
    table = open_table(path, sheet="客户", header_row=5)
    assert table.header_row == 5 and table.header[2:4] == ["手机", "微信"]
    assert next(table.rows())[0] == 6


@pytest.mark.parametrize(("encoding", "detected"), [("gb18030", "gb18030"),
                                                    ("utf-8-sig", "utf-8-sig"),
                                                    ("utf-8", "utf-8")])
def test_csv_encodings_are_detected(tmp_path, encoding, detected):
    path = messy.customers_csv(tmp_path / "客户.csv", encoding)
    table = open_table(path)
    assert (table.encoding, table.sheets, table.sheet) == (detected, ["CSV"], "CSV")
    assert table.header == ["客户姓名", "手机", "身份证号码", "性别", "月收入", "来源"]
    rows = list(table.rows())
    assert rows[0] == (2, ["张三", "+86 138 0000 1234", messy.X_ID.lower(), "先生", "1.5万",
                           "官网"])
    assert [n for n, _c in rows] == [2, 3, 4, 5, 6, 8]  # row 7 is blank


def test_a_gbk_byte_cut_at_the_sniffing_edge_still_reads_as_utf8():
    text = ("姓名,手机\n" + "张三,13800001234\n" * 5000).encode("utf-8")
    assert detect_encoding(text[:65536]) == "utf-8"  # a character cut in half at the edge
    assert detect_encoding("姓名".encode("gbk")) == "gb18030"
    assert detect_encoding(b"\xef\xbb\xbf" + "姓名".encode()) == "utf-8-sig"


def test_loan_dates_sheet_types_come_through(tmp_path):
    table = open_table(messy.loans_xlsx(tmp_path / "loans.xlsx"))
    assert table.header_row == 1 and table.header == messy.LOAN_HEADER
    cells = [c[3] for _n, c in table.rows()]
    assert cells[0] == datetime(2024, 3, 5) or cells[0] == date(2024, 3, 5)
    assert cells[1:6] == ["2024/3/5", "2024.3.5", "2024年3月5日", "20240305", 45356.0]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sheet": "没有这页"}, "no sheet named '没有这页'"),
    ({"sheet": 7}, "there is no sheet number 7"),
    ({"header_row": 50}, "row 50 is not in the sheet"),
])
def test_bad_choices_are_refused_clearly(tmp_path, kwargs, message):
    path = messy.customers_xlsx(tmp_path / "台账.xlsx")
    with pytest.raises(ImportError_, match=message) as caught:
        open_table(path, **kwargs)
    assert caught.value.status == 422 and caught.value.extra["zh"]


def test_files_that_are_not_spreadsheets_are_refused(tmp_path):
    fake = tmp_path / "客户.xlsx"
    fake.write_bytes(b"this is not a zip")
    with pytest.raises(ImportError_, match="not a readable spreadsheet"):
        open_table(fake)
    with pytest.raises(ImportError_, match="expected .xlsx"):
        open_table(fake, filename="客户.pdf")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ImportError_, match="empty"):
        open_table(empty)


def test_the_problem_file_is_the_original_with_a_problem_column(tmp_path):
    path = messy.customers_xlsx(tmp_path / "台账.xlsx")
    table = open_table(path, sheet="客户")
    problems = {8: "身份证号码: 不是有效的 18 位身份证号", 12: ["手机: 不是有效的手机号",
                                                              "月收入: 应为数字"]}
    out = tmp_path / "problems.xlsx"
    out.write_bytes(problem_workbook(table, problems))
    book = CalamineWorkbook.from_path(str(out))
    assert book.sheet_names == ["客户"]
    rows = book.get_sheet_by_index(0).to_python(skip_empty_area=False)
    original = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("客户").to_python(
        skip_empty_area=False)
    assert len(rows) == len(original)
    width = len(table.header)
    for got, was in zip(rows, original, strict=True):
        assert got[:width] == was[:width]  # values and their types unchanged
    assert rows[1][0] == messy.TITLE and rows[3][width] == PROBLEM_HEADER
    marked = {i + 1: r[width] for i, r in enumerate(rows) if r[width] and i + 1 != 4}
    assert marked == {8: "身份证号码: 不是有效的 18 位身份证号",
                      12: "手机: 不是有效的手机号；月收入: 应为数字"}


def test_the_problem_file_of_a_csv_keeps_its_text(tmp_path):
    table = open_table(messy.customers_csv(tmp_path / "客户.csv", "gb18030"))
    out = tmp_path / "problems.xlsx"
    out.write_bytes(problem_workbook(table, {3: "bad"}))
    rows = CalamineWorkbook.from_path(str(out)).get_sheet_by_index(0).to_python()
    assert rows[0][-1] == PROBLEM_HEADER and rows[2][-1] == "bad"
    assert rows[1][2] == messy.X_ID.lower()  # text stays text, not a number


# -- 200,000 rows -------------------------------------------------------------------------

MEASURE = textwrap.dedent("""
    import json, resource, sys, time
    from engine_forms.imports.reading import open_table
    start = time.perf_counter()
    table = open_table(sys.argv[1])
    opened = time.perf_counter()
    count, last = 0, None
    for number, cells in table.rows():
        count, last = count + 1, number
    done = time.perf_counter()
    print(json.dumps({"rows": count, "last": last, "header": table.header,
                      "open_s": opened - start, "read_s": done - opened,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")
BASELINE = "import resource, engine_forms.imports.reading; print(" \
           "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"


def _measure(path: Path) -> dict:
    """Read ``path`` in a fresh process (its peak RSS is the read's alone)."""
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    base = float(subprocess.run([sys.executable, "-c", BASELINE], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout)
    result = json.loads(out) | {"baseline_mb": base}
    print(f"\n{path.name}: {result['rows']} rows, open {result['open_s']:.2f} s, "  # noqa: T201
          f"read {result['read_s']:.2f} s, peak RSS {result['rss_mb']:.0f} MB "
          f"(interpreter + imports alone {base:.0f} MB)")
    return result


def test_a_200000_row_csv_is_read_as_a_stream(tmp_path):
    path = messy.big_csv(tmp_path / "big.csv", 200_000)
    result = _measure(path)
    assert result["rows"] == 200_000 and result["last"] == 200_001
    assert result["header"] == messy.BIG_HEADER
    assert result["rss_mb"] - result["baseline_mb"] < 40  # line by line: no growth


@pytest.mark.slow
def test_a_200000_row_xlsx_is_read_row_by_row(tmp_path):
    path = messy.big_xlsx(tmp_path / "big.xlsx", 200_000)  # ~30 s to write
    result = _measure(path)
    assert result["rows"] == 200_000 and result["last"] == 200_001
    # calamine holds its compact cell grid (~1.9 KB per 20-column row), never 4 million
    # Python objects; the sheet is parsed once (the header search keeps it for the read)
    assert result["rss_mb"] < 600


def _sheet_of(path: Path, names: list[str]) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("客户")
    sheet.write_row(0, 0, ["姓名", "手机"])
    for i, name in enumerate(names, start=1):
        sheet.write_row(i, 0, [name, f"1380000{i:04d}"])
    book.close()


def test_a_file_opened_again_is_read_once_and_a_changed_file_is_read_anew(tmp_path):
    """The upload, the start and the run each open the file; the parse is shared, but
    never across a change of the file, and the run that reads it through lets it go."""
    from engine_forms.imports import reading

    path = tmp_path / "客户.xlsx"
    first = [f"客户{i}" for i in range(200)]  # more than the rows kept with the header
    _sheet_of(path, first)
    upload = open_table(path)
    run = open_table(path)
    assert run._loaded is upload._loaded  # the same parse
    assert [cells[0] for _, cells in run.rows()] == first
    assert reading._parsed == {}  # read through: released

    again = open_table(path)
    second = [f"新客{i}" for i in range(300)]
    _sheet_of(path, second)  # the same path, new content
    assert [cells[0] for _, cells in open_table(path).rows()] == second
    assert [cells[0] for _, cells in again.rows()] == first  # its own parse, kept
