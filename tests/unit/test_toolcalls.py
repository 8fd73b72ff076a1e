"""The tool-call codec: every shape real data uses, the strict answer formats, bounded work."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from engine.records import find_files, iter_lines, parse_line
from engine.toolcalls import (
    ToolCall, ToolCallError, find_calls, parse_answer, read_calls, render_calls, template_format,
)

ROOT = Path(__file__).resolve().parents[2]
ARGS = {"service": "api", "env": "staging", "replicas": 2}
ONE = [ToolCall("scale_service", ARGS)]

SHAPES = {
    "tool_key": {"tool": "scale_service", "arguments": ARGS},
    "name_arguments": {"name": "scale_service", "arguments": ARGS},
    "name_parameters": {"name": "scale_service", "parameters": ARGS},
    "openai_object_args": {"type": "function", "function": {"name": "scale_service",
                                                            "arguments": ARGS}},
    "openai_string_args": {"id": "call_1", "type": "function",
                           "function": {"name": "scale_service", "arguments": json.dumps(ARGS)}},
    "assistant_message": {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "scale_service", "arguments": json.dumps(ARGS)}}]},
    "list_of_one": [{"name": "scale_service", "arguments": ARGS}],
}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_common_shape_reads_to_the_same_call(shape: str) -> None:
    value = SHAPES[shape]
    assert read_calls(value) == ONE
    assert read_calls(json.dumps(value)) == ONE  # as the text of a record's output


def test_tagged_text_parallel_calls_and_a_fence() -> None:
    text = render_calls([ToolCall("a", {"x": 1}), ToolCall("b", {})], "qwen")
    assert text == ('<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n'
                    '<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>')
    assert read_calls(text) == [ToolCall("a", {"x": 1}), ToolCall("b", {})]
    assert read_calls('```json\n{"name": "a", "arguments": {}}\n```') == [ToolCall("a", {})]
    assert read_calls([{"name": "a", "arguments": {}}, {"tool": "b", "arguments": {}}]) == [
        ToolCall("a", {}), ToolCall("b", {})]


@pytest.mark.parametrize("value, why", [
    ("Sure, I will scale it.", "not valid JSON"),
    ('{"service": "api"}', "no tool name"),
    ('{"tool": "a", "arguments": [1]}', "arguments must be an object"),
    ('{"tool": "a", "arguments": {}, "note": 1}', "unexpected key 'note'"),
    ('{"name": "a", "arguments": "{not json"}', "not valid JSON"),
    ("[]", "empty list"),
    ('<tool_call>\n{"name": "a", "arguments": {}}', "without its closing"),
    ('ok <tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>', "text around"),
    ('{"type": "retrieval", "function": {"name": "a", "arguments": {}}}', "'type' is"),
    ("[" * 5000, "nested deeper"),
])
def test_what_is_not_a_call_says_why(value: str, why: str) -> None:
    with pytest.raises(ToolCallError, match=why):
        read_calls(value)


def test_round_trip_over_the_demo_tool_records() -> None:
    """Every demo tool record reads, renders in both formats and reads back identically."""
    files, _ = find_files([ROOT / "data" / "train", ROOT / "data" / "eval"])
    n = 0
    for f in files:
        for number, raw in iter_lines(f):
            rec, problems = parse_line(str(f), number, raw, "train")
            assert not problems, problems
            if rec is None or rec.expect != "tool":
                continue
            calls = read_calls(rec.output)
            for fmt in ("qwen", "json"):
                assert read_calls(render_calls(calls, fmt)) == calls
                assert parse_answer(render_calls(calls, fmt), fmt) == (calls, "")
            n += 1
    assert n >= 900


def test_bfcl_and_xlam_style_records() -> None:
    """Public function-calling data: xLAM's answers list, BFCL's {name: {args}} as OpenAI."""
    xlam = json.dumps([{"name": "get_weather", "arguments": {"city": "Oslo"}},
                       {"name": "get_time", "arguments": {"tz": "CET"}}])
    assert [c.name for c in read_calls(xlam)] == ["get_weather", "get_time"]
    openai = {"role": "assistant", "tool_calls": [{"id": "c0", "type": "function", "function": {
        "name": "calc", "arguments": '{"expr": "2+2", "precise": true}'}}]}
    assert read_calls(openai) == [ToolCall("calc", {"expr": "2+2", "precise": True})]


def test_find_calls_anywhere_in_prose() -> None:
    text = ('I would run ```json\n{"name": "a", "arguments": {"q": "}"}}\n``` then '
            '{"tool": "b", "arguments": {}} and { unclosed {"name": "c", "arguments": {}}')
    assert [c.name for c in find_calls(text)] == ["a", "b", "c"]
    assert find_calls("Use {braces} and name: value, nothing to call.") == []


def test_degenerate_answers_are_scanned_in_linear_time() -> None:
    """A badly trained model's answer of a million braces must not stall an evaluation."""
    bad = ['{"name": ' + "{" * 400_000, '{"tool":' + "[" * 1200, '{"name": "x", ' * 50_000,
           "x" * 5_000_000 + '{"name": "a", "arguments": {}}']
    started = time.monotonic()
    for text in bad:
        find_calls(text)
        parse_answer(text, "qwen")
        parse_answer(text, "json")
    assert time.monotonic() - started < 10  # quadratic scanning takes minutes here
    assert find_calls(bad[-1]) == [ToolCall("a", {})]


def test_template_format() -> None:
    qwen = (ROOT / "tests/fixtures/chat_templates/qwen2.5-coder.jinja").read_text()
    deepseek = (ROOT / "tests/fixtures/chat_templates/deepseek-coder.jinja").read_text()
    assert template_format(qwen) == "qwen"
    assert template_format(deepseek) == "json"
    assert template_format(None) == "json"


def test_the_trained_format_is_recorded_and_compared(tmp_path: Path) -> None:
    from engine import call_format

    assert call_format.trained_format(tmp_path) is None
    assert call_format.agreement(None, "json", "x")["status"] == "warn"
    call_format.record_trained(tmp_path, "qwen", "{{ template }}")
    assert call_format.trained_format(tmp_path) == "qwen"
    assert call_format.agreement("qwen", "qwen", "the GGUF's template")["status"] == "pass"
    bad = call_format.agreement("qwen", "json", "the Modelfile's TEMPLATE")
    assert bad["status"] == "fail" and "trained on qwen" in bad["value"]
    (tmp_path / call_format.RECORD).write_text("[1")
    assert call_format.trained_format(tmp_path) is None
