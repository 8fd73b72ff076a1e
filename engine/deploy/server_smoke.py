"""The deploy smoke test on llama-server, the engine Ollama serves every GGUF with.

Each prompt is asked the way Ollama will ask it for this Modelfile:

- **native** (no TEMPLATE): ``/v1/chat/completions`` with the messages (SYSTEM first, as
  Ollama prepends it) and the run's tools; the GGUF's template renders the prompt — checked
  first against training's rendering through ``/apply-template`` — and llama.cpp parses the
  tool calls into ``message.tool_calls``;
- **Go template**: the prompt rendered from the TEMPLATE with Ollama's rules, sent to
  ``/completion`` (as Ollama does on that path), and the text read into calls with Ollama's
  own parser rules (:mod:`engine.deploy.ollama_tools`).

A tool prompt passes when the structured call the client would receive reads — through the
codec — exactly as the record's reference call; a tool_neg prompt when it comes back as
content with no call; every answer must have stopped by itself (never ``"length"``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from engine import toolcalls
from engine.deploy import modelfile as mf
from engine.deploy import ollama_tools
from engine.deploy.llama_server import LlamaServer
from engine.records import Record
from engine.render import Renderer

#: finish_reason values that mean the model ended its turn itself ("tool_calls" is
#: llama-server's word for a stopped answer that holds calls; Ollama reports both as "stop").
STOPPED = ("stop", "tool_calls")


@dataclass
class Answer:
    record_id: str
    expect: str
    prompt_ok: bool | None  # the server rendered training's prompt (native path only)
    content: str
    calls: list[dict[str, Any]]  # the structured calls a client receives
    finish_reason: str
    seconds: float
    verdict: str = ""  # "" = as expected, else why not
    reference: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.verdict


def _as_dicts(calls: list[toolcalls.ToolCall]) -> list[dict[str, Any]]:
    return [{"name": c.name, "arguments": c.arguments} for c in calls]


def _messages(spec: mf.ModelSpec, user: str) -> list[dict[str, Any]]:
    system = [{"role": "system", "content": spec.system}] if spec.system else []
    return system + [{"role": "user", "content": user}]


def ask(server: LlamaServer, spec: mf.ModelSpec, rend: Renderer, rec: Record,
        tools: list[dict[str, Any]], max_tokens: int) -> Answer:
    """One record through the server, on the path Ollama takes for ``spec``, with the tools
    training showed for it (a record's own, else the run's)."""
    tools = rend.tools_for(rec) or tools
    sampling = {"temperature": 0.0, "top_k": 1, "seed": 0}
    t0 = time.monotonic()
    prompt_ok = None
    if spec.native:
        body = {"messages": _messages(spec, rec.user_text), "tools": openai_tools(tools),
                **sampling, "max_tokens": max_tokens}
        rendered = server.post("/apply-template", body)["prompt"]
        prompt_ok = rendered == rend.render(rec).prompt
        choice = server.post("/v1/chat/completions", body)["choices"][0]
        msg = choice.get("message") or {}
        raw = msg.get("tool_calls") or []
        calls = _as_dicts(toolcalls.read_calls(raw)) if raw else []
        content, finish = msg.get("content") or "", choice.get("finish_reason") or ""
    else:
        prompt = mf.render_ollama(spec.template, spec.system,
                                  [{"role": "user", "content": rec.user_text}], tools)
        r = server.post("/completion", {"prompt": prompt, **sampling, "n_predict": max_tokens,
                                        "stop": spec.stops, "cache_prompt": True})
        text = r.get("content") or ""
        found, content = ollama_tools.read_answer(text, spec.tool_tag, tools)
        calls = _as_dicts(found)
        finish = "length" if r.get("stop_type") == "limit" else "stop"
    ans = Answer(rec.id, rec.expect, prompt_ok, content, calls, finish, time.monotonic() - t0)
    judge(ans, rec)
    return ans


def openai_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """tools.json entries in the shape chat APIs take them."""
    return [t if "function" in t else {"type": "function", "function": t} for t in tools]


def judge(ans: Answer, rec: Record) -> None:
    """Set ``ans.verdict`` ("" = as the record expects)."""
    problems = []
    if ans.prompt_ok is False:
        problems.append("llama-server rendered a different prompt than training did")
    if ans.finish_reason not in STOPPED:
        problems.append(f"did not stop (finish_reason {ans.finish_reason!r})")
    if rec.expect == "tool":
        ans.reference = _as_dicts(toolcalls.read_calls(rec.output))
        if not ans.calls:
            problems.append("no structured tool call came back (the answer was content: "
                            f"{ans.content[:120]!r})")
        elif ans.calls != ans.reference:
            problems.append(f"the client would receive {ans.calls}, not {ans.reference}")
            if any({"tool", "arguments"} <= set(c["arguments"]) for c in ans.calls):
                problems.append('Ollama takes a call\'s arguments from beside a "name" key; '
                                'this model writes "tool", so the whole object arrives as '
                                "the arguments")
    elif ans.calls:
        problems.append(f"a tool call came back for a prompt that needs none: {ans.calls}")
    elif toolcalls.find_calls(ans.content):
        problems.append("a tool call written as text for a prompt that needs none")
    elif not ans.content.strip():
        problems.append("an empty answer")
    ans.verdict = "; ".join(problems)
