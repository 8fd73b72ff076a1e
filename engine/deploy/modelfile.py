"""The Ollama Modelfile: FROM the GGUF, a TEMPLATE that says what the chat template says,
a stop for every end-of-turn token, a context window that fits training, the system prompt.

Ollama renders prompts with Go templates, not the model's Jinja, so the TEMPLATE is chosen
per chat format (ChatML for SmolLM2 and Qwen — with tool calls for Qwen2.5 —, DeepSeek-Coder's
own format) and then *proved*: probe conversations are rendered by the model's chat template
(through the same :class:`Renderer` training used) and by the Go template with Ollama's rules
(the model's SYSTEM is prepended when a conversation has none); the texts must be identical.

The system prompt is the one training showed the model. With ``deploy.bake_tools`` the
project's tools are part of it, exactly as rendered in training (the compact listing, or the
chat template's own tools block for Qwen2.5), so ``ollama run`` needs no client-side tools.

Values are written so that Ollama's parser reads back exactly what was meant. Its format has
no escapes: a triple-quoted value ends at the first line ending in three quotes, and
characters it cannot print are dropped. Values that cannot be represented are refused with a
message instead of being written into a file that would say something else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.deploy import gotemplate
from engine.render import Renderer


class ModelfileError(ValueError):
    """The Modelfile cannot be written faithfully; the message says what to change."""


_CHATML = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""

_QWEN_TOOLS = """{{- range .Messages }}
{{- if eq .Role "system" }}<|im_start|>system
{{ .Content }}{{ if $.Tools }}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>{{ range $.Tools }}
{{ . }}{{ end }}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>{{ end }}<|im_end|>
{{ else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ else if .ToolCalls }}<|im_start|>assistant{{ if .Content }}
{{ .Content }}{{ end }}{{ range .ToolCalls }}
<tool_call>
{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
</tool_call>{{ end }}<|im_end|>
{{ else }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}
{{- end }}<|im_start|>assistant
""".replace("\\\n", "")

_DEEPSEEK = """{{- range .Messages }}
{{- if eq .Role "system" }}{{ .Content }}
{{- else if eq .Role "user" }}### Instruction:
{{ .Content }}
{{ else }}### Response:
{{ .Content }}
<|EOT|>
{{ end }}
{{- end }}### Response:
"""

#: Chat format → (Go template, end-of-turn markers that must stop generation).
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "chatml": (_CHATML, ("<|im_end|>", "<|im_start|>")),
    "chatml-tools": (_QWEN_TOOLS, ("<|im_end|>", "<|im_start|>")),
    "deepseek-coder": (_DEEPSEEK, ("<|EOT|>",)),
}


def chat_family(chat_template: str) -> str:
    """Which Ollama template matches a Jinja chat template (refused by name when none does)."""
    if "<|im_start|>" in chat_template and "<|im_end|>" in chat_template:
        return "chatml-tools" if "<tool_call>" in chat_template else "chatml"
    if "### Instruction:" in chat_template and "<|EOT|>" in chat_template:
        return "deepseek-coder"
    raise ModelfileError(
        "no Ollama TEMPLATE is known for this model's chat template (supported: ChatML as in "
        "SmolLM2/Qwen2.5, DeepSeek-Coder's instruction format); the Modelfile would render "
        "prompts differently from training")


def stop_tokens(model_dir: Path, tok: Any) -> list[str]:
    """Every end-of-turn token: the format's markers and each eos id of config/generation."""
    stops: list[str] = []
    template = getattr(tok, "chat_template", None) or ""
    try:
        stops.extend(FAMILIES[chat_family(template)][1])
    except ModelfileError:
        pass
    ids: list[int] = []
    for name in ("config.json", "generation_config.json"):
        p = model_dir / name
        if p.is_file():
            eos = json.loads(p.read_text(encoding="utf-8")).get("eos_token_id")
            ids.extend(eos if isinstance(eos, list) else [eos] if isinstance(eos, int) else [])
    if tok.eos_token_id is not None:
        ids.append(tok.eos_token_id)
    for i in ids:
        text = tok.convert_ids_to_tokens(int(i))
        if text:
            stops.append(text)
    return list(dict.fromkeys(s for s in stops if s))


@dataclass
class ModelSpec:
    """Everything Ollama needs to know about the model, for the file and for the API alike."""

    gguf: Path
    family: str
    template: str
    system: str
    stops: list[str]
    num_ctx: int
    bos_text: str = ""  # rendered by the HF template, added by the tokenizer in Ollama
    probes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def parameters(self) -> dict[str, Any]:
        return {"stop": list(self.stops), "num_ctx": self.num_ctx}


def _chatml_system(prompt: str) -> str | None:
    m = re.match(r"<\|im_start\|>system\n(.*?)<\|im_end\|>\n", prompt, re.DOTALL)
    return m.group(1) if m else None


def deployed_system(rend: Renderer, family: str, bake_tools: bool) -> str:
    """The system prompt the model saw in training (with the tools when baked in)."""
    probe = "\u2063W4PROBE\u2063"
    tools = rend.tools if bake_tools and rend.tools else None
    msgs, template_tools = rend.messages(probe, tools)
    if family.startswith("chatml"):
        kwargs = {"tools": template_tools} if template_tools else {}
        text = rend.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True,
                                            **kwargs)
        found = _chatml_system(text)
        if found is not None:
            return found
    if msgs and msgs[0]["role"] == "system":
        return msgs[0]["content"]
    if family == "deepseek-coder":  # the template's own default system text, verbatim
        text = rend.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        bos = rend.tok.bos_token or ""
        return text.removeprefix(bos).split("### Instruction:")[0]
    return ""


