"""The form's expressions — formulas, ``visible_if``, ``required_if``, ``validate`` —
checked once against the form's schema and compiled once (``CompiledForm``).

Formulas may use other formulas; they are evaluated in dependency order and a cycle is a
save-time error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from engine_forms.spec import FieldSpec, FormSpec
from platform_core.expressions.checker import check
from platform_core.expressions.errors import ExpressionError
from platform_core.expressions.evaluator import compile_python
from platform_core.expressions.nodes import Expr, Field, children
from platform_core.expressions.parser import parse
from platform_core.expressions.schema import ExprSchema
from platform_core.store.kinds import KINDS, to_fen

Resolve = Callable[[str], FormSpec | None]


def _kinds(spec: FormSpec, formula_kinds: Mapping[str, str]) -> dict[str, str]:
    kinds = {}
    for f in spec.fields:
        kind = formula_kinds.get(f.key) if f.type == "formula" else f.field_type.value_kind(f)
        if kind is not None and f.type != "relation":
            kinds[f.key] = kind
    return kinds


def schema_of(spec: FormSpec, formula_kinds: Mapping[str, str], app: str = "app",
              resolve: Resolve | None = None, depth: int = 0) -> ExprSchema:
    """The expression schema of ``spec``: typed fields, relations (one level), subtables."""
    relations, plain_relations = {}, {}
    for f in spec.fields:
        if f.type != "relation" or f.config.get("multiple"):
            continue
        target = resolve(f.config["target"]) if resolve and depth == 0 else None
        if target is None:
            plain_relations[f.key] = "number"
        else:
            relations[f.key] = schema_of(target, {}, app, None, depth + 1)
    subtables = {}
    for f in spec.fields:
        if f.type == "subtable":
            columns = [FieldSpec.model_validate(c) for c in f.config["fields"]]
            subtables[f.key] = ExprSchema.of(
                {c.key: k for c in columns if (k := c.field_type.value_kind(c))})
    return ExprSchema.of({**_kinds(spec, formula_kinds), **plain_relations},
                         relations=relations, subtables=subtables, app=app, form=spec.key)


def _fields_used(node: Expr) -> set[str]:
    found = {node.path[0]} if isinstance(node, Field) else set()
    for child in children(node):
        found |= _fields_used(child)
    return found


def _formula_deps(text: str) -> set[str]:
    try:
        return _fields_used(parse(text))
    except ExpressionError:  # reported with the formula's key when it is checked
        return set()


def _formula_order(spec: FormSpec) -> list[FieldSpec]:
    """Formulas in dependency order; a cycle is a ValueError naming it."""
    formulas = {f.key: f for f in spec.fields if f.type == "formula"}
    deps = {k: _formula_deps(f.config["expression"]) & set(formulas)
            for k, f in formulas.items()}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(key: str, trail: tuple[str, ...]) -> None:
        if key in order:
            return
        if key in visiting:
            raise ValueError("formulas refer to each other in a cycle: "
                             + " → ".join((*trail, key)))
        visiting.add(key)
        for dep in sorted(deps[key]):
            visit(dep, (*trail, key))
        visiting.discard(key)
        order.append(key)

    for key in formulas:
        visit(key, ())
    return [formulas[k] for k in order]


@dataclass
class CompiledForm:
    """A form's expressions, checked and compiled once per published version."""

    spec: FormSpec
    formulas: list[tuple[FieldSpec, Callable[..., Any], str]] = field(default_factory=list)
    visible_if: dict[str, Callable[..., Any]] = field(default_factory=dict)
    required_if: dict[str, Callable[..., Any]] = field(default_factory=dict)
    validations: dict[str, list[tuple[Callable[..., Any], str]]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    # True when a formula reads a field that visible_if may hide, or a visible_if reads a
    # formula: then formulas and hiding must run twice to settle.
    interlinked: bool = False


def _interlinked(spec: FormSpec) -> bool:
    formulas = {f.key for f in spec.fields if f.type == "formula"}
    hideable = {f.key for f in spec.fields if f.visible_if}
    for f in spec.fields:
        if f.type == "formula" and _fields_used(parse(f.config["expression"])) & hideable:
            return True
        if f.visible_if and _fields_used(parse(f.visible_if)) & formulas:
            return True
    return False


class ExpressionProblems(ValueError):
    """The problems of a form's expressions: the message lists them a line each (as a
    saved draft's error shows them); ``items`` says, for each, which field and which of
    its expressions, and where in the text (the designer shows it under that box)."""

    def __init__(self, items: list[dict[str, Any]]):
        self.items = items
        super().__init__("\n".join(i["text"] for i in items))


def _problem(where: str, text: str, exc: ExpressionError | None, *, field: str | None,
             attr: str, message: str = "") -> dict[str, Any]:
    if exc is not None:
        message = exc.detail
    return {"field": field, "attr": attr, "column": exc.column if exc else None,
            "message_zh": exc.message_zh if exc else message,
            "message_en": exc.message_en if exc else message,
            "text": f"{where}: {message} — in {text!r}"}


def compile_form(spec: FormSpec, resolve: Resolve | None = None) -> CompiledForm:
    """Check every expression of ``spec``; raise ``ValueError`` listing the problems."""
    problems: list[dict[str, Any]] = []
    compiled = CompiledForm(spec)
    formula_kinds: dict[str, str] = {}
    for f in _formula_order(spec):
        text = f.config["expression"]
        try:
            typed = check(parse(text), schema_of(spec, formula_kinds, resolve=resolve))
        except ExpressionError as exc:
            problems.append(_problem(f"{f.key!r} formula", text, exc, field=f.key,
                                     attr="expression"))
            continue
        kind = typed.type.name if typed.type.name in KINDS else "text"
        formula_kinds[f.key] = kind
        compiled.formulas.append((f, compile_python(typed), kind))
    compiled.kinds = _kinds(spec, formula_kinds)
    schema = schema_of(spec, formula_kinds, resolve=resolve)
    for f in spec.fields:
        for attr, target in (("visible_if", compiled.visible_if),
                             ("required_if", compiled.required_if)):
            text = getattr(f, attr)
            if text:
                fn = _condition(text, schema, f, attr, problems)
                if fn:
                    target[f.key] = fn
        for i, rule in enumerate(f.validations):
            fn = _condition(rule.expression, schema, f, f"validate.{i}", problems)
            if fn:
                compiled.validations.setdefault(f.key, []).append((fn, rule.message))
    if problems:
        raise ExpressionProblems(problems)
    compiled.interlinked = _interlinked(spec)  # every expression parses by now
    return compiled


def _condition(text: str, schema: ExprSchema, f: FieldSpec, attr: str,
               problems: list[dict[str, Any]]) -> Callable[..., Any] | None:
    where = f"{f.key!r} {attr.split('.')[0]}"
    try:
        typed = check(parse(text), schema)
    except ExpressionError as exc:
        problems.append(_problem(where, text, exc, field=f.key, attr=attr))
        return None
    if typed.type.name not in ("boolean", "blank"):
        problems.append(_problem(
            where, text, None, field=f.key, attr=attr,
            message=f"must be a TRUE/FALSE condition, not {typed.type.name}"))
        return None
    return compile_python(typed)


def expression_problems(spec: FormSpec, resolve: Resolve | None = None) -> list[str]:
    try:
        compile_form(spec, resolve)
    except ValueError as exc:
        return str(exc).splitlines()
    return []


@lru_cache(maxsize=512)
def compiled_cached(spec_json: str) -> CompiledForm:
    return compile_form(FormSpec.model_validate_json(spec_json))


def to_storage(value: Any, kind: str) -> Any:
    """A formula's run-time value → what the store keeps for a field of ``kind``.

    A result too large to store (more than 28 significant digits once rounded) is blank,
    like any other arithmetic fault of the evaluator.
    """
    try:
        return _to_storage(value, kind)
    except InvalidOperation:
        return None


_NUMBER_QUANTUM = Decimal(1).scaleb(-10)


def _to_storage(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "money" and isinstance(value, Decimal):
        return str(to_fen(value))  # what the money kind stores, without checking it again
    if kind == "number" and isinstance(value, Decimal):
        value = value.quantize(_NUMBER_QUANTUM, rounding=ROUND_HALF_UP).normalize()
    if isinstance(value, datetime | date) and kind in ("date", "datetime"):
        return KINDS.get(kind).to_storage(value)
    if kind == "text":
        return str(value) if value != "" else None
    return KINDS.get(kind).to_storage(value)
