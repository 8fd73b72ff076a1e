"""Degenerate answers a badly trained model can produce are scored as wrong with a reason,
quickly, and never crash an evaluation."""

from __future__ import annotations

import time

import pytest

from engine.evaluate.scorers import Rules, score
from engine.records import Record

REFERENCE = "def add(a, b):\n    return a + b\n"
DEGENERATE = {
    "unary_chain": "x = " + "-" * 995 + "1",
    "deep_parens": "x = " + "(" * 180 + "1" + ")" * 180,
    "deep_class_bases": "class A(" + "b." * 3000 + "c): pass",
    "deep_calls": "f(" * 150 + ")" * 150,
    "nul_byte": "def f():\x00 pass",
    "ten_megabytes": "a" * 10_000_000,
    "fences": "```\n" * 200_000,
    "tool_brackets": '{"tool":' + "[" * 1200,
    "json_brackets": "[" * 100_000,
}


def record(bucket: str, output: str = REFERENCE, **extra: object) -> Record:
    return Record(path="e.jsonl", line=1, bucket=bucket, instruction="Write add", input="",
                  output=output, id="r1", split="eval", extra=dict(extra))


@pytest.mark.parametrize("bucket", ["style", "tool", "tool_neg", "guardrail", "mixed"])
@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_a_degenerate_answer_is_scored_without_crashing(bucket: str, name: str) -> None:
    t0 = time.monotonic()
    ref = '{"tool": "search", "arguments": {"q": "x"}}' if bucket == "tool" else REFERENCE
    verdict = score(record(bucket, ref), DEGENERATE[name], Rules())
    assert time.monotonic() - t0 < 10, name
    if bucket in ("style", "tool"):
        assert verdict.passed is False and verdict.reasons, (name, verdict)


def test_style_says_why_a_degenerate_answer_was_not_scored() -> None:
    rules = Rules()
    huge = score(record("style"), DEGENERATE["ten_megabytes"], rules)
    assert "over eval.max_answer_chars" in huge.reasons[0]
    deep = score(record("style"), DEGENERATE["deep_class_bases"], rules)
    assert "nested deeper than eval.max_code_depth" in deep.reasons[0] or \
        "cannot read" in deep.reasons[0], deep.reasons


def test_a_reference_too_deep_to_read_is_named_and_a_mixed_one_does_not_crash() -> None:
    verdict = score(record("style", DEGENERATE["unary_chain"]), REFERENCE, Rules())
    assert not verdict.passed and "the reference output" in verdict.reasons[-1]
    score(record("mixed", DEGENERATE["unary_chain"]), REFERENCE, Rules())
