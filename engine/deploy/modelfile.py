"""The Ollama Modelfile, written for the path Ollama will really take with the model.

Ollama (>= 0.30) runs every GGUF on llama.cpp's llama-server, in one of two ways:

- **native** — no TEMPLATE in the Modelfile and a tool-capable chat template in the GGUF
  (Qwen2.5): Ollama sends ``messages`` and ``tools`` to llama-server's ``/v1/chat/completions``,
  the GGUF's Jinja template renders the prompt and llama.cpp parses the tool calls in the
  format that template renders (``<tool_call>`` blocks). So the Modelfile has no TEMPLATE, and
  the GGUF carries exactly the chat template training used (checked here).
- **Go template** — a TEMPLATE: Ollama renders the prompt with it, sends it to llama-server's
  ``/completion`` and parses tool calls itself, after the text that follows ``.ToolCalls`` in
  the template (``{`` for plain JSON). Used where Ollama would otherwise pick a tool-less
  template from its own index (plain ChatML as SmolLM2 has it maps to ``chatml``,
  DeepSeek-Coder's template is verbatim ``alpaca``): the TEMPLATE here has the tools, the tool
  calls in the format the model was trained to emit, and the tool role — and it is *proved* by
  rendering probe conversations both through the model's chat template (with the same
  :class:`Renderer` training used) and through the Go template with Ollama's rules
  (:mod:`engine.deploy.gotemplate`); the texts must be identical.

Stops: Ollama has no default stops; generation ends at the GGUF vocabulary's end-of-generation
tokens. A ``PARAMETER stop`` is written only for an end-of-turn token the vocabulary does not
already end on. ``num_ctx`` is set from training (Ollama would otherwise pick up to 262,144).

The system prompt is the one training showed the model. On the Go-template path, with
``deploy.bake_tools``, the project's tools are part of it exactly as rendered in training (the
compact listing). On the native path the client sends the tools and the template renders them.

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

from engine import toolcalls
from engine.deploy import gotemplate
from engine.render import Renderer, tools_system_text
from engine.stops import config_eos_ids


class ModelfileError(ValueError):
    """The Modelfile cannot be written faithfully; the message says what to change."""


#: How a TEMPLATE lists the client's tools when no system prompt carries them already (with
#: deploy.bake_tools the SYSTEM holds them exactly as training showed them, so this is unused).
_TOOLS_INTRO = tools_system_text([])

#: A tool call in the plain-JSON format, as the model was trained to emit it. The first text
#: after ``.ToolCalls`` starts with ``{``: Ollama's parser then takes JSON objects as calls.
_JSON_CALLS = ('{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": '
               '{{ .Function.Arguments }}}{{ end }}')

_CHATML_TOOLS = """{{- if and .Tools (not .System) }}<|im_start|>system
INTRO{{ range .Tools }}
{{ . }}{{ end }}<|im_end|>
{{ end }}
{{- range .Messages }}
{{- if eq .Role "tool" }}<|im_start|>tool
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .ToolCalls }}CALLS{{ else }}{{ .Content }}{{ end }}<|im_end|>
{{ else }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}
{{- end }}<|im_start|>assistant
""".replace("INTRO", _TOOLS_INTRO).replace("CALLS", _JSON_CALLS)

# DeepSeek-Coder's template writes every turn that is not the user's (the tool role too) as a
# response; so does this one.
_DEEPSEEK_TOOLS = """{{- if and .Tools (not .System) }}INTRO{{ range .Tools }}
{{ . }}{{ end }}
{{ end }}
{{- range .Messages }}
{{- if eq .Role "system" }}{{ .Content }}
{{- else if eq .Role "user" }}### Instruction:
{{ .Content }}
{{ else if eq .Role "assistant" }}### Response:
{{ if .ToolCalls }}CALLS{{ else }}{{ .Content }}{{ end }}
<|EOT|>
{{ else if eq .Role "tool" }}### Response:
{{ .Content }}
<|EOT|>
{{ end }}
{{- end }}### Response:
""".replace("INTRO", _TOOLS_INTRO).replace("CALLS", _JSON_CALLS)


@dataclass(frozen=True)
class Family:
    """A chat format: its Go TEMPLATE ("" = served natively), end-of-turn markers, markers
    that start a turn (stops in export, never needed in Ollama), and what Ollama does with
    the chat template when the Modelfile has no TEMPLATE."""

    template: str
    end_markers: tuple[str, ...]
    start_markers: tuple[str, ...]
    why: str


FAMILIES: dict[str, Family] = {
    "chatml-tools": Family("", ("<|im_end|>",), ("<|im_start|>",), (
        "native: no TEMPLATE, so Ollama hands messages and tools to llama-server, whose "
        "Jinja engine renders the GGUF's own tool-capable chat template and whose parser "
        "reads the <tool_call> blocks it defines (no entry of Ollama's template index is "
        "close to this template, so none replaces it)")),
    "chatml": Family(_CHATML_TOOLS, ("<|im_end|>",), ("<|im_start|>",), (
        "Go TEMPLATE: Ollama's template index maps this plain ChatML chat template to its "
        "tool-less 'chatml' template (a chat with tools would be refused: \"does not support "
        "tools\"), so the Modelfile's TEMPLATE adds the tools, the tool calls as the model "
        "was trained to write them and the tool role; Ollama renders it in Go and reads the "
        "calls after the tag {tag!r}")),
    "deepseek-coder": Family(_DEEPSEEK_TOOLS, ("<|EOT|>",), (), (
        "Go TEMPLATE: DeepSeek-Coder's chat template is verbatim the tool-less 'alpaca' "
        "entry of Ollama's template index, so the Modelfile's TEMPLATE adds the tools, the "
        "tool calls as the model was trained to write them and the tool role; Ollama renders "
        "it in Go and reads the calls after the tag {tag!r}")),
}


def chat_family(chat_template: str) -> str:
    """Which chat format a Jinja chat template is (refused by name when none is known)."""
    if "<|im_start|>" in chat_template and "<|im_end|>" in chat_template:
        return "chatml-tools" if "<tool_call>" in chat_template else "chatml"
    if "### Instruction:" in chat_template and "<|EOT|>" in chat_template:
        return "deepseek-coder"
    raise ModelfileError(
        "no Ollama TEMPLATE is known for this model's chat template (supported: ChatML as in "
        "SmolLM2/Qwen2.5, DeepSeek-Coder's instruction format); the Modelfile would render "
        "prompts differently from training")


def _eos_texts(tok: Any, model_dir: Path | None) -> list[str]:
    ids = config_eos_ids(model_dir)
    if tok.eos_token_id is not None:
        ids.append(tok.eos_token_id)
    return [t for t in (tok.convert_ids_to_tokens(int(i)) for i in ids) if t]


def end_of_turn_tokens(model_dir: Path | None, tok: Any) -> list[str]:
    """The tokens that end the assistant's turn: the format's end marker and every eos."""
    fam = FAMILIES[chat_family(getattr(tok, "chat_template", None) or "")]
    return list(dict.fromkeys(list(fam.end_markers) + _eos_texts(tok, model_dir)))


@dataclass
class ModelSpec:
    """Everything Ollama needs to know about the model, for the file and for the API alike."""

    gguf: Path
    family: str
    template: str  # the Go TEMPLATE; "" = none, Ollama serves the GGUF's template natively
    system: str
    stops: list[str]  # only end-of-turn tokens the GGUF's vocabulary does not end on
    num_ctx: int
    bos_text: str = ""  # rendered by the HF template, added by the tokenizer in Ollama
    tool_format: str = "json"  # what the model was trained to emit for a call (toolcalls)
    chat_template: str = ""  # the Jinja template training rendered with
    gguf_template: str | None = None  # what the GGUF carries (None: the file was not read)
    vocab_stops: list[str] = field(default_factory=list)  # ends the vocabulary already has
    probes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def native(self) -> bool:
        return not self.template

    @property
    def path(self) -> str:
        return "native" if self.native else "go-template"

    @property
    def tool_tag(self) -> str:
        """Where Ollama's own parser starts reading a tool call (Go-template path only)."""
        return gotemplate.tool_tag(self.template) if self.template else ""

    @property
    def why(self) -> str:
        return FAMILIES[self.family].why.format(tag=self.tool_tag)

    @property
    def parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {"num_ctx": self.num_ctx}
        if self.stops:
            params["stop"] = list(self.stops)
        return params


