"""Training text for tool records: the chat template's own tool_calls turn where it has one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.records import Record
from engine.render import Renderer
from engine.toolcalls import read_calls

ROOT = Path(__file__).resolve().parents[2]
QWEN = (ROOT / "tests/fixtures/chat_templates/qwen2.5-coder.jinja").read_text()
TOOLS = json.loads((ROOT / "data" / "tools.json").read_text())
ARGS = {"service": "checkout-api", "env": "staging", "replicas": 3}


def record(output: str, bucket: str = "tool") -> Record:
    return Record(path="t.jsonl", line=1, bucket=bucket, instruction="Scale checkout-api to 3",
                  input="", output=output, id="t:1", split="train")


@pytest.fixture(scope="module")
def tokenizers():
    from engine import models

    default = models.load_tokenizer(models.resolve("default"))
    qwen = models.load_tokenizer(models.resolve("default"))
    qwen.chat_template = QWEN
    return default, qwen


@pytest.mark.parametrize("output", [
    json.dumps({"tool": "scale_service", "arguments": ARGS}),
    json.dumps({"type": "function", "function": {"name": "scale_service",
                                                 "arguments": json.dumps(ARGS)}}),
    '<tool_call>\n' + json.dumps({"name": "scale_service", "arguments": ARGS}) + '\n</tool_call>',
], ids=["tool_key", "openai", "tagged"])
def test_a_tool_record_trains_on_the_templates_own_tool_calls_rendering(tokenizers, output):
    _, tok = tokenizers
    rend = Renderer(tok, "You are Web4 Coder.", TOOLS)
    assert rend.call_format == "qwen" and rend.native_tools
    rec = record(output)
    got = rend.render(rec)
    msgs, ttools = rend.messages(rec.user_text, TOOLS)
    prompt = tok.apply_chat_template(msgs, tools=ttools, tokenize=False,
                                     add_generation_prompt=True)
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "scale_service", "arguments": ARGS}}]}],
        tools=ttools, tokenize=False)
    assert got.prompt == prompt
    assert got.prompt + got.completion == full  # exactly the template's tool_calls turn
    assert got.completion.startswith("<tool_call>\n{\"name\": \"scale_service\"")
    assert got.completion.endswith("</tool_call><|im_end|>\n")
    assert read_calls(got.completion.split("<|im_end|>")[0]) == read_calls(output)


def test_the_fast_path_equals_the_template_and_falls_back_when_it_does_not(tokenizers):
    _, tok = tokenizers
    rend = Renderer(tok, "sys", TOOLS)
    rec = record(json.dumps({"tool": "scale_service", "arguments": ARGS}))
    assert rend.render(rec) == rend.render_slow(rec.user_text, rend.answer(rec)[0], TOOLS,
                                                rend.answer(rec)[1])
    assert rend.verify([rec, record("prose", "tool_neg")]) == 0 and rend.fast


def test_templates_without_tool_calls_train_one_name_arguments_object(tokenizers):
    default, _ = tokenizers
    rend = Renderer(default, "sys", TOOLS)
    assert rend.call_format == "json"
    named = json.dumps({"name": "scale_service", "arguments": ARGS})
    assert rend.answer(record(named)) == (named, None)  # already in the format: kept as written
    # Every other shape becomes the one the compact tool listing asks for (and Ollama reads).
    for other in ({"tool": "scale_service", "arguments": ARGS},
                  {"name": "scale_service", "parameters": ARGS}):
        text, calls = rend.answer(record(json.dumps(other)))
        assert calls is None and json.loads(text) == {"name": "scale_service", "arguments": ARGS}
    assert rend.render(record(named)).completion == named + "<|im_end|>\n"
    assert '{"name": NAME, "arguments": {...}}' in rend.render(record(named)).prompt
