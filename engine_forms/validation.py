"""Record validation: every error at once, per field and per subtable row, in Chinese and
English. The same rules run on the server as on the page.

Order of events for one write: refuse unknown and computed keys → coerce each value by
its field type (subtable rows column by column) → merge over the old data (update) or
the defaults (create) → compute formulas in dependency order → clear fields whose
``visible_if`` is false (formulas and clearing run a second time, so no formula keeps a
value computed from a hidden field) → check required / ``required_if`` → run
``validate`` rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine_forms.expr import CompiledForm, to_storage
from engine_forms.fieldtypes import DEFER, FieldError
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
        first = problems[0]  # its English message already names the field (and row)
        super().__init__(f"{len(problems)} field(s) are not valid; first: {first.en}",
                         errors=[p.as_dict() for p in problems])
        self.problems = problems


BLANKS = (None, "", [], {})  # `v in BLANKS`: one comparison loop in C (never mutated)


def _blank(value: Any) -> bool:
    return value in BLANKS


def _refusal(field: FieldSpec, exc: FieldError) -> Problem:
    return Problem(field.key, exc.code, f"{field.label}: {exc.zh}", f"{field.key}: {exc.en}")


def _coerce(field: FieldSpec, value: Any, problems: list[Problem], plan: Plan) -> Any:
    """One payload value → its stored form (None, with a problem noted, if refused)."""
    if value is None or value == "":
        return None
    try:
        out = field.field_type.coerce(value, field)
    except FieldError as exc:
        problems.append(_refusal(field, exc))
        return None
    if field.type == "subtable":
        return _rows(field, out, problems, plan.columns[field.key])
    return out


def _rows(field: FieldSpec, rows: list[dict[str, Any]], problems: list[Problem],
          columns: dict[str, FieldSpec]) -> list[Any]:
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


def _compute(compiled: CompiledForm, data: dict[str, Any], env: Env) -> None:
    """Formulas, then clear hidden fields; twice, so that no formula keeps a value computed
    from a field that was just hidden, and a field hidden by a recomputed formula is
    cleared too."""
    hidden: set[str] = set()
    for _ in range(2 if compiled.interlinked else 1):
        for field, fn, kind in compiled.formulas:
            data[field.key] = None if field.key in hidden else to_storage(fn(data, env), kind)
        hidden = {k for k, fn in compiled.visible_if.items() if fn(data, env) is not True}
        for key in hidden:
            data[key] = None  # hidden fields hold no value (as on the page)


@dataclass(frozen=True)
class Plan:
    """What validating against one compiled form needs, worked out once per published
    version (not per record): each settable field's coercer with its config bound (see
    ``FieldType.coercer``), subtable columns, defaults and the fields that may be
    required with their conditions."""

    by_key: dict[str, FieldSpec]
    computed: frozenset[str]
    defaults: dict[str, Any]
    may_require: tuple[FieldSpec, ...]
    coercers: dict[str, Callable[[Any], Any]]
    columns: dict[str, dict[str, FieldSpec]]
    # (key, field, visible_if, required_if) per field of ``may_require``; None = no condition
    requirements: tuple[tuple[str, FieldSpec, Any, Any], ...]


_PLANS: dict[int, tuple[CompiledForm, Plan]] = {}


def plan_of(compiled: CompiledForm) -> Plan:
    """The plan of ``compiled``, built on its first use. A compiled form stands for one
    published version (``forms.published`` caches it by version and publication), so a new
    version, compiled anew, gets a new plan."""
    cached = _PLANS.get(id(compiled))
    if cached is not None and cached[0] is compiled:
        return cached[1]
    fields = compiled.spec.fields
    may_require = tuple(f for f in fields if not f.field_type.computed
                        and (f.required or f.key in compiled.required_if))
    plan = Plan(
        by_key={f.key: f for f in fields},
        computed=frozenset(f.key for f in fields if f.field_type.computed),
        defaults={f.key: f.field_type.coerce(f.default, f) for f in fields
                  if f.default is not None},
        may_require=may_require,
        coercers={f.key: f.field_type.coercer(f) for f in fields if not f.field_type.computed},
        columns={f.key: {c["key"]: FieldSpec.model_validate(c) for c in f.config["fields"]}
                 for f in fields if f.type == "subtable"},
        requirements=tuple(
            (f.key, f, compiled.visible_if.get(f.key),
             None if f.required else compiled.required_if[f.key]) for f in may_require))
    if len(_PLANS) > 512:
        _PLANS.clear()
    _PLANS[id(compiled)] = (compiled, plan)
    return plan


def _check_required(plan: Plan, data: Mapping[str, Any], env: Env,
                    problems: list[Problem]) -> None:
    """Visible required (or ``required_if``) fields that are blank; a field that already
    has a problem (e.g. a value that did not coerce) gets no second "required" one."""
    refused = {p.field for p in problems} if problems else ()
    for key, field, visible_if, required_if in plan.requirements:
        if data.get(key) not in BLANKS or key in refused:
            continue
        if (visible_if is None or visible_if(data, env) is True) and (
                required_if is None or required_if(data, env) is True):
            problems.append(Problem(key, "required", f"{field.label}: 必填",
                                    f"{key}: is required"))


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def validate_record(compiled: CompiledForm, payload: Mapping[str, Any], *,
                    old: Mapping[str, Any] | None = None, env: Env | None = None,
                    ) -> dict[str, Any]:
    """The data to store for ``payload`` (a create when ``old`` is None, else a patch).

    Raises ``RecordInvalid`` listing every problem; never returns half-checked data.
    """
    data, problems = assess(compiled, payload, old=old, env=env)
    if problems:
        raise RecordInvalid(problems)
    return {k: v for k, v in data.items() if v not in BLANKS}


@dataclass(frozen=True)
class FieldState:
    """How a field shows in a form being filled: visible, required (``required_if``)."""

    visible: bool
    required: bool


def field_states(compiled: CompiledForm, data: Mapping[str, Any],
                 env: Env | None = None) -> dict[str, FieldState]:
    """Each field's visibility and requiredness for ``data`` (as ``assess`` computed it):
    what a page shows while the user types — the same evaluation as the save's."""
    env = env or Env()
    out = {}
    for field in compiled.spec.fields:
        visible = field.key not in compiled.visible_if or _truth(
            compiled.visible_if[field.key], data, env)
        required = field.required or (field.key in compiled.required_if and _truth(
            compiled.required_if[field.key], data, env))
        out[field.key] = FieldState(visible, required and not field.field_type.computed)
    return out


