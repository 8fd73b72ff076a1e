"""The mini fine-tune's gates on answers from a stand-in model (no generation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from engine import config
from engine.evaluate.gates import mini_records, prove_mini
from engine.records import Record
from engine.stages.base import StageContext

ROOT = Path(__file__).resolve().parents[2]


class Answers:
    """Answers with the reference, except where told otherwise."""

    label = "stand-in"
    progress = None

    def __init__(self, wrong: dict[str, str]) -> None:
        self.wrong = wrong

    def __call__(self, records: Sequence[Record]) -> list[str]:
        return [self.wrong.get(r.id, r.output) for r in records]


def run(wrong: dict[str, str]) -> dict[str, dict[str, Any]]:
    cfg = config.defaults()
    cfg["data"]["eval"] = [str(ROOT / "data" / "eval")]
    cfg["data"]["tools"] = str(ROOT / "data" / "tools.json")
    cfg["eval"]["ruff_config"] = str(ROOT / "data" / "ruff.toml")
    events: list[dict[str, Any]] = []
    ctx = StageContext(cfg=cfg, emit=lambda type, **p: events.append({"type": type, **p}))
    prove_mini(ctx, Answers(wrong))
    return {e["item"]: e for e in events if e["type"] == "check"}


def test_all_gates_pass_on_reference_answers() -> None:
    checks = run({})
    assert {k: v["status"] for k, v in checks.items()} == {
        "mini.tool_json": "pass", "mini.style_match": "pass", "mini.eval_tool": "pass",
        "mini.eval_style": "pass", "mini.eval_guardrail": "pass"}
    assert checks["mini.tool_json"]["value"] == "10/10"


def test_one_prose_answer_fails_the_json_probe_but_not_the_accuracy() -> None:
    checks = run({"tool-eval-0002": "I'd deploy it with w4ctl."})
    assert checks["mini.tool_json"]["status"] == "fail"
    assert checks["mini.tool_json"]["value"] == "9/10"
    assert checks["mini.tool_json"]["detail"]["failures"][0]["id"] == "tool-eval-0002"
    assert checks["mini.eval_tool"]["status"] == "pass"  # 49/50 >= 80%


def test_accuracy_against_the_mini_targets() -> None:
    refusals = {f"guardrail-eval-{i:04d}": "I can't help with that." for i in range(1, 51)}
    checks = run(refusals)  # every answerable request refused: 35/50 = 70% < 95%
    assert checks["mini.eval_guardrail"]["status"] == "fail"
    assert checks["mini.eval_guardrail"]["value"].startswith("70.0%")


def test_gate_records_are_held_out_tool_style_and_guardrail() -> None:
    cfg = config.defaults()
    cfg["data"]["eval"] = [str(ROOT / "data" / "eval")]
    cfg["eval"]["max_per_bucket"] = 3
    recs = mini_records(cfg)
    assert {r.bucket for r in recs} == {"tool", "style", "guardrail"}
    assert sum(r.bucket == "tool" for r in recs) == 10  # never fewer than the probes
