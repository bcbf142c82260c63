"""The guard and mapping language: a small, safe expression language (never ``eval``).

    guard  := or ;  or := and ("or" and)* ;  and := not ("and" not)* ;
    not    := "not" not | cmp ;  cmp := value (OP value)? ;
    OP     := == | != | < | <= | > | >= | in | not in ;
    value  := NUMBER | STRING | true | false | null | "[" [value ("," value)*] "]"
            | FUNC "(" [value ("," value)*] ")" | path | "(" guard ")" ;
    path   := NAME ("." NAME | "[" (NUMBER | STRING) "]")* ;
    FUNC   := len | exists | lower | first | join

Expressions are parsed once, when a definition is loaded, so a typo is a load-time error
naming the file and path. A path that does not exist reads as ``null``; ordering a value
against ``null`` or a value of another type is false rather than an error, so a guard
over a slot the caller has not filled yet simply does not pass.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestration.errors import OrchestrationError

# what a workflow's expressions may name: its input, step outputs, slots, the signal
# received, variables, the item of a fan-out, the run itself; and in a call, the slots
# as they are said (spoken), the caller's turn, the caller and the agents' configuration
ROOTS = frozenset({"input", "steps", "slots", "signal", "vars", "item", "run", "spoken",
                   "turn", "caller", "config"})
_PIECE = re.compile(r"\{([^{}]+)\}")


class ExpressionError(OrchestrationError):
    """An expression that does not parse, or names something that cannot exist."""


@dataclass(frozen=True, slots=True)
class Lit:
    value: Any


@dataclass(frozen=True, slots=True)
class Path:
    parts: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ListOf:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Call:
    fn: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node


Node = Lit | Path | ListOf | Call | Not | BoolOp | Compare

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\.)|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)
_KEYWORDS = {"true": True, "false": False, "null": None}


def _len(v: Any) -> Any:
    return len(v) if isinstance(v, str | list | dict) else 0


def _join(v: Any, sep: Any = "\n") -> Any:
    items = v.values() if isinstance(v, dict) else v if isinstance(v, list) else [v]
    return str(sep).join("" if i is None else str(i) for i in items)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "exists": lambda v: v is not None,
    "lower": lambda v: v.lower() if isinstance(v, str) else v,
    "first": lambda *vs: next((v for v in vs if v is not None), None),
    "join": _join,
}


def _tokenize(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            at = len(text) - len(text[pos:].lstrip())
            raise ExpressionError(f"unexpected character {text[at]!r} at {at}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, roots: frozenset[str]) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.roots = roots

    def peek(self, value: str | None = None) -> bool:
        if self.i >= len(self.tokens):
            return False
        return value is None or self.tokens[self.i][1] == value

    def take(self, value: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise ExpressionError(f"unexpected end of expression, expected {value or 'a value'}")
        tok = self.tokens[self.i]
        if value is not None and tok[1] != value:
            raise ExpressionError(f"expected {value!r} but found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.or_()
        if self.i < len(self.tokens):
            extra = self.tokens[self.i][1]
            raise ExpressionError(f"unexpected {extra!r} after a complete expression")
        return node

    def or_(self) -> Node:
        items = [self.and_()]
        while self.peek("or"):
            self.take()
            items.append(self.and_())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_(self) -> Node:
        items = [self.not_()]
        while self.peek("and"):
            self.take()
            items.append(self.not_())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def not_(self) -> Node:
        if self.peek("not"):
            self.take()
            return Not(self.not_())
        return self.cmp()

    def cmp(self) -> Node:
        left = self.value()
        for op in ("==", "!=", "<=", ">=", "<", ">", "in"):
            if self.peek(op):
                self.take()
                return Compare(op, left, self.value())
        nxt = self.tokens[self.i + 1][1] if self.i + 1 < len(self.tokens) else ""
        if self.peek("not") and nxt == "in":
            self.i += 2
            return Compare("not in", left, self.value())
        return left

    def value(self) -> Node:
        kind, tok = self.take()
        if kind == "num":
            return Lit(float(tok) if "." in tok else int(tok))
        if kind == "str":
            return Lit(tok[1:-1].encode().decode("unicode_escape"))
        if tok == "(":
            node = self.or_()
            self.take(")")
            return node
        if tok == "[":
            items: list[Node] = []
            while not self.peek("]"):
                items.append(self.value())
                if not self.peek("]"):
                    self.take(",")
            self.take("]")
            return ListOf(tuple(items))
        if kind != "name":
            raise ExpressionError(f"expected a value but found {tok!r}")
        if tok in _KEYWORDS:
            return Lit(_KEYWORDS[tok])
        if self.peek("("):
            if tok not in FUNCTIONS:
                raise ExpressionError(f"unknown function {tok!r}; known: {', '.join(FUNCTIONS)}")
            self.take("(")
            args = [self.or_()]
            while self.peek(","):
                self.take()
                args.append(self.or_())
            self.take(")")
            return Call(tok, tuple(args))
        if tok not in self.roots:
            raise ExpressionError(f"unknown name {tok!r}; names start with one of: "
                                  f"{', '.join(sorted(self.roots))}")
        parts: list[str | int] = [tok]
        while self.peek(".") or self.peek("["):
            if self.take()[1] == ".":
                parts.append(self.take()[1])
            else:
                k, key = self.take()
                parts.append(int(key) if k == "num" else key[1:-1])
                self.take("]")
        return Path(tuple(parts))


@functools.lru_cache(maxsize=4096)
def parse(text: str, roots: frozenset[str] = ROOTS) -> Node:
    """Parse once; cached, because the engine resolves the same templates on every run."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("empty expression")
    return _Parser(text, roots).parse()


