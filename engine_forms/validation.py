"""Record validation: every error at once, per field and per subtable row, in Chinese and
English. The same rules run on the server as on the page.

Order of events for one write: refuse unknown and computed keys → coerce each value by
its field type (subtable rows column by column) → merge over the old data (update) or
the defaults (create) → compute formulas in dependency order → clear fields whose
``visible_if`` is false → check required / ``required_if`` → run ``validate`` rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine_forms.expr import CompiledForm, to_storage
from engine_forms.fieldtypes import FieldError
from engine_forms.spec import FieldSpec
from platform_core.errors import InvalidInput
from platform_core.expressions.values import Env


@dataclass(frozen=True)
class Problem:
    field: str
    code: str
    zh: str
    en: str
    row: int | None = None
    column: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"field": self.field, "code": self.code, "message": self.zh,
               "message_en": self.en}
        if self.row is not None:
            out |= {"row": self.row, "column": self.column}
        return out


class RecordInvalid(InvalidInput):
    """A record that does not validate; ``errors`` has every problem at once."""

    code = "invalid_record"

    def __init__(self, problems: list[Problem]):
        first = problems[0]
        where = first.field if first.row is None else f"{first.field}[{first.row}].{first.column}"
        super().__init__(f"{len(problems)} field(s) are not valid; first: {where}: {first.en}",
                         errors=[p.as_dict() for p in problems])
        self.problems = problems


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _coerce(field: FieldSpec, value: Any, problems: list[Problem]) -> Any:
    if value is None or value == "":
        return None
    try:
        out = field.field_type.coerce(value, field)
    except FieldError as exc:
        problems.append(Problem(field.key, exc.code, f"{field.label}: {exc.zh}",
                                f"{field.key}: {exc.en}"))
        return None
    if field.type == "subtable":
        return _rows(field, out, problems)
    return out


def _rows(field: FieldSpec, rows: list[dict[str, Any]], problems: list[Problem]) -> list[Any]:
    columns = {c["key"]: FieldSpec.model_validate(c) for c in field.config["fields"]}
    out = []
    for i, row in enumerate(rows):
        clean: dict[str, Any] = {}
        for key in sorted(set(row) - set(columns)):
            problems.append(Problem(field.key, "unknown_field", f"{field.label} 第 {i + 1} 行: "
                                    f"未知列 {key}", f"{field.key} row {i + 1}: unknown "
                                    f"column {key}", i, key))
        for key, column in columns.items():
            value = row.get(key)
            if _blank(value):
                if column.required:
                    problems.append(Problem(field.key, "required", f"{field.label} 第 {i + 1}"
                                            f" 行: {column.label} 必填", f"{field.key} row "
                                            f"{i + 1}: {key} is required", i, key))
                continue
            try:
                clean[key] = column.field_type.coerce(value, column)
            except FieldError as exc:
                problems.append(Problem(field.key, exc.code, f"{field.label} 第 {i + 1} 行: "
                                        f"{column.label}{exc.zh}", f"{field.key} row {i + 1}:"
                                        f" {key} {exc.en}", i, key))
        out.append(clean)
    return out


def _truth(fn: Any, data: Mapping[str, Any], env: Env) -> bool:
    return fn(data, env) is True


def validate_record(compiled: CompiledForm, payload: Mapping[str, Any], *,
                    old: Mapping[str, Any] | None = None, env: Env | None = None,
                    ) -> dict[str, Any]:
    """The data to store for ``payload`` (a create when ``old`` is None, else a patch).

    Raises ``RecordInvalid`` listing every problem; never returns half-checked data.
    """
    spec, env = compiled.spec, env or Env()
    problems: list[Problem] = []
    by_key = {f.key: f for f in spec.fields}
    for key in sorted(set(payload) - set(by_key)):
        problems.append(Problem(key, "unknown_field", f"未知字段 {key}",
                                f"{key}: unknown field of form {spec.key}"))
    coerced: dict[str, Any] = {}
    for key, value in payload.items():
        field = by_key.get(key)
        if field is None:
            continue
        if field.field_type.computed:
            problems.append(Problem(key, "computed", f"{field.label}: 由系统计算, 不能填写",
                                    f"{key}: is computed by the system and cannot be set"))
            continue
        coerced[key] = _coerce(field, value, problems)
    if old is None:
        data = {f.key: f.field_type.coerce(f.default, f) for f in spec.fields
                if f.default is not None and f.key not in payload}
    else:
        data = dict(old)
    data.update(coerced)
    for field, fn, kind in compiled.formulas:
        data[field.key] = to_storage(fn(data, env), kind)
    for key, fn in compiled.visible_if.items():
        if not _truth(fn, data, env):
            data[key] = None  # hidden fields hold no value (as on the page)
    for field in spec.fields:
        visible = field.key not in compiled.visible_if or _truth(
            compiled.visible_if[field.key], data, env)
        required = field.required or (field.key in compiled.required_if and _truth(
            compiled.required_if[field.key], data, env))
        if visible and required and not field.field_type.computed and _blank(data.get(field.key)):
            problems.append(Problem(field.key, "required", f"{field.label}: 必填",
                                    f"{field.key}: is required"))
    for key, rules in compiled.validations.items():
        if _blank(data.get(key)) or any(p.field == key for p in problems):
            continue
        for fn, message in rules:
            if fn(data, env) is False:
                problems.append(Problem(key, "validate", f"{by_key[key].label}: {message}",
                                        f"{key}: {message}"))
    if problems:
        raise RecordInvalid(problems)
    return {k: v for k, v in data.items() if not _blank(v) or v is False}
