"""Spreadsheet (xlsx) and CSV writers that neutralise formula injection.

A value typed by one user can end up in another user's Excel, where a cell starting with
``=``, ``+``, ``-``, ``@``, tab or carriage return may run as a formula (OWASP "CSV
injection"). Every string cell therefore goes through ``neutralise`` first, and xlsx
strings are written as strings, never parsed into formulas, URLs or numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, BinaryIO, TextIO, TypeVar

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from platform_core.errors import InvalidInput

T = TypeVar("T")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
MAX_XLSX_ROWS = 1_048_575  # Excel's 1,048,576 rows, less the header
# Excel stores numbers as doubles and shows 15 significant digits: longer integers (ID card
# and account numbers) would come back altered, so they are written as text.
_MAX_EXACT_INT = 10**15 - 1
_BOOK_OPTIONS = {
    "constant_memory": True,  # rows are flushed as written: memory stays flat for big exports
    "in_memory": False,  # constant_memory needs temp files; in_memory would switch it off
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
    "remove_timezone": True,  # Excel has no time zones: callers convert to the reader's first
}
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def neutralise(value: T) -> T:
    """Prefix ``'`` to a string that a spreadsheet could take for a formula; else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value  # type: ignore[return-value]
    return value


def write_xlsx(stream: BinaryIO, *, sheet: str, columns: list[str],
               rows: Iterable[Sequence[Any]]) -> int:
    """Write one sheet (bold, frozen header row) to ``stream``; return the data rows written.

    Numbers stay numbers, dates and times are Excel dates with a date format, booleans
    are the text TRUE/FALSE, None is an empty cell, lists and dicts are JSON text and
    anything else is its ``str``. Rows are consumed one at a time, so a generator over a
    large query is fine; past Excel's row limit ``InvalidInput`` suggests CSV instead.
    """
    count = 0
    with xlsxwriter.Workbook(stream, _BOOK_OPTIONS) as book:
        ws = book.add_worksheet(_sheet_name(sheet))
        cell = _CellWriter(book, ws)
        bold = book.add_format({"bold": True})
        for col, name in enumerate(columns):
            ws.write_string(0, col, neutralise(str(name)), bold)
        ws.freeze_panes(1, 0)
        for count, row in enumerate(rows, start=1):
            if count > MAX_XLSX_ROWS:
                raise InvalidInput(f"more than {MAX_XLSX_ROWS} rows do not fit in a spreadsheet; "
                                   "export as CSV instead", limit=MAX_XLSX_ROWS)
            for col, value in enumerate(row):
                cell.write(count, col, value)
    return count


def write_csv(stream: TextIO, *, columns: list[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write UTF-8 CSV with a BOM to ``stream`` (open it with ``newline=""``); return rows.

    The BOM is what makes Excel (notably on Chinese Windows, whose default is GBK) read
    the file as UTF-8. Values are rendered as in ``write_xlsx``, dates as ISO 8601.
    """
    stream.write("\ufeff")
    writer = csv.writer(stream)
    writer.writerow([neutralise(str(name)) for name in columns])
    count = 0
    for row in rows:
        writer.writerow([_csv_text(value) for value in row])
        count += 1
    return count


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def spreadsheet(format: str, *, sheet: str, columns: list[str],
                rows: Iterable[Sequence[Any]]) -> tuple[bytes, str, int]:
    """``format`` ``xlsx`` or ``csv`` in memory: (the file, its media type, rows written)."""
    if format == "csv":
        text = io.StringIO(newline="")
        count = write_csv(text, columns=columns, rows=rows)
        return text.getvalue().encode("utf-8"), "text/csv; charset=utf-8", count
    binary = io.BytesIO()
    count = write_xlsx(binary, sheet=sheet, columns=columns, rows=rows)
    return binary.getvalue(), XLSX_TYPE, count


def _sheet_name(name: str) -> str:
    """Excel's rules: at most 31 characters, none of ``[]:*?/\\``, no edge apostrophes."""
    cleaned = _SHEET_FORBIDDEN.sub("_", name).strip("'")[:31].strip()
    return cleaned or "Sheet1"


def _number_text(value: int | float | Decimal) -> str | None:
    """The text of a number Excel cannot hold exactly, or None if it can be a number."""
    if isinstance(value, int):
        return str(value) if abs(value) > _MAX_EXACT_INT else None
    if isinstance(value, Decimal):
        return None if value.is_finite() else str(value)
    return None if math.isfinite(value) else str(value)


def _text(value: Any) -> str:
    """A non-number, non-date value as the text a user should see (before neutralising)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal) and value.is_finite():
        return format(value, "f")  # never "1E+3"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # a number is not a formula, even when negative
    if isinstance(value, date | time):
        return value.isoformat()
    return neutralise(_text(value))


class _CellWriter:
    """Writes one value to an xlsx cell with the type-specific call and format."""

    def __init__(self, book: xlsxwriter.Workbook, ws: Worksheet):
        self.ws = ws
        self.formats = {
            datetime: book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
            date: book.add_format({"num_format": "yyyy-mm-dd"}),
            time: book.add_format({"num_format": "hh:mm:ss"}),
        }

    def write(self, row: int, col: int, value: Any) -> None:
        if value is None:
            return  # constant_memory: a cell never written is an empty cell
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            text = _number_text(value)
            if text is None:
                self.ws.write_number(row, col, float(value))
            else:
                self.ws.write_string(row, col, text)
        elif isinstance(value, datetime | date | time):
            kind = next(k for k in (datetime, date, time) if isinstance(value, k))
            self.ws.write_datetime(row, col, value, self.formats[kind])
        else:
            self.ws.write_string(row, col, neutralise(_text(value)))
