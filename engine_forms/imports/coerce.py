"""A spreadsheet cell → a field's stored value, through the field type's own text parser.

Cells come typed from calamine (str, float, int, bool, date, datetime, time, timedelta)
or as text from a CSV. ``coercer(field)`` is built once per column and returns a closure,
so a 200,000-row import looks nothing up per cell. What each type understands (dates
typed five ways and Excel serial numbers, 万 amounts, +86 phones, ID checksums …) lives
in the type's ``from_text`` (``engine_forms.fieldtypes``), shared with every other
caller; here are only the cases that depend on the cell's spreadsheet type:

- a date/datetime cell goes to the type's ``coerce`` as a date (no text round trip);
- a number cell in a date field is an Excel serial day number;
- a number cell in a phone or ID field is written without ``.0``; an 18-digit ID that
  Excel stored as a number has lost its last digits and is refused with that reason;
- a true/false cell in a boolean field is taken as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from engine_forms.fieldtypes.base import FieldError, refuse

Coercer = Callable[[Any], Any]


def cell_text(cell: Any) -> str:
    """A cell as the text a person typed: a whole number without ``.0``, a date as
    ``2024-03-05``, a date-time as ``2024-03-05 09:30:00``, true/false as 是/否."""
    if cell is None:
        return ""
    if isinstance(cell, str):
        return cell.strip()
    if isinstance(cell, bool):
        return "是" if cell else "否"
    if isinstance(cell, float):
        if cell.is_integer() and abs(cell) < 1e16:
            return str(int(cell))
        return repr(cell)
    if isinstance(cell, datetime):
        if (cell.hour, cell.minute, cell.second, cell.microsecond) == (0, 0, 0, 0):
            return cell.date().isoformat()
        return cell.isoformat(sep=" ", timespec="seconds")
    if isinstance(cell, date | time):
        return cell.isoformat()
    if isinstance(cell, timedelta):  # a duration cell: its hh:mm:ss
        seconds = int(cell.total_seconds())
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return str(cell).strip()


def is_blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def _id_number(cell: Any) -> str:
    if isinstance(cell, float) and cell >= 1e15:
        raise refuse("excel_number", "身份证号被 Excel 存成了数字, 末几位已丢失; 请把这一列设为"
                     "“文本”格式后重新输入", "Excel stored this ID number as a number and "
                     "lost its last digits; format the column as text and type it again")
    return cell_text(cell)


# types whose columns repeat a few texts (options, yes/no, dates): their answers are kept
# per column, so 200,000 cells of 性别 are parsed twice, not 200,000 times
MEMO_TYPES = frozenset({"select", "multiselect", "boolean", "date", "percent"})
MEMO_SIZE = 20_000


def memoized(fn: Coercer, size: int = MEMO_SIZE) -> Coercer:
    """``fn`` remembering its answer (or its refusal) per distinct cell, up to ``size``
    cells; refusals are raised anew each time (a re-raised exception would grow its
    traceback)."""
    seen: dict[Any, Any] = {}

    def call(cell: Any) -> Any:
        key = (type(cell), cell)
        try:
            answer = seen[key]
        except KeyError:
            try:
                answer = fn(cell)
            except FieldError as exc:
                answer = exc
            except ValueError:
                raise
            if len(seen) < size:
                seen[key] = answer
        if isinstance(answer, FieldError):
            raise FieldError(answer.code, answer.zh, answer.en)
        return answer.copy() if isinstance(answer, list) else answer
    return call


def coercer(field: Any) -> Coercer:
    """The function turning one non-blank cell of a column into ``field``'s value
    (remembering its answers for the types of ``MEMO_TYPES``)."""
    fn = _coercer(field)
    return memoized(fn) if field.type in MEMO_TYPES else fn


def _coercer(field: Any) -> Coercer:
    kind = field.type
    ftype = field.field_type
    from_text = ftype.from_text

    def by_text(cell: Any) -> Any:
        return from_text(cell_text(cell), field)

    if kind == "date":
        def as_date(cell: Any) -> Any:
            if isinstance(cell, date):  # datetime too: the type drops the time
                return ftype.coerce(cell, field)
            return by_text(cell)
        return as_date
    if kind == "datetime":
        def as_datetime(cell: Any) -> Any:
            if isinstance(cell, datetime):
                return ftype.coerce(cell, field)
            if isinstance(cell, date):
                return ftype.coerce(datetime(cell.year, cell.month, cell.day), field)
            return by_text(cell)
        return as_datetime
    if kind == "boolean":
        def as_bool(cell: Any) -> Any:
            if isinstance(cell, bool):
                return cell
            return by_text(cell)
        return as_bool
    if kind == "id_card":
        return lambda cell: from_text(_id_number(cell), field)
    if kind in ("money", "number", "percent"):
        def as_number(cell: Any) -> Any:
            if isinstance(cell, float | int) and not isinstance(cell, bool):
                # repr is the shortest text that reads back as the same float: 0.1, not
                # 0.1000000000000000055511151231257827
                return from_text(str(Decimal(repr(cell))) if isinstance(cell, float)
                                 else str(cell), field)
            return by_text(cell)
        return as_number
    return by_text


def coerce(field: Any, cell: Any) -> Any:
    """One cell → ``field``'s stored value (``None`` for a blank cell). Raises
    ``FieldError`` (a ``ValueError``) whose ``zh``/``en`` say why, for a clerk."""
    if is_blank(cell):
        return None
    return coercer(field)(cell)


def reason(exc: Exception) -> tuple[str, str]:
    """(Chinese, English) reason of a refused cell."""
    if isinstance(exc, FieldError):
        return exc.zh, exc.en
    return str(exc), str(exc)
