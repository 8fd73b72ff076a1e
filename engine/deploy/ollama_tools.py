"""How Ollama reads tool calls out of an answer on its Go-template path (tools/tools.go).

On that path llama-server only generates text; Ollama itself turns it into ``tool_calls``,
and its rules are not a JSON parser's:

1. it waits for the template's tag (:func:`engine.deploy.gotemplate.tool_tag`); with the tag
   ``{`` the answer must *start* with it (any text first makes the whole answer content);
2. the call's name is the earliest **tool name found anywhere** in the text after the tag;
3. its arguments are the first JSON object after the tag that decodes: inside it, the object
   under ``"arguments"`` (or ``"parameters"``) beside a ``"name"`` key, or under the tool's
   name, searched depth first — and **the whole object** when none of those is there.

Rule 3 is why a model trained to answer ``{"tool": NAME, "arguments": {...}}`` gets back a
call whose arguments are that whole object: there is no ``"name"`` key beside them. The smoke
test reads answers with these rules, so it says what an Ollama client would really receive.
"""

from __future__ import annotations

import json
from typing import Any

from engine.toolcalls import ToolCall


def _names(tools: list[dict[str, Any]]) -> list[str]:
    return [t.get("function", t).get("name", "") for t in tools if t.get("function", t).get("name")]


def _find_tool(names: list[str], buf: str) -> tuple[str, int] | None:
    """(name, end of the name) of the earliest (then longest) tool name in ``buf``."""
    longest = max((len(n) for n in names), default=0)
    for i in range(1, min(len(buf), longest) + 1):  # text ending inside a name: wait
        tail = buf[-i:]
        if any(len(tail) < len(n) and n.startswith(tail) for n in names):
            return None
    best: tuple[int, str] | None = None
    for n in names:
        pos = buf.find(n)
        if pos >= 0 and (best is None or pos < best[0] or (pos == best[0] and len(n) > len(best[1]))):
            best = (pos, n)
    return (best[1], best[0] + len(best[1])) if best else None


def _args_in(obj: dict[str, Any], tool: str) -> dict[str, Any] | None:
    def as_map(value: Any) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        if isinstance(value, str):
            try:
                decoded = json.loads(value)
            except ValueError:
                return None
            return decoded if isinstance(decoded, dict) else None
        return None

    if "name" in obj:
        for key in ("arguments", "parameters"):
            found = as_map(obj.get(key))
            if found is not None:
                return found
        return {}  # a named call without arguments
    found = as_map(obj.get(tool))
    if found is not None:
        return found
    for value in obj.values():
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, dict):
                inner = _args_in(child, tool)
                if inner is not None:
                    return inner
    return None


def _find_arguments(tool: str, buf: str) -> tuple[dict[str, Any], int] | None:
    """The arguments of the first decodable top-level JSON object in ``buf`` and its end."""
    depth, start, in_str, escaped = 0, -1, False, False
    for i, ch in enumerate(buf):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_str = not in_str
        elif in_str:
            continue
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0 and start >= 0:
                try:
                    data = json.loads(buf[start:i + 1])
                except ValueError:
                    start = -1
                    continue
                if isinstance(data, dict):
                    args = _args_in(data, tool)
                    return (args if args is not None else data), i + 1
            depth = max(depth, 0)
    return None


def read_answer(text: str, tag: str, tools: list[dict[str, Any]]) -> tuple[list[ToolCall], str]:
    """(calls, content) as Ollama's parser returns them for a whole answer."""
    at = text.find(tag)
    if at < 0:
        return [], text
    if tag in ("{", "[") and text[:at].strip():
        return [], text
    buf, calls, names = text[at:], [], _names(tools)
    while True:
        tool = _find_tool(names, buf)
        if tool is None:
            break
        found = _find_arguments(tool[0], buf)
        if found is None:
            break
        args, end = found
        calls.append(ToolCall(tool[0], args))
        buf = buf[max(end, tool[1]):]
    if not calls:
        return [], text
    return calls, ""
