"""A dashboard as a workbook: one sheet per widget (named after its title, at most 31
characters, unique), the same table its page shows — each report run as the viewer."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import xlsxwriter

from platform_core.exporting import _CellWriter, _sheet_name, neutralise


def sheet_names(titles: list[str]) -> list[str]:
    """Excel-safe, unique (case-insensitively, as Excel compares them) sheet names."""
    out: list[str] = []
    seen: set[str] = set()
    for title in titles:
        name = _sheet_name(title or "Sheet")
        n = 1
        candidate = name
        while candidate.lower() in seen:
            n += 1
            suffix = f" ({n})"
            candidate = name[:31 - len(suffix)] + suffix
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def cells(columns: list[dict[str, Any]], rows: list[list[Any]]) -> list[list[Any]]:
    """Rows for a spreadsheet: money as exact decimals, the rest as computed."""
    money = [c.get("format") in ("money", "wan") for c in columns]
    return [[Decimal(v) if m and isinstance(v, str) else v
             for v, m in zip(row, money, strict=True)] for row in rows]


def workbook(widgets: list[dict[str, Any]]) -> tuple[bytes, int]:
    """``widgets``: ``{"title", "columns", "rows"}`` (or ``"error"``: a one-line sheet
    saying so). Returns the file and the number of data rows written."""
    stream = io.BytesIO()
    total = 0
    with xlsxwriter.Workbook(stream, {"in_memory": True, "strings_to_formulas": False,
                                      "strings_to_urls": False,
                                      "strings_to_numbers": False}) as book:
        bold = book.add_format({"bold": True})
        for name, w in zip(sheet_names([w["title"] for w in widgets]), widgets,
                           strict=True):
            ws = book.add_worksheet(name)
            if "error" in w:
                ws.write_string(0, 0, neutralise(str(w["error"])))
                continue
            writer = _CellWriter(book, ws)
            for col, c in enumerate(w["columns"]):
                ws.write_string(0, col, neutralise(str(c["label"])), bold)
                ws.set_column(col, col, 16)
            ws.freeze_panes(1, 0)
            for r, row in enumerate(cells(w["columns"], w["rows"]), start=1):
                for col, value in enumerate(row):
                    writer.write(r, col, value)
                total += 1
    return stream.getvalue(), total