def _chatml_system(prompt: str) -> str | None:
    m = re.match(r"<\|im_start\|>system\n(.*?)<\|im_end\|>\n", prompt, re.DOTALL)
    return m.group(1) if m else None


def deployed_system(rend: Renderer, family: str, bake_tools: bool) -> str:
    """The system prompt the model saw in training (with the tools when baked in).

    Served natively, the client's tools reach the chat template itself, so they are never
    baked into the system prompt (the template would list them twice)."""
    probe = "\u2063W4PROBE\u2063"
    native = not FAMILIES[family].template
    tools = rend.tools if bake_tools and rend.tools and not native else None
    msgs, template_tools = rend.messages(probe, tools)
    if native:
        return msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else ""
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
        calls = [{"Function": {"Name": c.name, "Arguments": c.arguments}}
                 for c in (toolcalls.read_calls(m["tool_calls"]) if m.get("tool_calls") else [])]
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

#: A chat with a tool call and its result in the history (the Go template's .ToolCalls and
#: tool role against the chat template over the text the model was trained to emit).
PROBE_CALL = toolcalls.ToolCall("deploy_service", {"service": "checkout-api",
                                                   "version": "v1.2.3", "env": "staging"})


def _mismatch(label: str, got: str, want: str) -> dict[str, Any]:
    at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return {"probe": label, "at": at, "ollama": got[max(0, at - 40):at + 40],
            "chat_template": want[max(0, at - 40):at + 40]}


