"""Reading a spreadsheet as a stream of rows: xlsx/xlsm/xls/ods (python-calamine) and CSV.

Order of events in ``open_table``: open the file → list its sheets and pick one (by name
or index) → read only its first rows to find the header (title rows such as a merged
"2023年客户台账" skipped; a two-row header such as "联系方式" over "手机"/"微信" joined as
"联系方式/手机") → return a ``Table`` whose ``rows()`` reads the file again from the start
and yields the data rows one by one with their row number in the file. Nothing holds the
Python values of the whole sheet: calamine keeps its own compact cell grid while
``rows()`` runs, and a CSV is read line by line.

CSV encodings: a UTF-8 byte-order mark → ``utf-8-sig``; text that decodes as UTF-8 in its
first 64 KB → ``utf-8``; anything else → ``gb18030`` (a superset of the GBK and GB2312
that old Chinese systems and Excel on a Chinese Windows write).
"""

from __future__ import annotations

import codecs
import csv
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine_forms.importing import ImportError_

SHEETS = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
TEXTS = (".csv", ".txt")
PROBE_ROWS = 30  # rows read to find the header
KEEP_ROWS = 60  # rows kept after the header for ``sample``
SNIFF_BYTES = 64 * 1024
MAX_HEADER_TEXT = 40


def column_letter(index: int) -> str:
    """0 → ``A``, 25 → ``Z``, 26 → ``AA`` (the spreadsheet's column name)."""
    if index < 0:
        raise ValueError("a column index is never negative")
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def _text(cell: Any) -> str:
    if blank(cell):
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


@dataclass
class Table:
    """One sheet of one file: its header and a way to read its data rows again."""

    filename: str
    sheets: list[str]
    sheet: str
    header_row: int  # 1-based, in the file
    header: list[str]
    encoding: str | None = None
    path: Path = field(default=Path(), repr=False)
    first_data_row: int = 0  # 1-based; the row after the (last) header row
    width: int = 0  # columns of the widest of the first rows (the header's at least)
    estimate: int | None = None
    _head: list[tuple[int, list[Any]]] = field(default_factory=list, repr=False)
    _complete: bool = False  # _head holds every data row
    # the sheet calamine loaded to find the header, kept for the first ``rows()`` so a
    # large file is parsed once, not twice (released as that read starts)
    _loaded: Any = field(default=None, repr=False)
    _parsed_key: tuple[Any, ...] | None = field(default=None, repr=False)

    def raw_rows(self) -> Iterator[list[Any]]:
        """Every row of the sheet from row 1, title, header and blank rows included."""
        if self.encoding is not None:
            yield from _csv_rows(self.path, self.encoding)
            return
        loaded, self._loaded = self._loaded, None
        if loaded is None:
            yield from _sheet_rows(self.path, self.sheet)
            return
        yield from loaded.iter_rows()
        if self._parsed_key is not None:  # read to the end: the import ran, let it go
            _forget(self._parsed_key)

    def rows(self) -> Iterator[tuple[int, list[Any]]]:
        """(row number in the file, cells) of each non-blank row under the header."""
        if self._complete:
            yield from self._head
            return
        for number, cells in enumerate(self.raw_rows(), start=1):
            if number >= self.first_data_row and not all(blank(c) for c in cells):
                yield number, cells

    def sample(self, n: int = 20) -> list[tuple[int, list[Any]]]:
        """The first ``n`` data rows (read when the file was opened, for up to 60)."""
        if n <= len(self._head) or self._complete:
            return self._head[:n]
        out = []
        for item in self.rows():
            out.append(item)
            if len(out) >= n:
                break
        return out

    def count(self) -> int | None:
        """How many data rows there are: exact for a small file or a CSV (one quick pass),
        an upper bound (blank rows included) for a large sheet."""
        if self._complete:
            return len(self._head)
        if self.encoding is not None:
            return sum(1 for _ in self.rows())
        return self.estimate


# -- sources ------------------------------------------------------------------------------


def _workbook(path: Path) -> Any:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        return CalamineWorkbook.from_path(str(path))
    except (CalamineError, ValueError, OSError) as exc:
        raise ImportError_(f"file: not a readable spreadsheet ({exc})", field="file",
                           zh="无法读取这个表格文件") from None


def _sheet_rows(path: Path, name: str) -> Iterator[list[Any]]:
    """Every row of the sheet from row 1 (calamine pads the empty area above)."""
    sheet = _workbook(path).get_sheet_by_name(name)
    yield from sheet.iter_rows()


def detect_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=False)  # a character cut at the 64 KB edge is fine
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"


def _csv_rows(path: Path, encoding: str) -> Iterator[list[Any]]:
    # errors="replace": a stray byte far into the file shows as "�" in its cell (and the
    # row fails its field's check) rather than stopping the whole import
    with open(path, encoding=encoding, errors="replace", newline="") as stream:
        yield from csv.reader(stream)


