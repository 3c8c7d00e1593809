"""The function library's entry type and registry.

A ``Function`` declares its parameters (the types each accepts), its result type (fixed
or computed from the argument types), its Python implementation and — if it can run
inside a database query — its SQL implementation. The checker, both compilers and the
reference page (docs/expressions.md) all read these declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from platform_core.expressions.types import SCALARS, Type
from platform_core.registry import Registry

# A compiled expression: (record data, env) → value.
Fn = Callable[[Mapping[str, Any], Any], Any]
ANY = SCALARS


class TypeProblem(Exception):
    """Raised by a result-type rule; the checker reports it at argument ``at`` (0-based,
    None for the call itself) with message ``reason`` of errors.MESSAGES."""

    def __init__(self, reason: str, at: int | None = None, **params: Any):
        super().__init__(reason)
        self.reason, self.at, self.params = reason, at, params


@dataclass(frozen=True)
class Param:
    """One parameter: the type names it accepts (blank always fits); ``list_ok`` lets an
    aggregate take a subtable column; ``optional`` parameters come last."""

    name: str
    accepts: frozenset[str]
    optional: bool = False
    list_ok: bool = False


@dataclass(frozen=True)
class Function:
    """One function of the library (see the module docstring).

    Python: ``py(*values)`` (``py(env, *values)`` when ``env``), or ``make_py(arg_fns,
    arg_types) → Fn`` for lazy or type-dependent functions. SQL: ``sql(ctx, args, call)``
    → SqlNode, None when the function cannot run in a query. ``volatile`` functions
    (TODAY, NOW) are never folded into constants by the Python compiler.
    """

    name: str
    category: str
    params: tuple[Param, ...]
    result: Type | Callable[[list[Type]], Type]
    py: Callable[..., Any] | None = None
    make_py: Callable[[list[Fn], list[Type]], Fn] | None = None
    variadic: bool = False
    env: bool = False
    volatile: bool = False
    sql: Callable[..., Any] | None = None
    zh: str = ""
    en: str = ""
    example: str = ""

    @property
    def min_args(self) -> int:
        return sum(1 for p in self.params if not p.optional)

    @property
    def max_args(self) -> int | None:
        return None if self.variadic else len(self.params)

    def param(self, index: int) -> Param:
        return self.params[min(index, len(self.params) - 1)]

    def result_type(self, types: list[Type]) -> Type:
        return self.result(types) if callable(self.result) else self.result


FUNCTIONS: Registry[Function] = Registry("expression function")


def p(name: str, *accepts: str | frozenset[str], optional: bool = False,
      list_ok: bool = False) -> Param:
    """``p("x", NUMERIC)``, ``p("text", "text")`` — a parameter declaration."""
    names: set[str] = set()
    for a in accepts:
        names |= {a} if isinstance(a, str) else set(a)
    return Param(name, frozenset(names), optional, list_ok)
