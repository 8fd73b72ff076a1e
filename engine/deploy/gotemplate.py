"""A small interpreter for the part of Go's text/template that Ollama TEMPLATEs use.

Ollama renders a model's prompt with Go templates; Hugging Face renders it with Jinja. To
prove the Modelfile's TEMPLATE says what the model's chat template says, deploy renders both
on probe conversations and compares the text. This module is the Go side: actions
``{{ .Field }}``, ``if / else if / else / end``, ``range`` (with ``$i, $x :=``), variables,
``$``, parentheses, the functions ``eq ne and or not len slice index json``, and the
``{{-`` / ``-}}`` whitespace trims — with Go's semantics for truthiness (empty string, zero,
empty list and nil are false) and for ``and``/``or`` (they return an operand). Missing fields
are errors, as they are on Ollama's structs. Anything else is refused, loudly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any


class TemplateError(ValueError):
    pass


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+)
    |(?P<assign>:=)|(?P<punct>[(),])|(?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    |(?P<field>(?:\.[A-Za-z0-9_]+)+|\.)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*))""", re.VERBOSE)
_WS = " \t\r\n"


# --- parse --------------------------------------------------------------------------------

@dataclass
class Text:
    text: str


@dataclass
class Output:
    expr: Any


@dataclass
class Assign:
    name: str
    expr: Any


@dataclass
class If:
    branches: list[tuple[Any, list[Any]]] = field(default_factory=list)
    otherwise: list[Any] = field(default_factory=list)


@dataclass
class Range:
    key_var: str | None
    val_var: str | None
    expr: Any
    body: list[Any] = field(default_factory=list)
    otherwise: list[Any] = field(default_factory=list)