# -- the header ---------------------------------------------------------------------------


def _headerish(cells: list[Any]) -> bool:
    """Short, distinct texts that are not numbers or dates."""
    texts = [c for c in cells if not blank(c)]
    if not texts or not all(isinstance(c, str) for c in texts):
        return False
    stripped = [c.strip() for c in texts]
    if any(len(t) > MAX_HEADER_TEXT for t in stripped):
        return False
    numeric = sum(1 for t in stripped if t.replace(".", "").replace("-", "").replace(
        "/", "").replace(" ", "").replace(":", "").isdigit())
    return numeric <= len(stripped) // 4 and len(set(stripped)) >= 0.8 * len(stripped)


def _filled(cells: list[Any]) -> int:
    return sum(1 for c in cells if not blank(c))


def find_header(rows: list[list[Any]]) -> int | None:
    """Index (0-based) of the header among the first rows: the first header-like row that
    is not a title (one filled cell in a wide sheet) and has a filled row under it."""
    width = max((_filled(r) for r in rows), default=0)
    filled = [i for i, r in enumerate(rows) if _filled(r)]
    for pos, i in enumerate(filled):
        row = rows[i]
        n = _filled(row)
        if width > 2 and n == 1:
            continue  # a title such as "2023年客户台账", or a note line
        if n < max(1, width // 2):
            continue
        if _headerish(row) and pos + 1 < len(filled):
            return i
    if filled:
        return filled[0]
    return None


def _second_header(top: list[Any], below: list[Any] | None, merged_tops: set[int]) -> bool:
    """Is ``below`` the lower row of a two-row header ("联系方式" over "手机"/"微信")?"""
    if below is None or not _headerish(below):
        return False
    gaps = [i for i, c in enumerate(below) if not blank(c)
            and (i >= len(top) or blank(top[i]) or i in merged_tops)]
    holes = [i for i, c in enumerate(top) if not blank(c)
             and (i >= len(below) or blank(below[i]))]
    return bool(gaps) and bool(holes or merged_tops)


def _join_header(top: list[Any], below: list[Any], spans: dict[int, int]) -> list[str]:
    """Each column's title: the upper group title "/" the lower one, or the one present.
    A group title covers the columns of its merge (or, without merge data, the empty top
    cells to its right that have a lower title)."""
    width = max(len(top), len(below))
    upper = [_text(top[i]) if i < len(top) else "" for i in range(width)]
    lower = [_text(below[i]) if i < len(below) else "" for i in range(width)]
    group = [""] * width
    for start, end in spans.items():
        for i in range(start, min(end + 1, width)):
            group[i] = upper[start]
    current = ""
    for i in range(width):
        if upper[i]:
            current = upper[i] if lower[i] else ""
        elif lower[i] and current and not group[i]:
            group[i] = current
        elif not lower[i]:
            current = ""
        if upper[i] and not group[i]:
            group[i] = upper[i]
    return [f"{g}/{low}" if g and low and g != low else (low or g)
            for g, low in zip(group, lower, strict=True)]


def _read_head(source: Iterator[list[Any]], limit: int) -> tuple[list[list[Any]], bool]:
    rows = []
    for cells in source:
        rows.append(cells)
        if len(rows) >= limit:
            return rows, False
    return rows, True


def open_table(path: str | Path, *, filename: str | None = None,
               sheet: str | int | None = None, header_row: int | None = None) -> Table:
    """Open ``path`` (named ``filename`` by the user) and find its header; see the module
    docstring. Raises ``ImportError_`` (422) with a message a clerk understands."""
    path = Path(path)
    filename = filename or path.name
    name = filename.lower()
    merged: list[tuple[tuple[int, int], tuple[int, int]]] = []
    estimate = None
    if name.endswith(SHEETS):
        sheets, chosen, data, parsed_key = _parsed_sheet(path, sheet)
        merged = list(data.merged_cell_ranges or [])
        estimate = data.end[0] + 1 if data.end else 0
        head, complete = _read_head(iter(data.iter_rows()), PROBE_ROWS + KEEP_ROWS)
        loaded = None if complete else data
        encoding = None
    elif name.endswith(TEXTS):
        with open(path, "rb") as raw:
            encoding = detect_encoding(raw.read(SNIFF_BYTES))
        sheets = chosen_list = ["CSV"]
        chosen = _pick_sheet(chosen_list, sheet)
        head, complete = _read_head(_csv_rows(path, encoding), PROBE_ROWS + KEEP_ROWS)
        loaded = None
    else:
        raise ImportError_("file: expected .xlsx, .xls, .ods or .csv", field="file",
                           zh="只能导入 .xlsx、.xls、.ods 或 .csv 文件")
    table = _table(path, filename, sheets, chosen, encoding, head, complete, merged,
                   header_row, estimate)
    table._loaded = loaded
    table._parsed_key = parsed_key if loaded is not None else None
    return table


# The last sheet calamine parsed, kept for the next ``open_table`` of the same file: an
# import opens its file three times (the upload finds the header and suggests the mapping,
# the start checks it, the run reads the rows) and calamine parses the whole workbook each
# time — for a large file, each as long as the whole read. One sheet at most, for at most
# ``PARSED_TTL`` seconds, keyed by the file's path, size and modification time; the run
# that reads it to the end lets it go. A process that did not parse it (another worker)
# simply parses the file itself.
PARSED_TTL = 600.0
_parsed: dict[tuple[Any, ...], tuple[float, list[str], Any]] = {}
_parsed_lock = threading.Lock()


def _parsed_sheet(path: Path, sheet: str | int | None
                  ) -> tuple[list[str], str, Any, tuple[Any, ...] | None]:
    """(sheet names, the chosen one, its parsed cells, the cache key they are kept by)."""
    try:
        stat = path.stat()
    except OSError:
        stat = None
    now = time.monotonic()
    if stat is not None:
        with _parsed_lock:
            for key, (at, sheets, data) in list(_parsed.items()):
                if now - at > PARSED_TTL:
                    del _parsed[key]
                elif key[:3] == (str(path.resolve()), stat.st_size, stat.st_mtime_ns):
                    chosen = _pick_sheet(sheets, sheet)
                    if key[3] == chosen:
                        return sheets, chosen, data, key
    book = _workbook(path)
    sheets = list(book.sheet_names)
    chosen = _pick_sheet(sheets, sheet)
    data = book.get_sheet_by_name(chosen)
    del book
    if stat is None:
        return sheets, chosen, data, None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, chosen)
    with _parsed_lock:
        _parsed.clear()  # one sheet at most
        _parsed[key] = (now, sheets, data)
    return sheets, chosen, data, key


