"""The file a clerk downloads to fix a failed import: their own sheet, row for row (the
header and title rows too), with a column "问题 / problem" added that says what is wrong
with each row that has a problem, those rows highlighted. They fix the cells in Excel
and import the file again; the added column is not mapped the second time (no field is
called that).

Written with xlsxwriter's ``constant_memory`` mode: each row is flushed to disk as soon
as it is written, so a 200,000-row file costs no more memory than a 20-row one. Cell
values keep their types (numbers stay numbers, dates stay dates with a date format).
"""

from __future__ import annotations

import io
import tempfile
from datetime import date, datetime, time, timedelta
from typing import Any

from engine_forms.imports.reading import Table

PROBLEM_HEADER = "问题 / problem"
MAX_CELL = 32767  # Excel's limit of one cell's text


def problem_workbook(table: Table, problems: dict[int, str]) -> bytes:
    """``table``'s sheet with the problem column added; ``problems`` maps a file row
    number to its text (several problems of a row joined by the caller, or here by
    "；" when given as a list)."""
    import xlsxwriter

    with tempfile.TemporaryDirectory(prefix="qiao-problems-") as tmp:
        out = io.BytesIO()
        book = xlsxwriter.Workbook(out, {"constant_memory": True, "tmpdir": tmp,
                                         "strings_to_numbers": False,
                                         "strings_to_formulas": False,
                                         "strings_to_urls": False})
        sheet = book.add_worksheet((table.sheet or "Sheet1")[:31])
        # (kind, highlighted) → format; a highlighted date keeps its number format
        formats = {(kind, lit): book.add_format({**({"num_format": num} if num else {}),
                                                 **({"bg_color": FILL} if lit else {})})
                   for kind, num in NUMBER_FORMATS.items() for lit in (False, True)}
        note = book.add_format({"bg_color": FILL, "font_color": "#B42318"})
        head = book.add_format({"bold": True, "bg_color": "#FEF0C7"})
        at = table.width  # the problem column: right of every column of the first rows
        for number, cells in enumerate(table.raw_rows(), start=1):
            problem = problems.get(number)
            for col, cell in enumerate(cells):
                _write(sheet, number - 1, col if col < at else col + 1, cell, formats,
                       bool(problem))
            if number == table.header_row:
                sheet.write_string(number - 1, at, PROBLEM_HEADER, head)
            elif problem:
                text = "；".join(problem) if isinstance(problem, list) else str(problem)
                sheet.write_string(number - 1, at, text[:MAX_CELL], note)
        sheet.set_column(at, at, 48)
        book.close()
        return out.getvalue()


FILL = "#FDE2E1"
NUMBER_FORMATS = {"plain": None, "date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm:ss",
                  "time": "hh:mm:ss"}


def _write(sheet: Any, row: int, col: int, cell: Any, formats: dict[tuple[str, bool], Any],
           lit: bool) -> None:
    plain = formats[("plain", True)] if lit else None
    if cell is None or cell == "":
        if lit:
            sheet.write_blank(row, col, None, plain)
        return
    if isinstance(cell, bool):
        sheet.write_boolean(row, col, cell, plain)
    elif isinstance(cell, int | float):
        sheet.write_number(row, col, cell, plain)
    elif isinstance(cell, datetime):
        sheet.write_datetime(row, col, cell, formats[("datetime", lit)])
    elif isinstance(cell, date):
        sheet.write_datetime(row, col, cell, formats[("date", lit)])
    elif isinstance(cell, time):
        sheet.write_datetime(row, col, cell, formats[("time", lit)])
    elif isinstance(cell, timedelta):
        sheet.write_number(row, col, cell.total_seconds() / 86400, plain)
    else:
        sheet.write_string(row, col, str(cell)[:MAX_CELL], plain)
