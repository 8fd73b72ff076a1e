"""Tool calls: one codec from every shape real data uses to canonical calls, and back to text.

Stage 1, training, evaluation, deployment and the app's samples all read tool calls here, so a
call means the same thing everywhere:

- :func:`read_calls` reads a record's output (or a server's ``message.tool_calls``) in any
  common shape: ``{"tool", "arguments"}``, ``{"name", "arguments"|"parameters"}``, OpenAI's
  ``{"type": "function", "function": {...}}`` with arguments as an object or a JSON string, a
  list of calls (parallel calls), an assistant message with ``tool_calls``, or text made of
  ``<tool_call>…</tool_call>`` blocks. Anything else raises :class:`ToolCallError`.
- :func:`parse_answer` is the strict reading evaluation uses: the answer must be exactly the
  calls, in the *format* the deployed chat template makes the server parse, with nothing
  around them. Its reasons say what was wrong in words a user can act on.
- :func:`find_calls` finds every call anywhere in free text (tool_neg: "no call at all").
- :func:`render_calls` writes calls the way a model trained on a format emits them.

Formats: ``"qwen"`` — ``<tool_call>\\n{"name": …, "arguments": …}\\n</tool_call>`` blocks, what
Qwen2.5's (Hermes-style) template renders for an assistant ``tool_calls`` turn and what
llama.cpp's server parses back into ``tool_calls``; ``"json"`` — one JSON object
``{"name": NAME, "arguments": {...}}`` as the whole answer, for templates without tool-call
support (the compact tool listing tells the model so). ``"name"``, not ``"tool"``: Ollama's
own tool parser (its Go-template path) takes a call's arguments only from beside a ``"name"``
key, so a model trained on ``{"tool", …}`` would hand clients the whole object as arguments.

Model answers can be hostile by accident (a badly trained model repeats ``{`` for a thousand
tokens): nesting is bounded before any JSON is decoded and the free-text scan is linear.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

FORMATS = {
    "qwen": "<tool_call> blocks with {\"name\", \"arguments\"} (the chat template's own format)",
    "json": "one JSON object {\"name\": NAME, \"arguments\": {...}} as the whole answer",
}
#: Deeper JSON than this is not a tool call; refusing it early keeps decoding bounded.
MAX_DEPTH = 64

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_FENCE = re.compile(r"^```[A-Za-z]*[ \t]*\n(.*?)\n?```$", re.DOTALL)
_CALL_KEYS = {"id", "type", "index"}  # keys a call may carry besides name and arguments


class ToolCallError(ValueError):
    """The value is not a tool call in any shape we read; ``str(exc)`` says why."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_openai(self) -> dict[str, Any]:
        """The shape chat templates and the OpenAI API take for an assistant ``tool_calls``."""
        return {"type": "function", "function": {"name": self.name, "arguments": self.arguments}}


# --- reading any shape ---------------------------------------------------------------------
def read_calls(value: Any) -> list[ToolCall]:
    """Canonical calls from a record's output or a server's ``tool_calls`` (see module doc)."""
    if isinstance(value, str):
        return _read_text(value)
    if isinstance(value, list):
        if not value:
            raise ToolCallError("an empty list of tool calls")
        return [c for item in value for c in _read_object(item)]
    return _read_object(value)


def _read_text(text: str) -> list[ToolCall]:
    stripped = text.strip()
    if not stripped:
        raise ToolCallError("empty text")
    if _OPEN in stripped:
        return [c for body in _tagged_bodies(stripped) for c in _read_object(_decode(body))]
    fenced = _FENCE.match(stripped)
    return read_calls(_decode(fenced.group(1).strip() if fenced else stripped))


def _tagged_bodies(text: str) -> list[str]:
    """The inside of every ``<tool_call>`` block, when the text is nothing but such blocks."""
    bodies = [b.strip() for b in _BLOCK.findall(text)]
    outside = _BLOCK.sub("", text).strip()
    if not bodies or _OPEN in outside:
        raise ToolCallError("a <tool_call> tag without its closing </tool_call>")
    if outside:
        raise ToolCallError(f"text around the <tool_call> block: {_clip(outside)!r}")
    return bodies