def _tokens(src: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    src = src.strip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot read {src[pos:pos + 20]!r} in {{{{ {src} }}}}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(src) and src[pos] in _WS:
            pos += 1
    return out


class _Expr:
    """Parses a pipeline (one command, no ``|``) from tokens."""

    def __init__(self, toks: list[tuple[str, str]]) -> None:
        self.toks, self.i = toks, 0

    def parse(self) -> Any:
        node = self.command()
        if self.i != len(self.toks):
            raise TemplateError(f"unexpected {self.toks[self.i][1]!r}")
        return node

    def command(self) -> Any:
        args = []
        while self.i < len(self.toks) and self.toks[self.i] != ("punct", ")"):
            args.append(self.operand())
        if not args:
            raise TemplateError("empty command")
        if isinstance(args[0], tuple) and args[0][0] == "fn":
            return ("call", args[0][1], args[1:])
        if len(args) > 1:
            raise TemplateError("only functions take arguments")
        return args[0]

    def operand(self) -> Any:
        kind, text = self.toks[self.i]
        self.i += 1
        if kind == "punct" and text == "(":
            node = self.command()
            if self.i >= len(self.toks) or self.toks[self.i] != ("punct", ")"):
                raise TemplateError("missing )")
            self.i += 1
            return node
        if kind == "str":
            return ("lit", json.loads(text))
        if kind == "raw":
            return ("lit", text[1:-1])
        if kind == "num":
            return ("lit", int(text))
        if kind == "field":
            return ("field", None, [p for p in text.split(".") if p])
        if kind == "var":
            name, *path = text.split(".")
            return ("field", name, path)
        if kind == "ident":
            if text in ("true", "false"):
                return ("lit", text == "true")
            if text == "nil":
                return ("lit", None)
            if text in FUNCS:
                return ("fn", text)
        raise TemplateError(f"unsupported {text!r}")


def parse(template: str) -> list[Any]:
    pieces: list[Any] = []  # Text or (action tokens)
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos:m.start()]
        if m.group(1):
            text = text.rstrip(_WS)
        if pieces and isinstance(pieces[-1], tuple) and pieces[-1][1]:
            text = text.lstrip(_WS)
        pieces.append(Text(text))
        body = m.group(2).strip()
        if body.startswith("/*"):
            pieces.append(("comment", bool(m.group(3))))
        else:
            pieces.append((body, bool(m.group(3))))
        pos = m.end()
    tail = template[pos:]
    if pieces and isinstance(pieces[-1], tuple) and pieces[-1][1]:
        tail = tail.lstrip(_WS)
    pieces.append(Text(tail))

    root: list[Any] = []
    stack: list[tuple[Any, list[Any]]] = [(None, root)]
    for piece in pieces:
        body = stack[-1][1]
        if isinstance(piece, Text):
            if piece.text:
                body.append(piece)
            continue
        action = piece[0]
        if action == "comment":
            continue
        toks = _tokens(action)
        head = toks[0][1] if toks and toks[0][0] == "ident" else None
        if head == "if":
            node = If()
            node.branches.append((_Expr(toks[1:]).parse(), []))
            body.append(node)
            stack.append((node, node.branches[-1][1]))
        elif head == "range":
            rest = toks[1:]
            key_var = val_var = None
            if ("assign", ":=") in rest:
                at = rest.index(("assign", ":="))
                names = [t[1] for t in rest[:at] if t[0] == "var"]
                if len(names) == 2:
                    key_var, val_var = names
                elif len(names) == 1:
                    val_var = names[0]
                rest = rest[at + 1:]
            node = Range(key_var, val_var, _Expr(rest).parse())
            body.append(node)
            stack.append((node, node.body))
        elif head == "else":
            owner = stack[-1][0]
            stack.pop()
            if len(toks) > 1 and toks[1] == ("ident", "if") and isinstance(owner, If):
                owner.branches.append((_Expr(toks[2:]).parse(), []))
                stack.append((owner, owner.branches[-1][1]))
            elif isinstance(owner, (If, Range)):
                stack.append((owner, owner.otherwise))
            else:
                raise TemplateError("else outside if/range")
        elif head == "end":
            if len(stack) == 1:
                raise TemplateError("end without if/range")
            stack.pop()
        elif len(toks) >= 2 and toks[0][0] == "var" and toks[1] == ("assign", ":="):
            body.append(Assign(toks[0][1], _Expr(toks[2:]).parse()))
        else:
            body.append(Output(_Expr(toks).parse()))
    if len(stack) != 1:
        raise TemplateError("missing {{ end }}")
    return root


# --- evaluate -----------------------------------------------------------------------------

def truth(v: Any) -> bool:
    if v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, tuple, dict)):
        return len(v) > 0
    return True


def _eq(a: Any, *bs: Any) -> bool:
    return any(a == b for b in bs)


def _and(*args: Any) -> Any:
    for a in args:
        if not truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if truth(a):
            return a
    return args[-1]


def _slice(x: Any, *idx: int) -> Any:
    if len(idx) == 1:
        return x[idx[0]:]
    return x[idx[0]:idx[1]]


FUNCS: dict[str, Any] = {
    "eq": _eq, "ne": lambda a, b: a != b, "and": _and, "or": _or, "not": lambda a: not truth(a),
    "len": len, "slice": _slice, "index": lambda x, *ks: _index(x, ks),
    "json": lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False),
}


def _index(x: Any, keys: tuple[Any, ...]) -> Any:
    for k in keys:
        x = x[k]
    return x


