"""Text → AST with lark (LALR, the transformer applied while parsing: no recursion, so
hostile nesting cannot exhaust the stack). Limits are checked before and during parsing.

Precedence, loosest first (as in Excel, unary minus binds tighter than ``^``)::

    OR < AND < NOT < comparison, IN < & < + - < * / % < ^ < unary + -
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from platform_core.expressions.errors import ExpressionError
from platform_core.expressions.nodes import Binary, Call, Expr, Field, In, Literal, Unary

MAX_LENGTH = 4000
MAX_DEPTH = 64
MAX_NODES = 1000
MAX_DIGITS = 30
MAX_STRING = 1000
MAX_ARGS = 100
MAX_PATH = 3

GRAMMAR = r"""
?start: expr
?expr: or_expr
?or_expr: and_expr | or_expr OR and_expr -> binary
?and_expr: not_expr | and_expr AND not_expr -> binary
?not_expr: comparison | NOT not_expr -> unary
?comparison: concat
    | concat COMP_OP concat -> binary
    | concat IN "(" arglist ")" -> in_
    | concat NOT IN "(" arglist ")" -> not_in
?concat: sum | concat AMP sum -> binary
?sum: product | sum ADD_OP product -> binary
?product: power | product MUL_OP power -> binary
?power: unary_ | power POW unary_ -> binary
?unary_: atom | ADD_OP unary_ -> unary
?atom: NUMBER -> number
    | STRING -> string
    | TRUE -> true
    | FALSE -> false
    | fname "(" [arglist] ")" -> call
    | NAME ("." NAME)* -> field
    | "(" expr ")"
fname: NAME | AND | OR
arglist: expr ("," expr)*
AND.2: /and\b/i
OR.2: /or\b/i
NOT.2: /not\b/i
IN.2: /in\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
NAME: /[^\W\d]\w*/
NUMBER: /\d+(\.\d+)?/
STRING: /"(?:[^"]|"")*"/
COMP_OP: "<=" | ">=" | "<>" | "!=" | "==" | "=" | "<" | ">"
AMP: "&"
ADD_OP: "+" | "-"
MUL_OP: "*" | "/" | "%"
POW: "^"
%ignore /\s+/
"""

KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")
FUNC_RE = re.compile(r"[A-Z][A-Z0-9_]{0,62}\Z")
CURLY = "“”‘’＂'"


class _Build(Transformer):
    """Callbacks that turn parse-tree reductions into AST nodes, enforcing the limits."""

    def _node(self, node: Any, *kids: Any) -> Any:
        """Stamp depth and size on ``node`` (computed from its children: no state)."""
        depth = 1 + max((k.depth for k in kids), default=0)
        size = 1 + sum(k.size for k in kids)
        where = getattr(node, "op_pos", node.pos)
        if depth > MAX_DEPTH:
            raise ExpressionError(where, "too_deep", max=MAX_DEPTH)
        if size > MAX_NODES:
            raise ExpressionError(where, "too_many_nodes", max=MAX_NODES)
        object.__setattr__(node, "depth", depth)
        object.__setattr__(node, "size", size)
        return node

    def number(self, kids: list[Token]) -> Literal:
        tok = kids[0]
        if len(tok) - tok.count(".") > MAX_DIGITS:
            raise ExpressionError(tok.start_pos, "number_too_long", max=MAX_DIGITS)
        return self._node(Literal(tok.start_pos, Decimal(str(tok))))

    def string(self, kids: list[Token]) -> Literal:
        tok = kids[0]
        text = tok[1:-1].replace('""', '"')
        if len(text) > MAX_STRING:
            raise ExpressionError(tok.start_pos, "string_too_long", max=MAX_STRING)
        return self._node(Literal(tok.start_pos, text))

    def true(self, kids: list[Token]) -> Literal:
        return self._node(Literal(kids[0].start_pos, True))

    def false(self, kids: list[Token]) -> Literal:
        return self._node(Literal(kids[0].start_pos, False))

    def field(self, kids: list[Token]) -> Field:
        if len(kids) > MAX_PATH:
            raise ExpressionError(kids[0].start_pos, "path_too_long",
                                  name=".".join(kids), max=MAX_PATH)
        for i, tok in enumerate(kids):
            if not (KEY_RE.match(tok) or (i == 0 and len(kids) > 1 and tok == "OLD")):
                raise ExpressionError(tok.start_pos, "invalid_name", name=str(tok))
        return self._node(Field(kids[0].start_pos, tuple(str(k) for k in kids),
                                tuple(k.start_pos for k in kids)))

    def fname(self, kids: list[Token]) -> Token:
        tok = kids[0]
        if not FUNC_RE.match(tok.upper()) or not tok.isascii():
            raise ExpressionError(tok.start_pos, "invalid_function", name=str(tok))
        return tok

    def arglist(self, kids: list[Expr]) -> tuple[Expr, ...]:
        if len(kids) > MAX_ARGS:
            raise ExpressionError(kids[MAX_ARGS].pos, "too_many_args", max=MAX_ARGS)
        return tuple(kids)

    def call(self, kids: list[Any]) -> Call:
        name, args = kids[0], kids[1] or ()
        return self._node(Call(name.start_pos, name.upper(), args), *args)

    def unary(self, kids: list[Any]) -> Unary:
        op, operand = kids
        return self._node(Unary(op.start_pos, op.upper(), operand), operand)

    def binary(self, kids: list[Any]) -> Binary:
        left, op, right = kids
        symbol = {"!=": "<>", "==": "="}.get(str(op), str(op).upper())
        return self._node(Binary(left.pos, symbol, left, right, op.start_pos), left, right)

    def in_(self, kids: list[Any]) -> In:
        needle, _kw, items = kids
        return self._node(In(needle.pos, needle, items), needle, *items)

    def not_in(self, kids: list[Any]) -> In:
        needle, _not, _kw, items = kids
        return self._node(In(needle.pos, needle, items, negated=True), needle, *items)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", lexer="contextual", maybe_placeholders=True,
                transformer=_Build())


def _syntax_error(text: str, exc: UnexpectedInput) -> ExpressionError:
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream]
        if char == '"':
            return ExpressionError(exc.pos_in_stream, "unterminated")
        if char in CURLY:
            return ExpressionError(exc.pos_in_stream, "curly_quote", char=char)
        return ExpressionError(exc.pos_in_stream, "bad_char", char=char)
    token = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedEOF) or token is None or token.type == "$END":
        return ExpressionError(len(text.rstrip()), "incomplete")
    return ExpressionError(token.start_pos, "syntax", token=str(token))


def parse(text: str) -> Expr:
    """Parse an expression; ``ExpressionError`` names the problem and its column."""
    if not isinstance(text, str):
        raise ExpressionError(0, "not_text")
    return _parse(text)


@lru_cache(maxsize=2048)
def _parse(text: str) -> Expr:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(MAX_LENGTH, "too_long", max=MAX_LENGTH)
    if not text.strip():
        raise ExpressionError(0, "empty")
    try:
        return _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