def _forget(key: tuple[Any, ...]) -> None:
    with _parsed_lock:
        _parsed.pop(key, None)


def _pick_sheet(sheets: list[str], sheet: str | int | None) -> str:
    if not sheets:
        raise ImportError_("file: the workbook has no sheets", field="sheet",
                           zh="这个工作簿没有工作表")
    if sheet is None or sheet == "":
        return sheets[0]
    if isinstance(sheet, int) or (isinstance(sheet, str) and sheet.isdecimal()
                                  and sheet not in sheets):
        index = int(sheet)
        if not 0 <= index < len(sheets):
            raise ImportError_(f"sheet: there is no sheet number {index} (the file has "
                               f"{len(sheets)})", field="sheet", zh=f"没有第 {index} 个工作表")
        return sheets[index]
    if sheet not in sheets:
        raise ImportError_(f"sheet: no sheet named {sheet!r} (sheets: {', '.join(sheets)})",
                           field="sheet", zh=f"没有名为 {sheet} 的工作表")
    return sheet


def _table(path: Path, filename: str, sheets: list[str], chosen: str, encoding: str | None,
           head: list[list[Any]], complete: bool,
           merged: list[tuple[tuple[int, int], tuple[int, int]]],
           header_row: int | None, estimate: int | None) -> Table:
    probe = head[:PROBE_ROWS]
    if header_row is not None:
        if header_row < 1 or (complete and header_row > len(head)):
            raise ImportError_(f"header_row: row {header_row} is not in the sheet",
                               field="header_row", zh=f"表格中没有第 {header_row} 行")
        if header_row > len(head):
            raise ImportError_(f"header_row: choose one of the first {len(head)} rows",
                               field="header_row", zh=f"标题行须在前 {len(head)} 行之内")
        index: int | None = header_row - 1
    else:
        index = find_header(probe)
    if index is None:
        raise ImportError_("file: the sheet is empty", field="file", zh="这个工作表是空的")
    top = head[index]
    below = head[index + 1] if index + 1 < len(head) else None
    spans = {c0: c1 for (r0, c0), (r1, c1) in merged if r0 == index and r1 == index
             and c1 > c0}
    if below is not None and _second_header(top, below, set(spans)):
        header = _join_header(top, below, spans)
        first = index + 3  # 1-based: the row after the lower header row
    else:
        header = [_text(c) for c in top]
        first = index + 2
    if not any(header):
        raise ImportError_(f"header_row: row {index + 1} has no column titles",
                           field="header_row", zh=f"第 {index + 1} 行没有列标题")
    while header and not header[-1]:
        header.pop()
    kept = [(i + 1, cells) for i, cells in enumerate(head) if i + 1 >= first
            and not all(blank(c) for c in cells)]
    return Table(filename=filename, sheets=sheets, sheet=chosen, header_row=index + 1,
                 header=header, encoding=encoding, path=path, first_data_row=first,
                 width=max([len(header), *(len(c) for c in head)]),
                 estimate=None if estimate is None else max(0, estimate - first + 1),
                 _head=kept, _complete=complete)