def assess(compiled: CompiledForm, payload: Mapping[str, Any], *,
           old: Mapping[str, Any] | None = None, env: Env | None = None,
           ) -> tuple[dict[str, Any], list[Problem]]:
    """``validate_record`` without raising: the data as it would be (formulas computed,
    hidden fields cleared) and every problem. A page checks a form as it is typed with
    this; a save raises on the same problems."""
    env, plan = env or Env(), plan_of(compiled)
    problems: list[Problem] = []
    by_key, coercers = plan.by_key, plan.coercers
    if not payload.keys() <= by_key.keys():
        for key in sorted(k for k in payload if k not in by_key):
            problems.append(Problem(key, "unknown_field", f"未知字段 {key}",
                                    f"{key}: unknown field of form {compiled.spec.key}"))
    coerced: dict[str, Any] = {}
    for key, value in payload.items():
        coercer = coercers.get(key)
        if coercer is not None:  # the common case: a settable field, a usual value
            try:
                out = coercer(value)
            except FieldError as exc:
                problems.append(_refusal(by_key[key], exc))
                coerced[key] = None
                continue
            if out is not DEFER:
                coerced[key] = out
                continue
        field = by_key.get(key)
        if field is None:
            continue
        if key in plan.computed:
            problems.append(Problem(key, "computed", f"{field.label}: 由系统计算, 不能填写",
                                    f"{key}: is computed by the system and cannot be set"))
            continue
        if _has_nul(value):  # no database text can hold it (PostgreSQL refuses it)
            problems.append(Problem(key, "format", f"{field.label}: 不能包含空字符 (NUL)",
                                    f"{key}: must not contain the NUL character"))
            continue
        coerced[key] = _coerce(field, value, problems, plan)
    if old is not None:
        data = dict(old)
        data.update(coerced)
    elif plan.defaults:
        data = {k: v for k, v in plan.defaults.items() if k not in payload}
        data.update(coerced)
    else:
        data = coerced
    _compute(compiled, data, env)
    _check_required(plan, data, env, problems)
    refused = {p.field for p in problems} if problems else ()
    for key, rules in compiled.validations.items():
        if data.get(key) in BLANKS or key in refused:
            continue
        for fn, message in rules:
            if fn(data, env) is False:
                problems.append(Problem(key, "validate", f"{by_key[key].label}: {message}",
                                        f"{key}: {message}"))
    return data, problems