def ollama_messages(messages: list[dict[str, Any]], system: str) -> list[dict[str, Any]]:
    """What Ollama hands the template: SYSTEM first when the chat has no system message, and
    consecutive messages of one role merged (Ollama's collate)."""
    msgs = list(messages)
    if system and (not msgs or msgs[0]["role"] != "system"):
        msgs.insert(0, {"role": "system", "content": system})
    out: list[dict[str, Any]] = []
    for m in msgs:
        calls = [{"Function": {"Name": c.get("function", c).get("name", ""),
                               "Arguments": c.get("function", c).get("arguments", {})}}
                 for c in (m.get("tool_calls") or [])]
        entry = {"Role": m["role"], "Content": m.get("content", ""),
                 "ToolCalls": calls, "Images": None,
                 "ToolName": m.get("tool_name", "")}
        if out and out[-1]["Role"] == entry["Role"] and entry["Role"] != "tool":
            out[-1]["Content"] += "\n\n" + entry["Content"]
        else:
            out.append(entry)
    return out


def render_ollama(template: str, system: str, messages: list[dict[str, Any]],
                  tools: list[dict[str, Any]] | None = None) -> str:
    msgs = ollama_messages(messages, system)
    sys_text = "\n\n".join(m["Content"] for m in msgs if m["Role"] == "system")
    return gotemplate.render(template, {"Messages": msgs, "Tools": tools or [],
                                        "System": sys_text, "Prompt": "", "Response": "",
                                        "Suffix": "", "Think": False})


PROBE_CHATS: tuple[tuple[str, ...], ...] = (
    ("Deploy checkout-api v1.2.3 to staging with 3 replicas.",),
    ('Write a Python function `add(a, b)`.\n\n"""docstring""" and {{ .System }} stay text.',),
    ("What does HTTP 429 mean?", "Too Many Requests: the client is rate limited.",
     "And 503?"),
)


