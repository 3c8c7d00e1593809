"""xlsx and CSV export: formula injection is neutralised, values keep their types."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date, datetime, time
from decimal import Decimal

import pytest
from python_calamine import CalamineWorkbook

from platform_core import exporting
from platform_core.errors import InvalidInput
from platform_core.exporting import neutralise, write_csv, write_xlsx

PAYLOADS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1",
            "=cmd|' /C calc'!A0"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_formula_triggers_get_an_apostrophe(payload):
    assert neutralise(payload) == "'" + payload


@pytest.mark.parametrize("value", ["", "plain", "a=b", "合同 =1", "'=already", 5, -5, -1.5,
                                   Decimal("-2"), None, True])
def test_other_values_are_unchanged(value):
    assert neutralise(value) == value and type(neutralise(value)) is type(value)


def xlsx(columns, rows, sheet="Data") -> tuple[bytes, int]:
    stream = io.BytesIO()
    count = write_xlsx(stream, sheet=sheet, columns=columns, rows=rows)
    return stream.getvalue(), count


def read_xlsx(data: bytes, sheet: str = "Data") -> list[list]:
    book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    return book.get_sheet_by_name(sheet).to_python(skip_empty_area=False)


def sheet_xml(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.read("xl/worksheets/sheet1.xml").decode()


def test_xlsx_stores_formula_payloads_as_plain_strings():
    data, count = xlsx(["text"], [[p] for p in PAYLOADS])
    assert count == len(PAYLOADS)
    xml = sheet_xml(data)
    assert not re.search(r"<f[ >]", xml)  # no formula element anywhere
    assert "HYPERLINK" in xml and "<hyperlink" not in xml
    cells = [row[0] for row in read_xlsx(data)[1:]]
    assert cells == ["'" + p for p in PAYLOADS]
    assert cells[0] == "'=HYPERLINK(\"http://x\")"


def test_xlsx_keeps_types():
    when = datetime(2024, 5, 6, 7, 8, 9)
    row = [42, -3.5, Decimal("-12.25"), "合同编号 甲-001", True, None, date(2024, 1, 2),
           when, time(13, 30), ["a", 1], {"k": "值"}, 123456789012345678, float("nan")]
    data, _ = xlsx([f"c{i}" for i in range(len(row))], [row, ["after"]])
    back = read_xlsx(data)[1]
    assert back[:4] == [42, -3.5, -12.25, "合同编号 甲-001"]
    assert isinstance(back[0], int | float) and isinstance(back[2], float)
    assert back[4:6] == ["TRUE", ""]
    assert back[6] == date(2024, 1, 2) and back[7] == when and back[8] == time(13, 30)
    assert back[9:11] == ['["a", 1]', '{"k": "值"}']
    assert back[11] == "123456789012345678"  # too long for a double: kept exact, as text
    assert back[12] == "nan"
    assert read_xlsx(data)[2][0] == "after"


def test_xlsx_header_is_bold_frozen_and_neutralised():
    data, count = xlsx(["名称", "=evil"], [])
    assert count == 0
    assert read_xlsx(data) == [["名称", "'=evil"]]
    xml = sheet_xml(data)
    assert 'state="frozen"' in xml
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert "<b/>" in z.read("xl/styles.xml").decode()


def test_xlsx_consumes_a_generator_and_counts_rows():
    data, count = xlsx(["n"], ([i] for i in range(2500)))
    assert count == 2500
    assert read_xlsx(data)[-1] == [2499]


def test_xlsx_sheet_name_is_made_valid():
    data, _ = xlsx(["a"], [], sheet="客户/订单 [2024]: a very long name indeed")
    name = CalamineWorkbook.from_filelike(io.BytesIO(data)).sheet_names[0]
    assert name == "客户_订单 _2024__ a very long name"  # 31 characters, end space trimmed


def test_xlsx_refuses_more_rows_than_excel_holds(monkeypatch):
    monkeypatch.setattr(exporting, "MAX_XLSX_ROWS", 2)
    with pytest.raises(InvalidInput, match="export as CSV"):
        xlsx(["n"], [[1], [2], [3]])


def csv_text(columns, rows) -> tuple[str, int]:
    stream = io.StringIO(newline="")
    count = write_csv(stream, columns=columns, rows=rows)
    return stream.getvalue(), count


def test_csv_starts_with_a_bom_and_neutralises():
    text, count = csv_text(["名称", "@head"], [[p, -5] for p in PAYLOADS])
    assert count == len(PAYLOADS)
    assert text.startswith("\ufeff")
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(text[1:], newline="")))
    assert rows[0] == ["名称", "'@head"]
    assert [r[0] for r in rows[1:]] == ["'" + p for p in PAYLOADS]
    assert {r[1] for r in rows[1:]} == {"-5"}  # a negative number is not a formula


def test_csv_renders_values_like_the_spreadsheet():
    row = [Decimal("1E+3"), 2.5, True, None, date(2024, 1, 2), datetime(2024, 1, 2, 3, 4),
           {"k": "值"}, "中文"]
    text, _ = csv_text(list("abcdefgh"), [row])
    assert list(csv.reader(io.StringIO(text[1:])))[1] == [
        "1000", "2.5", "TRUE", "", "2024-01-02", "2024-01-02T03:04:00", '{"k": "值"}', "中文"]
