"""Message templates (notifications, webhook bodies, to-do titles, the SMS gateway's body):
Jinja2 in a sandbox that also bounds time and size.

The sandbox already refuses Python internals. On top of it a render

- stops after ``RENDER_SECONDS`` (checked at every loop turn, every call, attribute or
  item look-up and every piece of output): nested loops cannot keep the dispatcher busy;
- never builds a value longer than ``MAX_VALUE`` characters or items: ``*``, ``+``, ``%``
  and ``~`` results, every call's and filter's result, and the widths given to padding
  (``center``, ``ljust``, ``"%*s"``, ``"{:>99999999}"``) are checked, the widths before
  anything is built;
- keeps at most ``MAX_BODY`` characters of output.

What breaks a limit — or fails in any other way — is an ``InvalidInput`` naming the
problem: the action fails cleanly with that reason in the run log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from functools import cache, lru_cache, wraps
from typing import Any

from jinja2 import Template, TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from platform_core.errors import InvalidInput

MAX_BODY = 4000  # characters of output kept
MAX_VALUE = 100_000  # the longest string or list a template may build
MAX_EXPONENT = 100
RENDER_SECONDS = 1.0  # a template's time to render
_TICK = 256  # loop turns between clock reads
_WIDTHS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "indent",
                     "wordwrap", "truncate"})
_BIG_NUMBER = re.compile(r"\d{6,}")
_STAR = re.compile(r"%[#0 +\-]*\*")
_NESTED = re.compile(r"\{[^{}]*:[^{}]*\{")  # "{:>{width}}": a width given as a value
_DEADLINE: ContextVar[float | None] = ContextVar("qiao_template_deadline", default=None)


class TooCostly(SecurityError):
    """A template that ran too long or built too big a value."""


def _tick() -> None:
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() > deadline:
        raise TooCostly(f"the template ran longer than {RENDER_SECONDS:g} s")


def _sized(value: Any) -> Any:
    if isinstance(value, str | list | tuple | bytes) and len(value) > MAX_VALUE:
        raise TooCostly(f"the template built a value longer than {MAX_VALUE} characters")
    return value


def _format_checked(text: Any) -> None:
    """A format string asking for a huge width or precision, or a ``*`` width."""
    if isinstance(text, str) and (_STAR.search(text) or _NESTED.search(text) or any(
            int(n) > MAX_VALUE for n in _BIG_NUMBER.findall(text))):
        raise TooCostly("the template asks for too wide a value")


def _widths_checked(name: str, args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    if name in _WIDTHS and any(isinstance(a, int) and a > MAX_VALUE
                               for a in (*args, *kwargs.values())):
        raise TooCostly(f"{name}: the width is too large (at most {MAX_VALUE})")


def _loop(iterable: Any) -> Iterator[Any]:
    """What a ``{% for %}`` walks, reading the clock every ``_TICK`` turns."""
    _tick()
    for turn, item in enumerate(iterable, 1):
        if turn % _TICK == 0:
            _tick()
        yield item


class _Guard(NodeTransformer):
    """Every loop walks through ``_loop``; every ``~`` passes through ``_sized``."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 - the visitor API
        node = self.generic_visit(node)
        node.iter = nodes.Call(nodes.Name("__qiao_loop", "load"), [node.iter], [], None, None)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        node = self.generic_visit(node)
        return nodes.Call(nodes.Name("__qiao_sized", "load"), [node], [], None, None)


def _guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)  # keeps jinja's pass_context / pass_eval_context marks
    def run(*args: Any, **kwargs: Any) -> Any:
        _tick()
        _widths_checked(name, args[1:], kwargs)
        if name == "format" and args:
            _format_checked(args[0])
        return _sized(func(*args, **kwargs))

    return run


class Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox with the time and size bounds of the module docstring."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {k: _guarded_filter(k, f) for k, f in self.filters.items()}
        self.globals.update({"__qiao_loop": _loop, "__qiao_sized": _sized})

    def _parse(self, source: str, name: str | None, filename: str | None
               ) -> nodes.Template:
        return _Guard().visit(super()._parse(source, name, filename))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError("the exponent is too large")
        if operator == "*":
            sizes = [len(v) for v in (left, right) if isinstance(v, str | list | tuple)]
            counts = [v for v in (left, right) if isinstance(v, int)]
            if sizes and counts and sizes[0] * max(counts[0], 0) > MAX_VALUE:
                raise TooCostly("the repeated value is too long")
        if operator == "%":
            _format_checked(left)
        return _sized(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _tick()
        name = getattr(__obj, "__name__", "")
        _widths_checked(name, args, kwargs)
        if name in ("format", "format_map"):
            bound = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
            _format_checked(getattr(bound, "__self__", None))
        return _sized(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)


@cache
def environment() -> Sandbox:
    return Sandbox(autoescape=False, trim_blocks=True)


@lru_cache(maxsize=512)
def _compiled(template: str) -> Template:
    """A template compiled once (a rule renders the same few templates for every event)."""
    return environment().from_string(template)


def render(template: str, scope: Mapping[str, Any]) -> str:
    """``template`` rendered in the sandbox, bounded in time and size.

    A template that fails — reaches for what the sandbox refuses, runs too long, builds
    too much, divides by zero, uses what is not there — is an ``InvalidInput`` naming the
    problem: the action fails cleanly and is logged, and nothing of Python's internals
    ends in the message."""
    token = _DEADLINE.set(time.monotonic() + RENDER_SECONDS)
    try:
        out: list[str] = []
        size = 0
        for chunk in _compiled(template).generate(**scope):
            out.append(chunk)
            size += len(chunk)
            if size >= MAX_BODY:
                break
            _tick()
        return "".join(out)[:MAX_BODY]
    except TooCostly as exc:
        raise InvalidInput(f"template stopped: {exc}") from None
    except SecurityError as exc:
        raise InvalidInput(f"template refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise InvalidInput(f"template: {exc.message or type(exc).__name__}") from None
    except RecursionError:
        raise InvalidInput("template stopped: it calls itself too deeply") from None
    except MemoryError:
        raise InvalidInput("template stopped: it needs too much memory") from None
    except (ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise InvalidInput(f"template: {type(exc).__name__}: {exc}"[:500]) from None
    finally:
        _DEADLINE.reset(token)


def template_problems(template: Any, where: str) -> list[str]:
    """What is wrong with a template before it is saved (its syntax)."""
    if not isinstance(template, str) or not template.strip():
        return [f"{where} needs a template"]
    try:
        environment().parse(template)
    except TemplateSyntaxError as exc:
        return [f"{where}: template line {exc.lineno}: {exc.message}"]
    return []