def show(v: Any) -> str:
    """How a value prints: text as is, structures as compact JSON (Ollama's String())."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "<no value>"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return str(v)


class _Scope:
    def __init__(self, dot: Any, root: Any, variables: dict[str, Any]) -> None:
        self.dot, self.root, self.vars = dot, root, variables


def _lookup(value: Any, path: list[str]) -> Any:
    for name in path:
        if not isinstance(value, dict) or name not in value:
            raise TemplateError(f"can't evaluate field {name}")
        value = value[name]
    return value


def _eval(node: Any, scope: _Scope) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "field":
        _, var, path = node
        if var is None:
            return _lookup(scope.dot, path)
        if var == "$":
            return _lookup(scope.root, path)
        if var not in scope.vars:
            raise TemplateError(f"undefined variable {var}")
        return _lookup(scope.vars[var], path)
    if kind == "call":
        _, name, args = node
        if name in ("and", "or"):  # short-circuit, as Go does
            values = []
            for a in args:
                values.append(_eval(a, scope))
                if (name == "and") != truth(values[-1]):
                    return values[-1]
            return values[-1]
        return FUNCS[name](*[_eval(a, scope) for a in args])
    raise TemplateError(f"cannot evaluate {node!r}")


def _run(nodes: list[Any], scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, Text):
            out.append(node.text)
        elif isinstance(node, Output):
            out.append(show(_eval(node.expr, scope)))
        elif isinstance(node, Assign):
            scope.vars[node.name] = _eval(node.expr, scope)
        elif isinstance(node, If):
            for cond, body in node.branches:
                if truth(_eval(cond, scope)):
                    _run(body, _Scope(scope.dot, scope.root, dict(scope.vars)), out)
                    break
            else:
                _run(node.otherwise, _Scope(scope.dot, scope.root, dict(scope.vars)), out)
        elif isinstance(node, Range):
            items = _eval(node.expr, scope)
            seq = list(items.items()) if isinstance(items, dict) else list(enumerate(items or []))
            if not seq:
                _run(node.otherwise, _Scope(scope.dot, scope.root, dict(scope.vars)), out)
            for k, v in seq:
                inner = dict(scope.vars)
                if node.key_var:
                    inner[node.key_var] = k
                if node.val_var:
                    inner[node.val_var] = v
                _run(node.body, _Scope(v, scope.root, inner), out)


def render(template: str | list[Any], data: dict[str, Any]) -> str:
    nodes = parse(template) if isinstance(template, str) else template
    out: list[str] = []
    _run(nodes, _Scope(data, data, {"$": data}), out)
    return "".join(out)


# --- Ollama's tool-call tag ---------------------------------------------------------------

def _mentions_tool_calls(cond: Any) -> bool:
    """An if whose own pipeline names .ToolCalls (Ollama looks at direct arguments only)."""
    args = cond[2] if cond[0] == "call" else [cond]
    return any(a[0] == "field" and "ToolCalls" in a[2] for a in args)


def _tool_calls_body(nodes: list[Any]) -> list[Any] | None:
    for node in nodes:
        if isinstance(node, If):
            for cond, body in node.branches:
                if _mentions_tool_calls(cond):
                    return body
                found = _tool_calls_body(body)
                if found is not None:
                    return found
            found = _tool_calls_body(node.otherwise)
        elif isinstance(node, Range):
            found = _tool_calls_body(node.body)
            if found is None:
                found = _tool_calls_body(node.otherwise)
        else:
            continue
        if found is not None:
            return found
    return None


def _first_text(nodes: list[Any]) -> str | None:
    """Depth first, stopping at the first action or finished block (as Ollama searches)."""
    for node in nodes:
        if isinstance(node, Text):
            if node.text.strip():
                return node.text
            continue
        if isinstance(node, If):
            for _cond, body in node.branches:
                found = _first_text(body)
                if found is not None:
                    return found
            return _first_text(node.otherwise)
        if isinstance(node, Range):
            found = _first_text(node.body)
            return found if found is not None else _first_text(node.otherwise)
        return None
    return None


def tool_tag(template: str) -> str:
    """The text Ollama's tool parser waits for before reading a call (tools/template.go
    parseTag): the first text inside the ``if`` on ``.ToolCalls``, up to any ``{``; ``{``
    when there is none — then every JSON object at the start of an answer is tried as a call."""
    body = _tool_calls_body(parse(template))
    text = _first_text(body) if body is not None else None
    tag = (text or "").replace("\r\n", "\n").split("{", 1)[0].strip()
    return tag or "{"
