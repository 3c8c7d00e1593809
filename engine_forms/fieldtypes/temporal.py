"""Date and date-time types."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from engine_forms.fieldtypes.base import DEFER, FieldType, plain, refuse, text_coercer

SHANGHAI = ZoneInfo("Asia/Shanghai")
CN_DATE = re.compile(r"^(\d{4})\s*[年/.-]\s*(\d{1,2})\s*[月/.-]\s*(\d{1,2})\s*[日号]?$")
COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")  # 20240305
TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$")
SERIAL = re.compile(r"^\d{5}(\.\d+)?$")  # spreadsheet day number (+ fraction of a day)
EPOCH = datetime(1899, 12, 30)  # day 0 of spreadsheet serial numbers
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # a date as coerce stores it


def parse_date(text: str) -> date:
    """``2024-03-05``, ``2024/3/5``, ``2024.3.5``, ``2024年3月5日`` (号), ``20240305``.
    A two-digit year (``24/3/5``, ``3/5/24``) is refused: day, month and century are
    guesses there."""
    text = text.strip()
    match = CN_DATE.match(text) or COMPACT.match(text)
    if match:
        y, m, d = (int(g) for g in match.groups())
        return date(y, m, d)
    return date.fromisoformat(text)


def split_time(text: str) -> tuple[str, re.Match[str] | None]:
    """(the date part, the time of day if one follows it after a space or a ``T``)."""
    for sep in (" ", "T"):
        head, _, tail = text.rpartition(sep)
        if head and TIME.match(tail.strip()):
            return head.strip(), TIME.match(tail.strip())
    return text, None


class DateType(FieldType):
    key, label, kind = "date", "日期", "date"
    config_schema: ClassVar[dict[str, Any]] = {
        "min": {"type": "string", "format": "date"}, "max": {"type": "string", "format": "date"}}

    def value_schema(self, field: Any) -> dict[str, Any]:  # noqa: ARG002
        return {"type": "string", "format": "date"}

    def coerce(self, value: Any, field: Any) -> str:
        if isinstance(value, datetime):
            value = value.date()
        if isinstance(value, date):
            day = value
        elif isinstance(value, str):
            try:
                day = parse_date(value)
            except ValueError:
                raise refuse("format", "不是有效日期 (如 2024-02-29)",
                             "is not a valid date (e.g. 2024-02-29)") from None
        else:
            raise refuse("type", "应为日期", "must be a date")
        low, high = field.config.get("min"), field.config.get("max")
        if low and day.isoformat() < low:
            raise refuse("min", f"不能早于 {low}", f"must be on or after {low}")
        if high and day.isoformat() > high:
            raise refuse("max", f"不能晚于 {high}", f"must be on or before {high}")
        return day.isoformat()

    def coercer(self, field: Any) -> Callable[[Any], Any]:
        low, high = field.config.get("min"), field.config.get("max")
        fullmatch, fromisoformat = ISO_DATE.fullmatch, date.fromisoformat

        def iso_date(value: Any) -> Any:
            if value.__class__ is not str or not fullmatch(value):
                return DEFER
            try:
                fromisoformat(value)  # a real day (not 2023-02-29)
            except ValueError:
                return DEFER
            if (low and value < low) or (high and value > high):
                return DEFER
            return value

        return iso_date

    def from_text(self, text: str, field: Any) -> str:
        """The forms of ``parse_date``, with a time of day after it dropped, and an Excel
        serial day number (``45356`` = 2024-03-05)."""
        text = plain(text)
        if re.fullmatch(r"\d{5}(\.0+)?", text):  # a spreadsheet serial day number
            return self.coerce(EPOCH.date() + timedelta(days=int(float(text))), field)
        head, _time = split_time(text)
        return self.coerce(head, field)  # drop 0:00

    def format(self, value: Any, field: Any) -> str:  # noqa: ARG002
        return "" if value is None else str(value)


class DateTimeType(FieldType):
    """Stored in UTC; a value without a zone is read as China time (Asia/Shanghai)."""

    key, label, kind = "datetime", "日期时间", "datetime"

    def value_schema(self, field: Any) -> dict[str, Any]:  # noqa: ARG002
        return {"type": "string", "format": "date-time"}

    def coerce(self, value: Any, field: Any) -> str:  # noqa: ARG002
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip().replace("/", "-"))
            except ValueError:
                raise refuse("format", "不是有效的日期时间 (如 2024-02-29T09:30:00+08:00)",
                             "is not a valid date-time (e.g. 2024-02-29T09:30:00+08:00)"
                             ) from None
        if not isinstance(value, datetime):
            raise refuse("type", "应为日期时间", "must be a date-time")
        if value.tzinfo is None:
            value = value.replace(tzinfo=SHANGHAI)
        try:
            moment = value.astimezone(UTC)
        except OverflowError:  # 0001-01-01 in +08:00 is before year 1 in UTC
            moment = None
        if moment is None or moment.year < 1000:  # ISO text order = time order needs 4 digits
            raise refuse("range", "日期时间超出范围 (1000–9999 年)",
                         "is out of range (years 1000–9999)")
        # = strftime("%Y-%m-%dT%H:%M:%SZ") for years 1000-9999, in half the time
        return moment.isoformat()[:19] + "Z"

    def coercer(self, field: Any) -> Callable[[Any], Any]:
        return text_coercer(self.coerce, field)

    def from_text(self, text: str, field: Any) -> str:
        """Also ``2024/2/29 9:30``, ``2024年2月29日 09:30``, a date alone (midnight, China
        time) and serial ``45351.5``; ISO 8601 with a zone keeps its zone."""
        text = plain(text)
        if SERIAL.match(text):
            return self.coerce(EPOCH + timedelta(seconds=round(float(text) * 86400)), field)
        head, time = split_time(text)
        if time is None:
            try:  # a date alone: midnight, China time
                day = parse_date(text)
            except ValueError:
                return self.coerce(text, field)
            return self.coerce(datetime(day.year, day.month, day.day), field)
        try:
            day = parse_date(head)
            moment = datetime(day.year, day.month, day.day, int(time[1]), int(time[2]),
                              int(time[3] or 0))
        except ValueError:
            return self.coerce(text, field)  # refused there, with the usual message
        return self.coerce(moment, field)

    def format(self, value: Any, field: Any) -> str:  # noqa: ARG002
        if value is None:
            return ""
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