def lookup(ctx: Mapping[str, Any], parts: Sequence[str | int]) -> Any:
    cur: Any = ctx
    for part in parts:
        if isinstance(cur, Mapping) and isinstance(part, str):
            cur = cur.get(part)
        elif isinstance(cur, list) and isinstance(part, int) and -len(cur) <= part < len(cur):
            cur = cur[part]
        else:
            return None
    return cur


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op in ("in", "not in"):
        if isinstance(b, str):
            found = isinstance(a, str) and a in b
        else:
            found = isinstance(b, list | dict) and a in b
        return found if op == "in" else not found
    numeric = isinstance(a, int | float) and isinstance(b, int | float)
    if not numeric and not (isinstance(a, str) and isinstance(b, str)):
        return False
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def evaluate(node: Node, ctx: Mapping[str, Any]) -> Any:
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Path):
        return lookup(ctx, node.parts)
    if isinstance(node, ListOf):
        return [evaluate(n, ctx) for n in node.items]
    if isinstance(node, Call):
        try:
            return FUNCTIONS[node.fn](*(evaluate(a, ctx) for a in node.args))
        except TypeError as exc:  # wrong number of arguments
            raise ExpressionError(f"{node.fn}(): {exc}") from None
    if isinstance(node, Not):
        return not evaluate(node.operand, ctx)
    if isinstance(node, BoolOp):
        if node.op == "and":
            return all(evaluate(n, ctx) for n in node.operands)
        return any(evaluate(n, ctx) for n in node.operands)
    return _compare(node.op, evaluate(node.left, ctx), evaluate(node.right, ctx))


def truthy(node: Node, ctx: Mapping[str, Any]) -> bool:
    return bool(evaluate(node, ctx))


def resolve(template: Any, ctx: Mapping[str, Any]) -> Any:
    """Fill a tool-input template: ``"$<expr>"`` strings are evaluated, the rest kept."""
    if isinstance(template, str) and template.startswith("$") and not template.startswith("$$"):
        return evaluate(parse(template[1:]), ctx)
    if isinstance(template, str) and template.startswith("$$"):
        return template[1:]
    if isinstance(template, Mapping):
        return {k: resolve(v, ctx) for k, v in template.items()}
    if isinstance(template, list):
        return [resolve(v, ctx) for v in template]
    return template


def text_pieces(text: str) -> list[str]:
    """The ``{expression}`` pieces of a text to speak."""
    return _PIECE.findall(text)


def render(text: str, ctx: Mapping[str, Any]) -> str:
    """Fill a text's ``{expression}`` pieces; a missing value renders as nothing.

    Spaces are collapsed, a doubled stop dropped ("...budget?." -> "...budget?") and the
    first letter capitalised: "{spoken.date} at ..." may start with "tomorrow".
    """
    out = text
    for piece in text_pieces(text):
        value = evaluate(parse(piece), ctx)
        out = out.replace("{" + piece + "}", "" if value is None else str(value), 1)
    out = re.sub(r"([.?!])\.", r"\1", " ".join(out.split()))
    return out[:1].upper() + out[1:]


def check_template(template: Any) -> None:
    """Parse every ``$`` expression in a template (load-time check)."""
    resolve_parse = [template]
    while resolve_parse:
        item = resolve_parse.pop()
        if isinstance(item, str) and item.startswith("$") and not item.startswith("$$"):
            parse(item[1:])
        elif isinstance(item, Mapping):
            resolve_parse.extend(item.values())
        elif isinstance(item, list):
            resolve_parse.extend(item)
