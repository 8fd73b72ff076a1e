"""How a record becomes what the model sees: chat template → prompt text + completion text.

Prompt = the model's own chat template over (system, user) with the generation prompt;
completion = what the template adds for the assistant turn (the output and its end-of-turn
token). Training, evaluation and the sanity check all use this one function, so the tokens
counted in stage 1 are the tokens trained on in stage 4.

Tools: when the chat template understands ``tools`` (Qwen2.5) they go through it; otherwise a
compact system message lists them. Tool calls: when the template renders an assistant
``tool_calls`` turn in a format :mod:`engine.toolcalls` reads (Qwen2.5's ``<tool_call>``
blocks), a tool record's output becomes such a turn and the template renders it — the model is
trained on exactly what its own system prompt asks for and what llama.cpp's server parses back
into ``tool_calls``. Other templates train on one JSON object ``{"name", "arguments"}``, the
shape Ollama's own tool parser reads (engine.toolcalls says why). Rendering every record through Jinja is slow for 40k
records, so :class:`Renderer` renders each distinct frame once with sentinel strings and
splices the record's text in — and verifies the shortcut against the real template on a sample
before trusting it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from engine import toolcalls
from engine.records import Record

log = logging.getLogger(__name__)

_USER = "\u2063W4USER\u2063"
_ASSISTANT = "\u2063W4ASSISTANT\u2063"


@dataclass(frozen=True)
class Rendered:
    prompt: str
    completion: str


def tools_system_text(tools: list[dict[str, Any]]) -> str:
    """The compact tool listing for templates without tools support.

    One signature line per tool instead of whole JSON Schemas: eight schemas cost ~2,000
    tokens with a small model's tokenizer — more than a dry run's whole sequence — while the
    signatures carry what the model needs (names, argument types, enums, which are optional).
    """
    lines = ['Tools you can call. To call one, answer with exactly one JSON object '
             '{"name": NAME, "arguments": {...}} and nothing else.']
    for t in tools:
        fn = t.get("function", t)
        params = fn.get("parameters") or {}
        required = set(params.get("required", []))
        args = ", ".join(f"{name}{'' if name in required else '?'}: {_type_text(spec)}"
                         for name, spec in (params.get("properties") or {}).items())
        desc = (fn.get("description") or "").strip().split("\n")[0]
        lines.append(f"- {fn.get('name')}({args})" + (f" - {desc}" if desc else ""))
    return "\n".join(lines)


def _type_text(spec: dict[str, Any]) -> str:
    if not isinstance(spec, dict):
        return "any"
    if "enum" in spec:
        return "|".join(json.dumps(v) if not isinstance(v, str) else v for v in spec["enum"])
    kind = spec.get("type", "any")
    if isinstance(kind, list):
        return "|".join(map(str, kind))
    if kind == "array":
        return f"list[{_type_text(spec.get('items', {}))}]"
    if kind == "object" and spec.get("properties"):
        inner = ", ".join(f"{k}: {_type_text(v)}" for k, v in spec["properties"].items())
        return "{" + inner + "}"
    return {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}.get(kind, kind)


def _as_template_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """tools.json entries in the OpenAI/HF shape chat templates expect."""
    return [t if "function" in t else {"type": "function", "function": t} for t in tools]


class Renderer:
    """Renders records with one tokenizer's chat template (fast path verified on a sample)."""

    def __init__(self, tokenizer: Any, system_prompt: str, tools: list[dict[str, Any]]) -> None:
        self.tok = tokenizer
        self.system_prompt = system_prompt
        self.tools = tools
        self.has_template = bool(getattr(tokenizer, "chat_template", None))
        self.native_tools = self.has_template and bool(tools) and self._template_takes_tools()
        #: The tool-call format the model is trained on and judged by (see engine.toolcalls).
        self.call_format = "qwen" if self._template_renders_calls() else "json"
        self._frames: dict[tuple[bool, str], tuple[str, str, str, str]] = {}
        self._calls_checked = False
        self.fast = True

    # --- the real thing -------------------------------------------------------------------
    def messages(self, user: str, tools: list[dict[str, Any]] | None) -> tuple[list[dict[str, str]], Any]:
        system = self.system_prompt
        template_tools = None
        if tools:
            if self.native_tools:
                template_tools = _as_template_tools(tools)
            else:
                system = (system + "\n\n" if system else "") + tools_system_text(tools)
        msgs = [{"role": "system", "content": system}] if system else []
        msgs.append({"role": "user", "content": user})
        return msgs, template_tools

    def render_slow(self, user: str, output: str, tools: list[dict[str, Any]] | None,
                    calls: list[toolcalls.ToolCall] | None = None) -> Rendered:
        """The template itself; with ``calls`` the assistant turn is a ``tool_calls`` turn."""
        msgs, ttools = self.messages(user, tools)
        if not self.has_template:
            prompt = "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + "assistant: "
            eos = getattr(self.tok, "eos_token", "") or ""
            return Rendered(prompt, output + eos)
        kwargs = {"tools": ttools} if ttools else {}
        prompt = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True,
                                              **kwargs)
        answer: dict[str, Any] = {"role": "assistant", "content": output}
        if calls:
            answer = {"role": "assistant", "content": "",
                      "tool_calls": [c.to_openai() for c in calls]}
        full = self.tok.apply_chat_template(msgs + [answer], tokenize=False, **kwargs)
        if full.startswith(prompt):
            return Rendered(prompt, full[len(prompt):])
        # Some templates render the last assistant turn differently; keep the output + end.
        eos = getattr(self.tok, "eos_token", "") or ""
        return Rendered(prompt, output + eos)

    def prompt_only(self, record: Record) -> str:
        """The generation prompt for a record (what evaluation and deployment send)."""
        return self.render(record).prompt

    # --- the fast path --------------------------------------------------------------------
    def tools_for(self, record: Record) -> list[dict[str, Any]] | None:
        if not record.shows_tools:
            return None
        own = record.extra.get("tools")
        return own if isinstance(own, list) and own else (self.tools or None)

    def answer(self, record: Record) -> tuple[str, list[toolcalls.ToolCall] | None]:
        """(the text the model is trained to answer, its calls when that is a native
        ``tool_calls`` turn). Tool outputs in any shape become the one format the model is
        told to use; an output the codec cannot read is kept as written (stage 1 reports it)."""
        if record.expect not in ("tool", "mixed"):  # mixed: a call when its output is one
            return record.output, None
        try:
            calls = toolcalls.read_calls(record.output)
        except toolcalls.ToolCallError:
            return record.output, None
        if self.call_format == "json":
            as_is = toolcalls.parse_answer(record.output, "json")[0] is not None
            return (record.output if as_is else toolcalls.render_calls(calls, "json")), None
        return toolcalls.render_calls(calls, self.call_format), calls

    def render(self, record: Record) -> Rendered:
        text, calls = self.answer(record)
        if not self.fast:
            return self.render_slow(record.user_text, text, self.tools_for(record), calls)
        before_user, after_user, before_out, after_out = self.frame(record)
        fast = Rendered(before_user + record.user_text + after_user,
                        before_out + text + after_out)
        if calls and not self._calls_checked:
            # The splice assumes the template writes a tool_calls turn as our call text in
            # the content's place; prove it once on a real record before trusting it.
            self._calls_checked = True
            if fast != self.render_slow(record.user_text, text, self.tools_for(record), calls):
                log.warning("chat template renders tool calls its own way; rendering every "
                            "record in full")
                self.fast = False
                return self.render(record)
        return fast

    def frame(self, record: Record) -> tuple[str, str, str, str]:
        """The template text around the record's user text and output (fast path only):
        (before user, after user, before output, after output)."""
        tools = self.tools_for(record)
        key = (tools is not None, json.dumps(tools, sort_keys=True) if tools else "")
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frame(tools)
            self._frames[key] = frame
        return frame

    def _frame(self, tools: list[dict[str, Any]] | None) -> tuple[str, str, str, str]:
        r = self.render_slow(_USER, _ASSISTANT, tools)
        if r.prompt.count(_USER) != 1 or r.completion.count(_ASSISTANT) != 1:
            self.fast = False
            return ("", "", "", "")
        a, b = r.prompt.split(_USER)
        c, d = r.completion.split(_ASSISTANT)
        return a, b, c, d

    def verify(self, records: list[Record]) -> int:
        """Compare the fast path with the template on records; disable it on any mismatch.

        Returns how many records disagreed (0 means the shortcut is exact on this sample).
        """
        if not self.fast:
            return 0
        bad = 0
        for rec in records:
            text, calls = self.answer(rec)
            slow = self.render_slow(rec.user_text, text, self.tools_for(rec), calls)
            if self.render(rec) != slow:
                bad += 1
        if bad:
            log.warning("chat template depends on content; rendering every record in full")
            self.fast = False
        return bad

    def _template_renders_calls(self) -> bool:
        """Whether the template writes assistant tool calls in a format we parse back."""
        if not self.has_template:
            return False
        template = self.tok.chat_template
        if not isinstance(template, str) or toolcalls.template_format(template) != "qwen":
            return False
        probe = toolcalls.ToolCall("w4_probe_tool", {"w4_arg": 1})
        try:
            text = self.tok.apply_chat_template(
                [{"role": "user", "content": "x"},
                 {"role": "assistant", "content": "", "tool_calls": [probe.to_openai()]}],
                tokenize=False)
        except Exception:  # a template that rejects tool_calls turns cannot train them
            return False
        return toolcalls.render_calls([probe], "qwen") in text

    def _template_takes_tools(self) -> bool:
        probe = [{"role": "user", "content": "x"}]
        tools = _as_template_tools([{"name": "w4_probe_tool", "description": "probe",
                                     "parameters": {"type": "object", "properties": {}}}])
        try:
            with_tools = self.tok.apply_chat_template(probe, tools=tools, tokenize=False,
                                                      add_generation_prompt=True)
        except Exception:  # templates that reject the argument have no tools support
            return False
        return "w4_probe_tool" in with_tools