def verify_template(spec: ModelSpec, rend: Renderer, bake_tools: bool) -> list[dict[str, Any]]:
    """Prove the Modelfile renders as training did; returns the mismatches (empty = proved).

    Native: the GGUF carries exactly the training chat template (llama-server renders it; the
    stage's smoke test then compares llama-server's own rendering). Go template: probe chats
    rendered both ways are identical, and Ollama's parser would read calls after the tag the
    trained format starts with."""
    spec.probes = []
    if spec.native:
        same = spec.gguf_template == spec.chat_template
        spec.probes.append({"probe": "GGUF chat template", "identical": same})
        if spec.gguf_template is None:
            return [{"probe": "GGUF chat template", "problem": f"{spec.gguf} was not read"}]
        return [] if same else [_mismatch("GGUF chat template", spec.gguf_template,
                                          spec.chat_template)]
    tools = rend.tools if bake_tools and rend.tools else None
    problems = []
    call_text = toolcalls.render_calls([PROBE_CALL], spec.tool_format)
    chats: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = []
    for n, turns in enumerate(PROBE_CHATS, start=1):
        msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": t}
                for i, t in enumerate(turns)]
        chats.append((f"chat {n} ({len(turns)} turns)", msgs, msgs))
    ask = {"role": "user", "content": PROBE_CHATS[0][0]}
    result = {"role": "tool", "content": '{"status": "deployed"}'}
    chats.append(("tool call and result",
                  [ask, {"role": "assistant", "content": call_text}, result],
                  [ask, {"role": "assistant", "content": "",
                         "tool_calls": [{"function": {"name": PROBE_CALL.name,
                                                      "arguments": PROBE_CALL.arguments}}]},
                   result]))
    # Ollama prints a call's arguments as compact JSON; the model's own text has spaces. Only
    # a history turn is affected (what the model generates is its own text).
    args = json.dumps(PROBE_CALL.arguments, ensure_ascii=False)
    printed = call_text.replace(args, json.dumps(PROBE_CALL.arguments, ensure_ascii=False,
                                                 separators=(",", ":")))
    for label, hf_chat, ollama_chat in chats:
        msgs, template_tools = rend.messages(PROBE_CHATS[0][0], tools)
        kwargs = {"tools": template_tools} if template_tools else {}
        want = rend.tok.apply_chat_template(msgs[:-1] + hf_chat, tokenize=False,
                                            add_generation_prompt=True, **kwargs)
        want = want.removeprefix(spec.bos_text) if spec.bos_text else want
        got = render_ollama(spec.template, spec.system, ollama_chat)
        probe: dict[str, Any] = {"probe": label, "identical": got == want}
        if got != want and ollama_chat is not hf_chat and got == want.replace(call_text, printed):
            probe["note"] = "identical but for the arguments' spacing, which Ollama prints compactly"
        elif got != want:
            problems.append(_mismatch(label, got, want))
        spec.probes.append(probe)
    want_tag = call_text.lstrip()[:1] if spec.tool_format == "json" else "<tool_call>"
    spec.probes.append({"probe": "tool-call tag", "identical": spec.tool_tag == want_tag})
    if spec.tool_tag != want_tag:
        problems.append({"probe": "tool-call tag", "ollama": spec.tool_tag,
                         "trained": want_tag})
    return problems


def build_spec(gguf: Path, rend: Renderer, model_dir: Path | None, *, bake_tools: bool,
               num_ctx: int) -> ModelSpec:
    """The Modelfile's values for ``gguf`` (read when it exists: its template and vocabulary
    decide the path and the stops)."""
    from engine.deploy import gguf_meta

    template_src = getattr(rend.tok, "chat_template", None) or ""
    family = chat_family(template_src)
    template = FAMILIES[family].template
    bos = rend.tok.bos_token or ""
    bos_text = ""
    if template and bos and "bos_token" in template_src:
        ids = rend.tok("a").input_ids
        if ids and ids[0] == rend.tok.bos_token_id and ids != rend.tok(
                "a", add_special_tokens=False).input_ids:
            bos_text = bos  # the tokenizer adds it, in Ollama too (GGUF add_bos_token)
        else:
            template = bos + template  # only the template writes it: so must Ollama's
    ends = end_of_turn_tokens(model_dir, rend.tok)
    meta = gguf_meta.read(gguf, ends) if Path(gguf).is_file() else None
    vocab = [t for t in ends if meta is not None and t in meta.end_of_generation]
    return ModelSpec(gguf=gguf, family=family, template=template,
                     system=deployed_system(rend, family, bake_tools),
                     stops=[t for t in ends if t not in vocab], num_ctx=num_ctx,
                     bos_text=bos_text, tool_format=toolcalls.template_format(template_src),
                     chat_template=template_src,
                     gguf_template=meta.chat_template if meta is not None else None,
                     vocab_stops=vocab)


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
    if spec.template:  # none: Ollama serves the GGUF's own chat template natively
        lines.append(f"TEMPLATE {quote_block('the template', spec.template)}")
    if spec.system:
        lines.append(f"SYSTEM {quote_block('the system prompt', spec.system)}")
    for s in spec.stops:
        lines.append(f"PARAMETER stop {quote_word('the stop token', s)}")
    lines.append(f"PARAMETER num_ctx {int(spec.num_ctx)}")
    return "\n".join(lines) + "\n"
