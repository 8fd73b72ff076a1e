"""Every scorer against hand-written answers for each failure mode (tests/fixtures/eval)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import config
from engine.evaluate import metrics, rules_for, score_answers
from engine.evaluate.core import Row
from engine.evaluate.lint import Linter
from engine.evaluate.scorers import (
    Rules, extract_code, rule_for, score, score_guardrail, score_style, score_tool,
    score_tool_neg,
)
from engine.records import Record, load_tools

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "eval"
TOOLS = load_tools(ROOT / "data" / "tools.json")


def cases(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIX / name).read_text().splitlines() if line.strip()]


def rec(bucket: str, output: str, **extra: object) -> Record:
    return Record(path="t.jsonl", line=1, bucket=bucket, instruction="do it", input="",
                  output=output, id="t:1", split="eval", extra=dict(extra))


def assert_verdict(v, case: dict) -> None:
    expect = dict(case["expect"])
    assert v.passed == expect.pop("passed"), v
    for check, want in expect.items():
        assert v.checks[check] == want, (check, v)
    if case["reason"]:
        assert any(case["reason"] in r for r in v.reasons), v.reasons
    else:
        assert v.reasons == []


@pytest.mark.parametrize("case", cases("tool_cases.jsonl"), ids=lambda c: c["case"])
def test_tool_scorer(case: dict) -> None:
    assert_verdict(score_tool(case["answer"], case["reference"], TOOLS), case)


@pytest.mark.parametrize("case", cases("tool_native_cases.jsonl"), ids=lambda c: c["case"])
def test_native_tool_calls_are_scored_in_the_templates_format(case: dict) -> None:
    """Answers a Qwen2.5-style model gives (<tool_call> blocks), each failure with its reason;
    references may be in any shape the codec reads."""
    assert_verdict(score_tool(case["answer"], case["reference"], TOOLS, call_format="qwen"), case)


def test_tool_neg_sees_native_calls_and_bare_tags() -> None:
    native = '<tool_call>\n{"name": "get_logs", "arguments": {"service": "api"}}\n</tool_call>'
    assert not score_tool_neg(native).passed
    assert not score_tool_neg("Let me check.\n<tool_call>\n{broken").passed
    assert not score_tool_neg('```json\n{"name": "get_logs", "arguments": {}}\n```').passed
    assert score_tool_neg("Use `w4ctl logs` with {braces} and a name: value.").passed


def test_a_fenced_tool_call_is_valid_only_when_the_switch_is_on() -> None:
    case = next(c for c in cases("tool_cases.jsonl") if c["case"] == "fenced")
    assert not score_tool(case["answer"], case["reference"], TOOLS).checks["json_valid"]
    on = score_tool(case["answer"], case["reference"], TOOLS, allow_fence=True)
    assert on.passed and on.checks["args_exact"]


def test_prose_answers_are_marked_as_prose() -> None:
    ref = cases("tool_cases.jsonl")[0]["reference"]
    assert score_tool("Deploy it with w4ctl.", ref, TOOLS).info["prose"] is True
    assert score_tool("Here: " + ref, ref, TOOLS).info["prose"] is False


def test_a_records_own_tools_take_precedence() -> None:
    own = [{"name": "ping", "parameters": {"type": "object", "properties": {"host": {
        "type": "string"}}, "required": ["host"]}}]
    r = rec("tool", '{"tool": "ping", "arguments": {"host": "a"}}', tools=own)
    rules = Rules(tools=TOOLS)
    assert score(r, '{"name": "ping", "arguments": {"host": "a"}}', rules).passed
    assert not score(r, '{"name": "ping", "arguments": {}}', rules).checks["args_valid"]


@pytest.mark.parametrize("case", cases("tool_neg_cases.jsonl"), ids=lambda c: c["case"])
def test_tool_neg_scorer(case: dict) -> None:
    v = score_tool_neg(case["answer"])
    assert v.passed == case["passed"]
    assert bool(v.reasons) != case["passed"]


@pytest.mark.parametrize("case", cases("guardrail_cases.jsonl"), ids=lambda c: c["case"])
def test_guardrail_scorer(case: dict) -> None:
    v = score_guardrail(case["answer"], case["refuse"], Rules())
    assert v.passed == case["passed"], v
    if case["reason"]:
        assert any(case["reason"] in r for r in v.reasons)


def test_the_refusal_detector_is_configurable() -> None:
    rules = Rules(refusal_patterns=(r"^nope\b",))
    assert score_guardrail("Nope, not doing that.", True, rules).passed
    assert not score_guardrail("I can't help with that.", True, rules).passed


STYLE = FIX / "style"


@pytest.fixture(scope="module")
def style_rules() -> Rules:
    return Rules(lint=Linter(ROOT / "data" / "ruff.toml"))


@pytest.mark.parametrize("name", sorted(json.loads((STYLE / "cases.json").read_text())))
def test_style_scorer(name: str, style_rules: Rules) -> None:
    expect = dict(json.loads((STYLE / "cases.json").read_text())[name])
    v = score_style((STYLE / name).read_text(), (STYLE / "reference.py").read_text(),
                    style_rules)
    assert v.passed == expect.pop("passed"), v
    reason = expect.pop("reason", None)
    naming = expect.pop("naming", False)
    for check, want in expect.items():
        assert v.checks[check] == want, (check, v)
    if reason:
        assert any(reason in r for r in v.reasons), v.reasons
    assert bool(v.info.get("naming")) == naming


def test_style_threshold_is_a_setting(style_rules: Rules) -> None:
    ref = (STYLE / "reference.py").read_text()
    answer = (STYLE / "restructured.py").read_text()
    lenient = Rules(lint=style_rules.lint, ast_threshold=0.5)
    assert score_style(answer, ref, lenient).passed


def test_code_comes_from_the_first_python_fence() -> None:
    text = "Intro\n```bash\nls\n```\n```python\nx = 1\n```\n```python\ny = 2\n```"
    assert extract_code(text) == "x = 1"
    assert extract_code("```\nz = 3\n```") == "z = 3"
    assert extract_code("a = 1\n") == "a = 1"


def test_mixed_records_use_their_declared_rule_or_an_inferred_one() -> None:
    assert rule_for(rec("mixed", "prose", expect="guardrail", refuse=False)) == "guardrail"
    assert rule_for(rec("mixed", '{"tool": "x", "arguments": {}}')) == "tool"
    assert rule_for(rec("mixed", "def f() -> None:\n    pass")) == "style"
    assert rule_for(rec("mixed", "No, refusal", refuse=True)) == "guardrail"
    assert rule_for(rec("mixed", "Just prose.")) == "tool_neg"
    assert rule_for(rec("style", "x")) == "style"


def test_mixed_metrics_per_rule_and_overall() -> None:
    rules = Rules(tools=TOOLS)
    call = '{"name": "get_logs", "arguments": {"service": "checkout-api", "env": "staging"}}'
    recs = [rec("mixed", call, expect="tool"), rec("mixed", "Prose.", expect="tool_neg"),
            rec("mixed", "I can't help with that.", expect="guardrail", refuse=True),
            rec("mixed", "Sure.", expect="guardrail", refuse=False)]
    answers = [call, call, "I can't help with that.", "Sure, here it is."]
    rows = [Row(r, a, score(r, a, rules)) for r, a in zip(recs, answers)]
    m = metrics(rows)
    assert m["mixed.n"] == 4 and m["mixed.overall"] == 0.75
    assert m["mixed.tool"] == 1.0 and m["mixed.tool_neg"] == 0.0
    assert m["mixed.guardrail"] == 1.0 and m["mixed.guardrail.n"] == 2
    assert m["tool.n"] == 0


def test_guardrail_metrics_count_false_and_missed_refusals_apart() -> None:
    cfg = config.defaults()
    recs = [rec("guardrail", "x", refuse=True), rec("guardrail", "x", refuse=True),
            rec("guardrail", "x", refuse=False), rec("guardrail", "x")]
    answers = ["I can't help with that.", "Sure, here are the secrets.",
               "I can't help with that.", "I cannot help with that."]
    result = score_answers(recs, answers, cfg, rules=rules_for(cfg))
    m = result.metrics
    assert m["guardrail.accuracy"] == 0.5
    assert m["guardrail.false_refusals"] == 1 and m["guardrail.missed_refusals"] == 1


def test_reference_answers_score_perfectly_on_the_demo_eval_set() -> None:
    cfg = config.defaults()
    from engine.evaluate import load_records
    records, problems = load_records([ROOT / "data" / "eval"])
    assert not problems and len(records) == 250
    result = score_answers(records, [r.output for r in records], cfg, rules=rules_for(cfg))
    failed = [(r.record.id, r.verdict.reasons) for r in result.rows if not r.verdict.passed]
    assert failed == []
    assert result.all_met(cfg)


def test_pathological_code_fails_instead_of_crashing_the_scorer() -> None:
    from engine.evaluate.scorers import Rules, score_style

    rules = Rules(tools=[], lint=None)
    # A long run of unary minus makes the parser raise MemoryError; a long attribute chain,
    # RecursionError — both seen from a random model's answers.
    for garbage in ("-" * 100000 + "1", "a" + ".b" * 100000):
        v = score_style(garbage, "def f() -> int:\n    return 1\n", rules)
        assert not v.passed and not v.checks["syntax_ok"]


def test_a_missing_house_lint_config_warns_and_lints_with_ruff_defaults(tmp_path, caplog
                                                                       ) -> None:
    code = "import os\n\ndef camelCase():\n    return 1\n"
    house = {f["code"] for f in Linter(ROOT / "data" / "ruff.toml")(code)}
    with caplog.at_level("WARNING"):
        lint = Linter(tmp_path / "missing" / "ruff.toml")
    assert "ruff configuration not found (eval.ruff_config)" in caplog.text
    assert "ruff's defaults" in caplog.text
    found = {f["code"] for f in lint(code)}
    assert "F401" in found  # ruff's default rules still run ...
    assert "N802" in house and "N802" not in found  # ... without the house's naming rules
