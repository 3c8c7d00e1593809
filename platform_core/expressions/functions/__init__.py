"""The function library: ``FUNCTIONS`` (a ``Registry``) filled by ``register_builtins``."""

from __future__ import annotations

from platform_core.expressions.functions.base import FUNCTIONS, Function, Param, TypeProblem


def register_builtins() -> None:
    """Register the built-in functions (idempotent: the app factory may call it twice)."""
    from platform_core.expressions.functions import dates, domain, logic, math, text

    for module in (logic, math, text, dates, domain):
        for fn in module.DEFS:
            if fn.name not in FUNCTIONS:
                FUNCTIONS.register(fn.name, fn)


__all__ = ["FUNCTIONS", "Function", "Param", "TypeProblem", "register_builtins"]
