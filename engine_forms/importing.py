"""Spreadsheet import: an .xlsx/.xls/.ods/.csv file → records, all or nothing.

Order of events: read the sheet (python-calamine; CSV as UTF-8 or GB18030, which is what
Excel on a Chinese Windows writes) → match each header to a field by key or label →
refuse columns the importer may not write → turn each cell into the field's value with
the type's ``from_text`` → validate every row (``create_many``) → write them in one
transaction. Every problem names its spreadsheet row (2 is the first data row) and
column, and nothing is written when any row is wrong.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

from engine_forms.fieldtypes.base import FieldError
from engine_forms.forms import Published
from engine_forms.validation import Problem
from platform_core.errors import InvalidInput

MAX_ROWS = 10_000
SHEETS = (".xlsx", ".xlsm", ".xls", ".ods")
NOT_IMPORTED = ("formula", "lookup", "rollup", "auto_number", "attachment", "subtable")


class ImportError_(InvalidInput):
    code = "invalid_import"


def read_table(filename: str, content: bytes) -> list[list[Any]]:
    """The first sheet (or the CSV) as rows of cell values; blank trailing rows dropped."""
    name = filename.lower()
    if name.endswith(SHEETS):
        from python_calamine import CalamineError, CalamineWorkbook

        try:
            rows = CalamineWorkbook.from_filelike(io.BytesIO(content)).get_sheet_by_index(
                0).to_python(skip_empty_area=False)
        except (CalamineError, ValueError, IndexError) as exc:
            raise ImportError_(f"file: not a readable spreadsheet ({exc})", field="file"
                               ) from None
    elif name.endswith((".csv", ".txt")):
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = content.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise ImportError_("file: the CSV is neither UTF-8 nor GB18030", field="file")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    else:
        raise ImportError_("file: expected .xlsx, .xls, .ods or .csv", field="file")
    while rows and all(_blank(c) for c in rows[-1]):
        rows.pop()
    return rows


def _blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def _text(cell: Any) -> str:
    """A cell as the text a person typed (a whole number without ``.0``)."""
    if isinstance(cell, bool):
        return "是" if cell else "否"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, datetime):
        return cell.isoformat() if (cell.hour, cell.minute, cell.second) != (0, 0, 0) \
            else cell.date().isoformat()
    if isinstance(cell, date | time):
        return cell.isoformat()
    return str(cell).strip()


def columns(pub: Published, header: Sequence[Any]) -> list[str | None]:
    """Header cells → field keys (by key, label, or the label in another language);
    None for an empty header cell."""
    by_name = {}
    for field in pub.spec.fields:
        if field.type not in NOT_IMPORTED:
            for name in (*(field.labels or {}).values(), field.key, field.label):
                by_name[name] = field.key
    keys, unknown = [], []
    for cell in header:
        name = _text(cell) if not _blank(cell) else ""
        if not name:
            keys.append(None)
        elif name in by_name:
            keys.append(by_name[name])
        else:
            keys.append(None)
            unknown.append(name)
    if unknown:
        raise ImportError_(f"header: unknown column(s) {', '.join(unknown[:5])} — use the "
                           f"field labels or keys of {pub.spec.key}", columns=unknown)
    if not any(keys):
        raise ImportError_("header: the first row must name the columns", field="header")
    return keys


def payloads(pub: Published, rows: list[list[Any]]) -> tuple[list[dict[str, Any]],
                                                                list[dict[str, Any]]]:
    """(one payload per data row, the cells that could not be read)."""
    keys = columns(pub, rows[0])
    data = rows[1:]
    if len(data) > MAX_ROWS:
        raise ImportError_(f"file: {len(data)} rows; at most {MAX_ROWS} per import",
                           limit=MAX_ROWS)
    out, problems = [], []
    for number, row in enumerate(data, start=2):
        payload: dict[str, Any] = {}
        for key, cell in zip(keys, row, strict=False):
            if key is None or _blank(cell):
                continue
            field = pub.spec.field(key)
            try:
                payload[key] = field.field_type.from_text(_text(cell), field)
            except FieldError as exc:
                problems.append({"row": number, **Problem(
                    key, exc.code, f"{field.label}: {exc.zh}", f"{key}: {exc.en}").as_dict()})
            except ValueError as exc:
                problems.append({"row": number, **Problem(
                    key, "format", f"{field.label}: {exc}", f"{key}: {exc}").as_dict()})
        out.append(payload)
    return out, problems
