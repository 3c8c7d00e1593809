"""``DashboardSpec``: a grid of report widgets with shared parameters, shown to roles.

    {"key": "sales", "name": "销售看板", "roles": ["manager"],
     "parameters": [{"key": "period", "type": "date_range", "label": "期间"}],
     "widgets": [{"report": "leaderboard", "x": 0, "y": 0, "w": 6, "h": 4}]}

A dashboard parameter is passed to every widget whose report declares a parameter with
the same key (the report says which field it filters). The grid is 12 columns wide;
on a phone widgets stack in reading order (y, then x), or by their ``order`` when the
dashboard gives one (widgets without it come after, in reading order).
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine_reports.spec import CHARTS, KEY, PARAMETER_TYPES
from platform_core.specs import SpecError, parse_spec


class DashboardSpecError(SpecError):
    code, what = "invalid_dashboard", "dashboard"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SharedParameter(_Strict):
    key: str = Field(pattern=KEY)
    type: Literal[PARAMETER_TYPES]  # type: ignore[valid-type]
    label: str | None = Field(default=None, max_length=100)
    default: Any = None


class Widget(_Strict):
    report: str = Field(pattern=KEY)
    title: str | None = Field(default=None, max_length=200)
    chart: Literal[CHARTS] | None = None  # type: ignore[valid-type]
    x: int = Field(default=0, ge=0, le=11)
    y: int = Field(default=0, ge=0, le=1000)
    w: int = Field(default=6, ge=1, le=12)
    h: int = Field(default=4, ge=1, le=20)
    order: int | None = Field(default=None, ge=0, le=1000)  # place on a phone (stacked)

    @model_validator(mode="after")
    def _fits(self) -> Widget:
        if self.x + self.w > 12:
            raise ValueError("a widget must fit in the 12 columns (x + w ≤ 12)")
        return self


class DashboardSpec(_Strict):
    key: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    roles: list[str] | None = Field(default=None, max_length=50)
    parameters: list[SharedParameter] = Field(default_factory=list, max_length=10)
    widgets: list[Widget] = Field(min_length=1, max_length=40)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)

    def ordered(self) -> list[Widget]:
        return sorted(self.widgets, key=lambda w: (w.y, w.x))


@cache
def meta_schema() -> dict[str, Any]:
    schema = DashboardSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Qiao dashboard"
    return schema


def parse_dashboard(raw: Any) -> DashboardSpec:
    return parse_spec(DashboardSpec, meta_schema(), raw, DashboardSpecError, "dashboard")