def verify_template(spec: ModelSpec, rend: Renderer, bake_tools: bool) -> list[dict[str, Any]]:
    """Render probe chats both ways; returns the mismatches (empty = equivalent)."""
    tools = rend.tools if bake_tools and rend.tools else None
    problems = []
    spec.probes = []
    for turns in PROBE_CHATS:
        user_msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": t}
                     for i, t in enumerate(turns)]
        msgs, template_tools = rend.messages(turns[0], tools)
        hf_msgs = msgs[:-1] + user_msgs
        kwargs = {"tools": template_tools} if template_tools else {}
        want = rend.tok.apply_chat_template(hf_msgs, tokenize=False, add_generation_prompt=True,
                                            **kwargs)
        want = want.removeprefix(spec.bos_text) if spec.bos_text else want
        got = render_ollama(spec.template, spec.system, user_msgs)
        spec.probes.append({"turns": len(turns), "identical": got == want})
        if got != want:
            at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                      min(len(got), len(want)))
            problems.append({"turns": len(turns), "at": at,
                             "ollama": got[max(0, at - 40):at + 40],
                             "chat_template": want[max(0, at - 40):at + 40]})
    return problems


def build_spec(gguf: Path, rend: Renderer, model_dir: Path, *, bake_tools: bool,
               num_ctx: int) -> ModelSpec:
    template_src = getattr(rend.tok, "chat_template", None) or ""
    family = chat_family(template_src)
    template, _markers = FAMILIES[family]
    bos = rend.tok.bos_token or ""
    bos_text = ""
    if bos and "bos_token" in template_src:
        ids = rend.tok("a").input_ids
        if ids and ids[0] == rend.tok.bos_token_id and ids != rend.tok(
                "a", add_special_tokens=False).input_ids:
            bos_text = bos  # the tokenizer adds it, in Ollama too (GGUF add_bos_token)
        else:
            template = bos + template  # only the template writes it: so must Ollama's
    return ModelSpec(gguf=gguf, family=family, template=template,
                     system=deployed_system(rend, family, bake_tools),
                     stops=stop_tokens(model_dir, rend.tok), num_ctx=num_ctx,
                     bos_text=bos_text)


# --- writing the file ---------------------------------------------------------------------

def _check_printable(what: str, value: str) -> None:
    for ch in value:
        if ch not in "\t\n\r" and not ch.isprintable():
            raise ModelfileError(
                f"{what} contains the invisible character U+{ord(ch):04X}, which Ollama's "
                "Modelfile parser drops; remove it (the model would see a different text)")


def quote_block(what: str, value: str) -> str:
    """A triple-quoted Modelfile value that Ollama reads back exactly, or a refusal."""
    _check_printable(what, value)
    if '"""' in value:
        raise ModelfileError(f'{what} contains """, which ends a Modelfile value early (the '
                             "rest would be read as new instructions); rephrase it without "
                             "three double quotes in a row")
    if value.endswith('"'):
        # `""""` at the end still reads back right (the last three quotes close the value).
        pass
    return f'"""{value}"""'


def quote_word(what: str, value: str) -> str:
    """A one-line double-quoted value (stops, paths)."""
    _check_printable(what, value)
    if not value or any(c in value for c in '"\n\r'):
        raise ModelfileError(f"{what} {value!r} cannot be written in a Modelfile "
                             "(empty, or a quote or line break in it)")
    return f'"{value}"'


def render_modelfile(spec: ModelSpec, base_dir: Path, header: str = "") -> str:
    """The Modelfile text; FROM is relative to ``base_dir`` when the GGUF lies under it."""
    try:
        src = "./" + spec.gguf.resolve().relative_to(base_dir.resolve()).as_posix()
    except ValueError:
        src = str(spec.gguf.resolve())
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    lines.append(f"FROM {quote_word('the GGUF path', src)}")
    lines.append(f"TEMPLATE {quote_block('the template', spec.template)}")
    if spec.system:
        lines.append(f"SYSTEM {quote_block('the system prompt', spec.system)}")
    for s in spec.stops:
        lines.append(f"PARAMETER stop {quote_word('the stop token', s)}")
    lines.append(f"PARAMETER num_ctx {int(spec.num_ctx)}")
    return "\n".join(lines) + "\n"