def _read_object(obj: Any) -> list[ToolCall]:
    if not isinstance(obj, dict):
        raise ToolCallError(f"expected a JSON object, got {_kind(obj)}")
    if "tool_calls" in obj and isinstance(obj["tool_calls"], list):  # an assistant message
        return read_calls(obj["tool_calls"])
    if isinstance(obj.get("function"), dict):  # OpenAI: {"type": "function", "function": {...}}
        extra = set(obj) - _CALL_KEYS - {"function"}
        if extra:
            raise ToolCallError(f"unexpected key {sorted(extra)[0]!r} beside 'function'")
        if obj.get("type", "function") != "function":
            raise ToolCallError(f"'type' is {obj['type']!r}, expected 'function'")
        return _read_object(obj["function"])
    if "tool" in obj:
        name_key, arg_keys = "tool", ("arguments", "parameters")
    elif "name" in obj:
        name_key, arg_keys = "name", ("arguments", "parameters")
    else:
        keys = ", ".join(sorted(obj)) or "none"
        raise ToolCallError(f"no tool name: expected a 'name' or 'tool' key (keys: {keys})")
    name = obj[name_key]
    if not isinstance(name, str) or not name.strip():
        raise ToolCallError(f"{name_key!r} must be a non-empty string")
    present = [k for k in arg_keys if k in obj]
    if len(present) > 1:
        raise ToolCallError("both 'arguments' and 'parameters'")
    extra = set(obj) - _CALL_KEYS - {name_key, *arg_keys}
    if extra:
        raise ToolCallError(f"unexpected key {sorted(extra)[0]!r} in a tool call")
    args = obj[present[0]] if present else {}
    if isinstance(args, str):  # OpenAI sends arguments as a JSON string
        args = _decode(args) if args.strip() else {}
    if not isinstance(args, dict):
        raise ToolCallError(f"arguments must be an object, got {_kind(args)}")
    return [ToolCall(name, args)]


# --- the strict reading evaluation uses ----------------------------------------------------
def parse_answer(answer: str, fmt: str, allow_fence: bool = False
                 ) -> tuple[list[ToolCall] | None, str]:
    """(calls, "") when the whole answer is well-formed calls in ``fmt``, else (None, why)."""
    text = answer.strip()
    if not text:
        return None, "empty answer"
    if fmt == "qwen":  # a fence is never this format, whatever eval.tool_allow_fence says
        return _parse_qwen(text)
    return _parse_json(text, allow_fence)


def _parse_qwen(text: str) -> tuple[list[ToolCall] | None, str]:
    if _OPEN not in text:
        fenced = _FENCE.match(text)
        if fenced and fenced.group(1).lstrip().startswith(("{", "[")):
            return None, "a ```json fence instead of <tool_call>"
        if text.startswith("{"):
            return None, "a bare JSON object instead of <tool_call>"
        if find_calls(text):
            return None, "prose with a JSON tool call instead of <tool_call>"
        return None, "prose instead of a tool call (no <tool_call> block)"
    try:
        bodies = _tagged_bodies(text)
    except ToolCallError as exc:
        return None, str(exc)
    calls = []
    for body in bodies:
        try:
            obj = _decode(body)
        except ToolCallError as exc:
            return None, f"not valid JSON inside <tool_call> ({exc})"
        if not isinstance(obj, dict):
            return None, f"<tool_call> holds {_kind(obj)}, not an object"
        if "tool" in obj and "name" not in obj:
            return None, "key 'tool' where the template expects 'name'"
        if "parameters" in obj and "arguments" not in obj:
            return None, "key 'parameters' where the template expects 'arguments'"
        if set(obj) != {"name", "arguments"}:
            return None, ("not the shape {\"name\", \"arguments\"} inside <tool_call> (keys: "
                          f"{', '.join(sorted(obj)) or 'none'})")
        if not isinstance(obj["name"], str) or not isinstance(obj["arguments"], dict):
            return None, "\"name\" must be a string and \"arguments\" an object"
        calls.append(ToolCall(obj["name"], obj["arguments"]))
    return calls, ""


def _parse_json(text: str, allow_fence: bool) -> tuple[list[ToolCall] | None, str]:
    fenced = _FENCE.match(text)
    if fenced:
        if not allow_fence:
            return None, "the JSON is wrapped in a ``` fence (eval.tool_allow_fence is off)"
        text = fenced.group(1).strip()
    if _OPEN in text:
        return None, "<tool_call> tags where the template expects a bare JSON object"
    if not text.startswith(("{", "[")):
        if "{" in text and find_calls(text):
            return None, "prose around the JSON object"
        return None, "prose instead of a tool call (no JSON object at all)"
    try:
        obj, end = _decode_prefix(text)
    except ToolCallError as exc:
        return None, f"not valid JSON ({exc})"
    rest = text[end:].strip()
    if rest:
        if rest.startswith("{"):
            return None, "two JSON objects (only one tool call is allowed)"
        return None, "trailing text after the JSON object"
    items = obj if isinstance(obj, list) and obj else [obj]
    calls = []
    for item in items:
        if not isinstance(item, dict):
            return None, "not a JSON object"
        if "tool" in item and "name" not in item:
            return None, "key 'tool' where the template expects 'name'"
        if "parameters" in item and "arguments" not in item:
            return None, "key 'parameters' where the template expects 'arguments'"
        if set(item) != {"name", "arguments"}:
            return None, (f"not the tool-call shape {{\"name\", \"arguments\"}} "
                          f"(keys: {', '.join(sorted(item)) or 'none'})")
        if not isinstance(item["name"], str) or not isinstance(item["arguments"], dict):
            return None, "\"name\" must be a string and \"arguments\" an object"
        calls.append(ToolCall(item["name"], item["arguments"]))
    return calls, ""


# --- free text -----------------------------------------------------------------------------
def find_calls(text: str) -> list[ToolCall]:
    """Every tool call in the text, wherever it is (fenced, in tags, inside prose).

    One pass pairs the braces (skipping JSON strings inside them); a balanced ``{…}`` is
    decoded only when it holds a key a call has, never inside a call already found, and the
    characters decoded are capped at a few times the text's length — so the work stays
    linear even for a degenerate answer of a million braces.
    """
    marks = [m.start() for m in _CALL_MARK.finditer(text)]
    if not marks:
        return []
    calls: list[ToolCall] = []
    budget = 4 * len(text) + 10_000
    covered = -1
    for start, end in sorted(_brace_spans(text), key=lambda s: (s[0], -s[1])):
        if start < covered:
            continue
        i = bisect.bisect_left(marks, start)
        if i == len(marks) or marks[i] >= end:
            continue
        budget -= end - start
        if budget < 0:
            break
        try:
            found = _read_object(_decode(text[start:end]))
        except ToolCallError:
            continue
        calls.extend(found)
        covered = end
    return calls


_CALL_MARK = re.compile(r'"(?:name|tool|function)"')
_BRACE_TOKENS = re.compile(r'\\.|[{}"]', re.DOTALL)
_DEPTH_TOKENS = re.compile(r'\\.|[\[\]{}"]', re.DOTALL)


def _brace_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every balanced ``{…}`` in the text."""
    spans: list[tuple[int, int]] = []
    stack: list[int] = []
    # Quotes in prose outside any brace are just prose, not the start of a JSON string.
    for ch, at in _outside_strings(text, _BRACE_TOKENS, lambda: bool(stack)):
        if ch == "{":
            stack.append(at)
        elif ch == "}" and stack:
            spans.append((stack.pop(), at + 1))
    return spans


def _outside_strings(text: str, tokens: re.Pattern[str],
                     opens: Callable[[], bool] = lambda: True) -> Iterator[tuple[str, int]]:
    """(bracket, position) for each bracket outside JSON strings; ``opens()`` says whether a
    quote here starts a string."""
    in_str = False
    for m in tokens.finditer(text):
        ch = m.group()
        if in_str:
            in_str = ch != '"'
        elif ch == '"':
            in_str = opens()
        elif len(ch) == 1:
            yield ch, m.start()


# --- writing -------------------------------------------------------------------------------
def render_calls(calls: list[ToolCall], fmt: str) -> str:
    """The assistant text a model trained on ``fmt`` emits for these calls."""
    if fmt == "qwen":
        return "\n".join(
            f'{_OPEN}\n{{"name": "{c.name}", "arguments": '
            f"{json.dumps(c.arguments, ensure_ascii=False)}}}\n{_CLOSE}" for c in calls)
    objs = [{"name": c.name, "arguments": c.arguments} for c in calls]
    return json.dumps(objs[0] if len(objs) == 1 else objs, ensure_ascii=False)


def template_format(chat_template: str | None) -> str:
    """Which format a chat template renders assistant tool calls in (see module doc)."""
    if chat_template and "tool_calls" in chat_template and _OPEN in chat_template:
        return "qwen"
    return "json"


# --- bounded JSON --------------------------------------------------------------------------
def _decode(text: str) -> Any:
    obj, end = _decode_prefix(text)
    if text[end:].strip():
        raise ToolCallError("text after the JSON value")
    return obj


def _decode_prefix(text: str) -> tuple[Any, int]:
    if _depth(text) > MAX_DEPTH:
        raise ToolCallError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.JSONDecoder().raw_decode(text)
    except ValueError as exc:
        raise ToolCallError(f"not valid JSON: {getattr(exc, 'msg', exc)}") from None


def _depth(text: str) -> int:
    """The deepest bracket nesting outside strings (a linear scan, no decoding)."""
    depth = deepest = 0
    for ch, _ in _outside_strings(text, _DEPTH_TOKENS):
        depth += 1 if ch in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                break
    return deepest


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
